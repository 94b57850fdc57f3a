"""Micro-benchmark of the log reader (not a test): ``.venv/bin/python bench/logs_reader.py [dir]``.

Measures, through :func:`teu_logs.reader.read_log` (the core the service streams from):

- reading back a 100 MB log of 1M 100-byte records, chunks form (target well under 0.5 s);
- reading back 10 MB of ``y\\n`` written as 5M records (235 MB of log), chunks form (target < 2 s);
- tail 100 of a 1 GB log (target < 50 ms);
- for information: the records form, a grep, a since lookup on the 1 GB log.

Files are built once under the given directory (default /tmp/teu-logs-bench) and kept for reruns.
"""

from __future__ import annotations

import asyncio
import re
import sys
import time
from contextlib import aclosing
from pathlib import Path

from teu_logs.k8sfile import parse_timestamp
from teu_logs.reader import ReadOptions, read_log
from teu_logs.scan import Filter
from teu_logs.segments import LogDir


def build(path: Path, records: int, content: bytes, per_second: int = 100_000, stderr_every: int = 0) -> None:
    """Writes ``records`` F records of ``content`` (timestamps increasing) unless already there.

    With ``stderr_every`` = n, every n-th run of n records goes to stderr instead of stdout.
    """
    size = records * (46 + len(content))
    if path.exists() and path.stat().st_size == size:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        step = 10_000
        for first in range(0, records, step):
            last = min(first + step, records)
            f.write(b"".join(_stamp(i, per_second) + _kind(i, stderr_every) + content + b"\n" for i in range(first, last)))


async def drain(d: LogDir, opts: ReadOptions) -> tuple[int, int]:
    """(output bytes, batches) of a whole read."""
    total = batches = 0
    async with aclosing(read_log(d, opts)) as stream:
        async for batch in stream:
            batches += 1
            total += sum(len(c[1]) for c in batch.chunks) + sum(len(r[2]) for r in batch.records)
    return total, batches


def timed(label: str, d: LogDir, opts: ReadOptions, runs: int = 3) -> float:
    """Best wall time of ``runs`` reads, printed with the output size."""
    best = float("inf")
    out = 0
    for _ in range(runs):
        start = time.perf_counter()
        out, _batches = asyncio.run(drain(d, opts))
        best = min(best, time.perf_counter() - start)
    print(f"{label:<58} {best * 1000:9.1f} ms   ({out / 1e6:.1f} MB out)")
    return best


def main() -> None:
    """Builds the sample logs and prints the timings."""
    root = Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/teu-logs-bench")
    hundred = root / "a"
    build(hundred / "ctr.log", 1_000_000, b"x" * 53 + b"!")
    yes = root / "y"
    build(yes / "ctr.log", 5_000_000, b"y")
    giga = root / "g"
    build(giga / "ctr.log", 10_000_000, b"z" * 53 + b"!")
    mixed = root / "m"
    build(mixed / "ctr.log", 1_000_000, b"x" * 53 + b"!", stderr_every=10)
    for d in (hundred, yes, giga, mixed):
        with open(d / "ctr.log", "rb") as f:
            f.read()  # warm the page cache: the numbers are about the reader, not the disk
    hd, yd, gd = LogDir(hundred), LogDir(yes), LogDir(giga)
    timed("100 MB, 1M x 100-byte records, chunks", hd, ReadOptions())
    timed("10 MB of y\\n = 5M records (235 MB log), chunks", yd, ReadOptions())
    timed("tail 100 of 1 GB (10M records), chunks", gd, ReadOptions(tail=100), runs=5)
    timed("tail 100 of 1 GB, records", gd, ReadOptions(tail=100, flt=Filter(records=True)), runs=5)
    timed("since (last 1000 lines) of 1 GB, records", gd, ReadOptions(flt=Filter(since=_ts_ns(9_999_000), records=True)), runs=5)
    timed("100 MB, records form (1M LogRecord tuples)", hd, ReadOptions(flt=Filter(records=True)), runs=1)
    timed("100 MB, chunks, grep matching every line", hd, ReadOptions(flt=Filter(grep=re.compile(rb"x{53}!$"))), runs=1)
    timed("100 MB, stdout/stderr alternating every 10 lines, chunks", LogDir(mixed), ReadOptions(), runs=1)


def _kind(i: int, stderr_every: int) -> bytes:
    """The stream and flag of the i-th record written by :func:`build`."""
    return b" stderr F " if stderr_every and i // stderr_every % 2 else b" stdout F "


def _stamp(i: int, per_second: int = 100_000) -> bytes:
    """Timestamp of the i-th record written by :func:`build` (``per_second`` records a second)."""
    secs = i // per_second
    return b"2026-11-30T%02d:%02d:%02d.%09d+00:00" % (secs // 3600 % 24, secs // 60 % 60, secs % 60, i % per_second * 10_000)


def _ts_ns(i: int) -> int:
    """Unix ns of the i-th record written by :func:`build`."""
    return parse_timestamp(_stamp(i))


if __name__ == "__main__":
    main()
