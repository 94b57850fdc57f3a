"""``.dockerignore`` with Docker's rules (moby's patternmatcher): the clients leave out of a build
context what it excludes, and the builder hides it from COPY whoever sent the context.

One pattern per line; ``#`` starts a comment line; surrounding whitespace goes; a leading ``!``
makes an exception; patterns are cleaned as paths and a leading ``/`` dropped. ``*`` matches any
run of characters but ``/``, ``?`` one character but ``/``, ``[...]`` a class, ``**`` any number of
directories, and the escape ``\\`` the next character. A path is excluded when the last pattern
matching it, or matching one of its parent directories, is not an exception.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass

from teu_api.errors import InvalidArgument

__all__ = ["Ignore", "glob_regex"]


@dataclass(frozen=True)
class _Pattern:
    regex: re.Pattern[str]
    exception: bool
    text: str


class Ignore:
    """The patterns of one ``.dockerignore``."""

    def __init__(self, text: str = "") -> None:
        self._patterns: list[_Pattern] = []
        for raw in text.splitlines():
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            exception = line.startswith("!")
            if exception:
                line = line[1:].strip()
            line = posixpath.normpath(line).lstrip("/") if line not in ("/", "") else ""
            if not line or line == ".":
                continue
            self._patterns.append(_Pattern(glob_regex(line), exception, line))

    def __bool__(self) -> bool:
        return bool(self._patterns)

    @property
    def has_exceptions(self) -> bool:
        """Whether a ``!`` pattern may bring back something under an excluded directory."""
        return any(p.exception for p in self._patterns)

    def excludes(self, path: str) -> bool:
        """Whether context path ``path`` (relative, normalized) is left out."""
        parents = _parents(path)
        excluded = False
        for p in self._patterns:
            if p.exception == (not excluded):
                continue  # only a pattern that could change the answer is tried
            if p.regex.fullmatch(path) or any(p.regex.fullmatch(parent) for parent in parents):
                excluded = not p.exception
        return excluded


def _parents(path: str) -> list[str]:
    parts = path.split("/")
    return ["/".join(parts[:i]) for i in range(1, len(parts))]


def glob_regex(pattern: str, doublestar: bool = True) -> re.Pattern[str]:
    """The regular expression of glob ``pattern`` (``**`` as any directories only with ``doublestar``)."""
    out = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "*":
            if doublestar and pattern.startswith("**", i):
                i += 2
                if pattern.startswith("/", i):  # "**/" matches no directory or any
                    i += 1
                    out.append("(?:.*/)?")
                else:
                    out.append(".*")
                continue
            out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch == "[":
            end = pattern.find("]", i + 2 if pattern.startswith("[!", i) or pattern.startswith("[^", i) else i + 1)
            if end < 0:
                raise InvalidArgument(f".dockerignore: syntax error in pattern {pattern!r}")
            body = pattern[i + 1 : end]
            if body.startswith("!"):
                body = "^" + body[1:]
            out.append("[" + body.replace("\\", "\\\\") + "]")
            i = end
        elif ch == "\\" and i + 1 < len(pattern):
            i += 1
            out.append(re.escape(pattern[i]))
        else:
            out.append(re.escape(ch))
        i += 1
    try:
        return re.compile("".join(out), re.DOTALL)
    except re.error as exc:
        raise InvalidArgument(f".dockerignore: syntax error in pattern {pattern!r}: {exc}") from exc
