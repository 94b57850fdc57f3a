"""Dockerfiles parsed with Docker's rules, into stages of instructions.

Parser directives (``# syntax=``, ``# escape=``, ``# check=``) are read from the top until the first
other line. Comment lines go, also inside a continued instruction; a line ending in the escape
character continues on the next. An instruction's flags (``--from=stage``) come first, then its
arguments: the JSON form when they are a JSON array of strings, else the shell form, kept as
written. Heredocs (``<<EOF`` ... ``EOF``, ``<<-`` stripping tabs) of RUN, COPY and ADD are read
into the instruction. Nothing is substituted here: the builder does that with the variables in
scope at each step.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from teu_api.errors import InvalidArgument

__all__ = ["Dockerfile", "Heredoc", "Instruction", "Stage", "parse", "parse_instruction"]

KEYWORDS = frozenset(
    {
        "ADD", "ARG", "CMD", "COPY", "ENTRYPOINT", "ENV", "EXPOSE", "FROM", "HEALTHCHECK", "LABEL",
        "MAINTAINER", "ONBUILD", "RUN", "SHELL", "STOPSIGNAL", "USER", "VOLUME", "WORKDIR",
    }
)  # fmt: skip
#: The flags each instruction takes (the others take none).
FLAGS = {
    "FROM": {"platform"},
    "RUN": {"mount", "network", "security"},
    "COPY": {"from", "chown", "chmod", "link", "parents", "exclude"},
    "ADD": {"chown", "chmod", "link", "checksum", "keep-git-dir", "exclude"},
    "HEALTHCHECK": {"interval", "timeout", "start-period", "start-interval", "retries"},
}
MAX_DOCKERFILE = 4 << 20
_DIRECTIVE = re.compile(r"^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$")
_HEREDOC = re.compile(r"<<(-?)(['\"]?)([A-Za-z_][A-Za-z0-9_]*)\2")
_FLAG = re.compile(r"--([a-z][a-z0-9-]*)(?:=(\S*))?")


@dataclass(frozen=True)
class Heredoc:
    """A here-document of an instruction: its name, its text, and whether variables expand in it."""

    name: str
    content: str
    expand: bool


@dataclass(frozen=True)
class Instruction:
    """One instruction: keyword (upper case), flags, and arguments in the JSON form (``exec``) or
    as written (``text``)."""

    keyword: str
    text: str
    line: int
    flags: dict[str, str] = field(default_factory=dict)
    exec: tuple[str, ...] | None = None
    heredocs: tuple[Heredoc, ...] = ()

    @property
    def original(self) -> str:
        """The instruction as written, flags included (one line)."""
        flags = "".join(f"--{k}={v} " for k, v in self.flags.items())
        args = json.dumps(list(self.exec)) if self.exec is not None else self.text
        return f"{self.keyword} {flags}{args}".rstrip()

    def error(self, message: str) -> InvalidArgument:
        """InvalidArgument for ``message``, naming this instruction's line."""
        return InvalidArgument(f"Dockerfile line {self.line}: {self.keyword}: {message}")


@dataclass
class Stage:
    """A build stage: its FROM and what follows."""

    source: Instruction
    base: str
    name: str
    index: int
    instructions: list[Instruction] = field(default_factory=list)


@dataclass
class Dockerfile:
    """A parsed Dockerfile: its escape character, the ARGs before the first FROM, its stages."""

    escape: str
    global_args: list[Instruction]
    stages: list[Stage]

    def stage_index(self, ref: str, numbers: bool = True) -> int | None:
        """The index of the stage ``ref`` names (its name, any case; with ``numbers`` any number, as
        ``COPY --from=0`` has it, the caller checking it is a stage before its own); None if it names none."""
        for stage in self.stages:
            if stage.name and stage.name == ref.lower():
                return stage.index
        return int(ref) if numbers and ref.isdigit() else None


def parse(text: str) -> Dockerfile:
    """Parses a Dockerfile; InvalidArgument naming the line for anything Docker would refuse."""
    if len(text) > MAX_DOCKERFILE:
        raise InvalidArgument(f"Dockerfile too large: {len(text)} bytes, at most {MAX_DOCKERFILE}")
    lines = text.splitlines()
    escape, start = _directives(lines)
    instructions = _instructions(lines, start, escape)
    global_args: list[Instruction] = []
    stages: list[Stage] = []
    for ins in instructions:
        if ins.keyword == "FROM":
            stages.append(_stage(ins, len(stages)))
        elif stages:
            stages[-1].instructions.append(ins)
        elif ins.keyword == "ARG":
            global_args.append(ins)
        else:
            raise ins.error("no build stage in current context (only ARG may come before the first FROM)")
    if not stages:
        raise InvalidArgument("the Dockerfile has no FROM instruction")
    names = [s.name for s in stages if s.name]
    for name in names:
        if names.count(name) > 1:
            raise InvalidArgument(f"duplicate name of build stage: {name}")
    return Dockerfile(escape, global_args, stages)


