"""``top``: ps on the host, its rows narrowed to one container's processes (Docker's way)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from teu_api.errors import InvalidArgument
from teu_runtime.ociruntime import captured

DEFAULT_ARGS = ("-ef",)


def narrow(output: str, pids: Iterable[int]) -> tuple[list[str], list[list[str]]]:
    """(titles, rows) of ``ps`` output whose PID column is one of ``pids``; the last column keeps
    its spaces (a command line). InvalidArgument without a PID column."""
    lines = output.splitlines()
    if not lines:
        return [], []
    titles = lines[0].split()
    if "PID" not in titles:
        raise InvalidArgument("couldn't find PID field in ps output: give ps options that show it")
    at, wanted = titles.index("PID"), {str(p) for p in pids}
    rows = []
    for line in lines[1:]:
        cols = line.split(None, len(titles) - 1)
        if len(cols) > at and cols[at] in wanted:
            rows.append(cols)
    return titles, rows


async def run(args: Sequence[str], pids: Iterable[int]) -> tuple[list[str], list[list[str]]]:
    """Runs ``ps args`` (Debian's procps) and narrows its output to ``pids``."""
    for a in args:
        if not a.startswith("-") and not a.replace(",", "").replace("=", "").isalnum():
            raise InvalidArgument(f"invalid ps option {a[:40]!r}")
    code, out, err = await captured("ps", *(args or DEFAULT_ARGS))
    if code:
        raise InvalidArgument(f"ps failed: {err[:200]}")
    return narrow(out, pids)
