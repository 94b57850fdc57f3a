"""Signal names and numbers, as users write them ("SIGTERM", "term", "15")."""

from __future__ import annotations

import signal

from teu_api.errors import InvalidArgument


def parse_signal(value: str) -> int:
    """The signal number for ``value``; InvalidArgument for anything that is not a signal."""
    v = value.strip().upper()
    if v.isdigit():
        num = int(v)
    else:
        try:
            num = int(signal.Signals[v if v.startswith("SIG") else "SIG" + v])
        except KeyError:
            raise InvalidArgument(f"invalid signal: {value}") from None
    if not 1 <= num <= 64:
        raise InvalidArgument(f"invalid signal: {value}")
    return num