def _directives(lines: list[str]) -> tuple[str, int]:
    """The escape character and the index of the first line after the parser directives."""
    escape = "\\"
    seen: set[str] = set()
    for i, line in enumerate(lines):
        m = _DIRECTIVE.match(line.strip())
        if not m or m.group(1).lower() not in ("syntax", "escape", "check"):
            return escape, i
        name, value = m.group(1).lower(), m.group(2)
        if name in seen:
            raise InvalidArgument(f"Dockerfile line {i + 1}: only one {name} parser directive can be used")
        seen.add(name)
        if name == "escape":
            if value not in ("\\", "`"):
                raise InvalidArgument(f"Dockerfile line {i + 1}: invalid escape token '{value}' does not match ` or \\")
            escape = value
    return escape, len(lines)


def _is_comment(line: str) -> bool:
    return line.lstrip().startswith("#")


def _continues(line: str, escape: str) -> tuple[str, bool]:
    """``line`` without its trailing escape character, and whether it continues."""
    stripped = line.rstrip(" \t")
    if stripped.endswith(escape):
        return stripped[: -len(escape)], True
    return line, False


def _instructions(lines: list[str], i: int, escape: str) -> list[Instruction]:
    out: list[Instruction] = []
    while i < len(lines):
        raw = lines[i]
        number = i + 1
        i += 1
        if not raw.strip() or _is_comment(raw):
            continue
        text, more = _continues(raw.lstrip(), escape)
        while more and i < len(lines):
            nxt = lines[i]
            i += 1
            if _is_comment(nxt) or not nxt.strip():
                continue
            part, more = _continues(nxt, escape)
            text += part
        ins, i = _instruction(text, number, lines, i)
        out.append(ins)
    return out


def _instruction(text: str, number: int, lines: list[str], i: int) -> tuple[Instruction, int]:
    """Parses one joined instruction line; heredocs read from ``lines[i:]``. Returns the line after."""
    keyword, _, rest = text.strip().partition(" ")
    if "\t" in keyword:
        keyword, _, more = keyword.partition("\t")
        rest = more + " " + rest
    keyword = keyword.upper()
    if keyword not in KEYWORDS:
        raise InvalidArgument(f"Dockerfile line {number}: unknown instruction: {keyword}")
    rest = rest.strip()
    flags: dict[str, str] = {}
    if keyword in FLAGS:
        rest, flags = _flags(keyword, rest, number)
    heredocs: list[Heredoc] = []
    if keyword in ("RUN", "COPY", "ADD") and not rest.startswith("["):
        for m in _HEREDOC.finditer(rest):
            content, i = _heredoc(lines, i, m.group(3), m.group(1) == "-", number)
            heredocs.append(Heredoc(m.group(3), content, expand=not m.group(2)))
    exec_form = _json_list(rest)
    if not rest and keyword not in ("RUN",) and not heredocs:
        raise InvalidArgument(f"Dockerfile line {number}: {keyword} requires at least one argument")
    ins = Instruction(keyword, rest, number, flags, exec_form, tuple(heredocs))
    return ins, i


def parse_instruction(text: str, line: int) -> Instruction:
    """One instruction written on one line (an ONBUILD trigger, HEALTHCHECK's CMD); no heredocs."""
    ins, _ = _instruction(text, line, [], 0)
    return ins


def _flags(keyword: str, rest: str, number: int) -> tuple[str, dict[str, str]]:
    flags: dict[str, str] = {}
    while rest.startswith("--"):
        word, _, after = rest.partition(" ")
        m = _FLAG.fullmatch(word)
        if not m:
            raise InvalidArgument(f"Dockerfile line {number}: {keyword}: bad flag {word}")
        name, value = m.group(1), m.group(2)
        if name not in FLAGS[keyword]:
            raise InvalidArgument(f"Dockerfile line {number}: unknown flag: --{name} (of {keyword})")
        flags[name] = "true" if value is None else value
        rest = after.lstrip()
    return rest, flags


def _heredoc(lines: list[str], i: int, name: str, strip_tabs: bool, number: int) -> tuple[str, int]:
    body: list[str] = []
    while i < len(lines):
        line = lines[i]
        i += 1
        if strip_tabs:
            line = line.lstrip("\t")
        if line == name:
            return "".join(b + "\n" for b in body), i
        body.append(line)
    raise InvalidArgument(f"Dockerfile line {number}: unterminated heredoc {name}")


def _json_list(rest: str) -> tuple[str, ...] | None:
    """The JSON form's strings, or None for the shell form."""
    if not rest.startswith("["):
        return None
    try:
        value = json.loads(rest)
    except ValueError:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        return None
    return tuple(value)


def _stage(ins: Instruction, index: int) -> Stage:
    parts = ins.text.split()
    if len(parts) == 3 and parts[1].lower() == "as":
        name = parts[2].lower()
        if not re.fullmatch(r"[a-z][a-z0-9-_.]*", name):
            raise ins.error(f"invalid name for build stage: {parts[2]!r}, name can't start with a number or contain symbols")
        return Stage(ins, parts[0], name, index)
    if len(parts) != 1:
        raise ins.error("FROM requires either one or three arguments: IMAGE [AS NAME]")
    return Stage(ins, parts[0], "", index)
