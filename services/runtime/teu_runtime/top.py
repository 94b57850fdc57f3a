"""``top``: ps on the host, its rows narrowed to one container's processes (Docker's way)."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Iterable, Sequence

from teu_api.errors import InvalidArgument

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
    # its output through unlinked files, as the OCI runtime's (ociruntime.CliRuntime._run): a wait on the
    # child alone, none on a pipe's end
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = await asyncio.create_subprocess_exec("ps", *(args or DEFAULT_ARGS), stdin=asyncio.subprocess.DEVNULL,
                                                    stdout=out, stderr=err)  # fmt: skip
        code = await proc.wait()
        out.seek(0)
        err.seek(0)
        if code:
            raise InvalidArgument(f"ps failed: {err.read().decode(errors='replace').strip()[:200]}")
        return narrow(out.read().decode(errors="replace"), pids)
