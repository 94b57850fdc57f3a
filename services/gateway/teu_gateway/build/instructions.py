"""What the instructions that change only an image's configuration do to it (ENV, LABEL, EXPOSE,
VOLUME, USER, WORKDIR, CMD, ENTRYPOINT, SHELL, STOPSIGNAL, HEALTHCHECK, ONBUILD), and the argument
forms they share. Pure: the builder hands in the variables in scope."""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping, MutableSequence

from teu_api.errors import InvalidArgument
from teu_api.types.v1 import types_pb2
from teu_gateway.build import words
from teu_gateway.build.dockerfile import Instruction, parse_instruction

__all__ = ["DEFAULT_SHELL", "apply", "command", "duration", "pairs", "set_env"]

DEFAULT_SHELL = ("/bin/sh", "-c")
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNITS = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 1_000_000_000, "m": 60_000_000_000, "h": 3_600_000_000_000}
_PORT = re.compile(r"(\d+)(?:-(\d+))?(?:/(tcp|udp|sctp))?", re.IGNORECASE)
METADATA = frozenset(
    {
        "ENV",
        "LABEL",
        "EXPOSE",
        "VOLUME",
        "USER",
        "CMD",
        "ENTRYPOINT",
        "SHELL",
        "STOPSIGNAL",
        "HEALTHCHECK",
        "ONBUILD",
        "MAINTAINER",
    }
)


def shell_of(config: types_pb2.ImageConfig) -> list[str]:
    """The shell of shell-form instructions."""
    return list(config.shell) or list(DEFAULT_SHELL)


def command(ins: Instruction, config: types_pb2.ImageConfig) -> list[str]:
    """RUN, CMD or ENTRYPOINT's argv: the JSON form as is, the shell form through the shell."""
    if ins.exec is not None:
        return list(ins.exec)
    return [*shell_of(config), ins.text]


def pairs(ins: Instruction, env: Mapping[str, str], escape: str) -> list[tuple[str, str]]:
    """ENV and LABEL's ``key=value ...`` (or the old ``key value``) pairs, values substituted."""
    first, _, rest = ins.text.partition(" ")
    if "=" not in first:
        if not rest.strip():
            raise ins.error(f"{ins.keyword} names must be followed by a value")
        return [(words.word(first, env, escape), words.word(rest.strip(), env, escape))]
    out = []
    for w in words.words(ins.text, env, escape):
        key, eq, value = w.partition("=")
        if not eq or not key:
            raise ins.error(f"syntax error - can't find = in {w!r}. Must be of the form: name=value")
        out.append((key, value))
    return out


def set_env(config: types_pb2.ImageConfig, key: str, value: str) -> None:
    """Sets ``key`` in the config's environment, in place of an earlier value."""
    entries = [e for e in config.env if e.partition("=")[0] != key]
    entries.append(f"{key}={value}")
    del config.env[:]
    config.env.extend(entries)


def duration(text: str, what: str) -> int:
    """A Go duration ("30s", "1m30s", "500ms") in nanoseconds."""
    pos, total = 0, 0.0
    for m in _DURATION.finditer(text):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if pos != len(text) or not text:
        raise InvalidArgument(f"HEALTHCHECK: invalid {what} {text!r}: want a duration such as 30s or 1m30s")
    return int(total)


def apply(ins: Instruction, config: types_pb2.ImageConfig, env: Mapping[str, str], escape: str, cmd_set: bool) -> None:
    """Applies metadata instruction ``ins`` to ``config`` in place. ``cmd_set``: this stage set CMD
    (an ENTRYPOINT drops an inherited CMD, as Docker's)."""
    k = ins.keyword
    if k == "ENV":
        for key, value in pairs(ins, env, escape):
            set_env(config, key, value)
    elif k == "LABEL":
        for key, value in pairs(ins, env, escape):
            config.labels[key] = value
    elif k == "EXPOSE":
        for port in words.words(ins.text, env, escape):
            config.exposed_ports.extend(p for p in _ports(ins, port) if p not in config.exposed_ports)
    elif k == "VOLUME":
        paths = list(ins.exec) if ins.exec is not None else words.words(ins.text, env, escape)
        for path in paths:
            if not path.strip():
                raise ins.error("VOLUME specified can not be an empty string")
            if path not in config.volumes:
                config.volumes.append(path)
    elif k == "USER":
        config.user = words.word(ins.text, env, escape)
    elif k == "WORKDIR":
        config.working_dir = workdir(config.working_dir, words.word(ins.text, env, escape))
    elif k == "CMD":
        _replace(config.cmd, command(ins, config))
    elif k == "ENTRYPOINT":
        _replace(config.entrypoint, command(ins, config))
        if not cmd_set:
            del config.cmd[:]
    elif k == "SHELL":
        if ins.exec is None or not ins.exec:
            raise ins.error("SHELL requires the arguments to be in JSON form")
        _replace(config.shell, list(ins.exec))
    elif k == "STOPSIGNAL":
        config.stop_signal = words.word(ins.text, env, escape)
    elif k == "HEALTHCHECK":
        config.healthcheck.CopyFrom(_healthcheck(ins, config))
    elif k == "ONBUILD":
        trigger = parse_instruction(ins.text, ins.line)
        if trigger.keyword in ("ONBUILD", "FROM", "MAINTAINER"):
            raise ins.error(f"{trigger.keyword} isn't allowed as an ONBUILD trigger")
        config.on_build.append(ins.text)
    elif k != "MAINTAINER":
        raise ins.error("not a metadata instruction")


def workdir(current: str, path: str) -> str:
    """WORKDIR ``path`` from ``current``: relative paths go on from it."""
    return posixpath.normpath(posixpath.join(current or "/", path))


def _replace(field: MutableSequence[str], values: list[str]) -> None:
    del field[:]
    field.extend(values)


def _ports(ins: Instruction, spec: str) -> list[str]:
    m = _PORT.fullmatch(spec)
    if not m:
        raise ins.error(f"invalid port {spec!r}: want PORT[-PORT][/PROTOCOL]")
    low = int(m.group(1))
    high = int(m.group(2) or low)
    if not 0 < low <= high <= 65535:
        raise ins.error(f"invalid port range {spec!r}")
    proto = (m.group(3) or "tcp").lower()
    return [f"{p}/{proto}" for p in range(low, high + 1)]


def _healthcheck(ins: Instruction, config: types_pb2.ImageConfig) -> types_pb2.HealthConfig:
    kind, _, rest = ins.text.partition(" ")
    if kind.upper() == "NONE":
        if rest.strip() or ins.flags:
            raise ins.error("HEALTHCHECK NONE takes no arguments")
        return types_pb2.HealthConfig(test=["NONE"])
    if kind.upper() != "CMD":
        raise ins.error("HEALTHCHECK wants CMD or NONE")
    inner = parse_instruction("CMD " + rest.strip(), ins.line)
    test = ["CMD", *inner.exec] if inner.exec is not None else ["CMD-SHELL", inner.text]
    out = types_pb2.HealthConfig(test=test)
    for flag, value in ins.flags.items():
        if flag == "retries":
            if not value.isdigit():
                raise ins.error(f"invalid retries {value!r}")
            out.retries = int(value)
        else:
            setattr(out, flag.replace("-", "_") + "_ns", duration(value, flag))
    return out
