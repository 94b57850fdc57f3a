"""Docker's word processing of Dockerfile arguments: quotes, the escape character and ``$VAR``
substitution (``${VAR}``, ``${VAR:-default}``, ``${VAR-default}``, ``${VAR:+alt}``, ``${VAR+alt}``,
``${VAR:?message}``, ``${VAR?message}``), as moby's shell lexer does.

A single-quoted part is literal; in a double-quoted part the escape character escapes only ``"``,
``$`` and itself; outside quotes it makes the next character literal. A substitution's value is
never split or re-read. Unset variables are empty.
"""

from __future__ import annotations

from collections.abc import Mapping

from teu_api.errors import InvalidArgument

__all__ = ["word", "words"]

_NAME_START = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_")
_NAME = _NAME_START | frozenset("0123456789")


def word(text: str, env: Mapping[str, str], escape: str = "\\") -> str:
    """``text`` as one word: quotes removed, variables substituted (whitespace kept)."""
    return _Scan(text, env, escape).run(split=False)[0]


def words(text: str, env: Mapping[str, str], escape: str = "\\") -> list[str]:
    """``text`` split at whitespace outside quotes, each word processed as :func:`word`."""
    return _Scan(text, env, escape).run(split=True)


class _Scan:
    def __init__(self, text: str, env: Mapping[str, str], escape: str) -> None:
        self.text = text
        self.env = env
        self.escape = escape
        self.pos = 0

    def _peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def _next(self) -> str:
        ch = self._peek()
        self.pos += 1
        return ch

    def run(self, split: bool, stop: str = "") -> list[str]:
        """Reads up to ``stop`` (consumed) or the end; the words read (one unless ``split``)."""
        found: list[str] = []
        current: list[str] = []
        started = False
        while self.pos < len(self.text):
            ch = self._next()
            if stop and ch == stop:
                break
            if split and ch.isspace():
                if started:
                    found.append("".join(current))
                    current, started = [], False
                continue
            started = True
            if ch == "'":
                current.append(self._single_quoted())
            elif ch == '"':
                current.append(self._double_quoted())
            elif ch == "$":
                current.append(self._dollar())
            elif ch == self.escape:
                current.append(self._next())
            else:
                current.append(ch)
        else:
            if stop:
                raise InvalidArgument(f"missing '{stop}' in {self.text!r}")
        if started or not split:
            found.append("".join(current))
        return found

    def _single_quoted(self) -> str:
        end = self.text.find("'", self.pos)
        if end < 0:
            raise InvalidArgument(f"unexpected end of statement while looking for matching single-quote in {self.text!r}")
        part, self.pos = self.text[self.pos : end], end + 1
        return part

    def _double_quoted(self) -> str:
        out: list[str] = []
        while True:
            if self.pos >= len(self.text):
                raise InvalidArgument(f"unexpected end of statement while looking for matching double-quote in {self.text!r}")
            ch = self._next()
            if ch == '"':
                return "".join(out)
            if ch == "$":
                out.append(self._dollar())
            elif ch == self.escape and self._peek() in ('"', "$", self.escape) and self._peek():
                out.append(self._next())
            else:
                out.append(ch)

    def _name(self) -> str:
        start = self.pos
        while self._peek() and self._peek() in _NAME:
            self.pos += 1
        return self.text[start : self.pos]

    def _dollar(self) -> str:
        ch = self._peek()
        if ch != "{":
            if not ch or ch not in _NAME_START:
                return "$"
            return self.env.get(self._name(), "")
        self.pos += 1
        name = self._name()
        if not name:
            raise InvalidArgument(f"bad substitution in {self.text!r}")
        ch = self._next()
        if ch == "}":
            return self.env.get(name, "")
        colon = ch == ":"
        if colon:
            ch = self._next()
        if ch not in ("-", "+", "?"):
            raise InvalidArgument(f"unsupported modifier ({ch or 'end'}) in substitution of {name} in {self.text!r}")
        alternative = self.run(split=False, stop="}")[0]
        value = self.env.get(name)
        is_set = value is not None and (value != "" or not colon)
        if ch == "-":
            return value if is_set and value is not None else alternative
        if ch == "+":
            return alternative if is_set else ""
        if not is_set:
            raise InvalidArgument(f"{name}: {alternative or 'is not allowed to be unset'}")
        return value or ""
