"""Tests of batch reads, tail and follow over a log file that conmon may still be writing."""

from __future__ import annotations

import asyncio
import os
import random
from collections.abc import AsyncGenerator, Coroutine
from contextlib import aclosing
from pathlib import Path
from typing import Any, TypeVar

import pytest

from teu.logs.k8sfile import STDERR, STDOUT, Record
from teu.logs.reader import BATCH_BYTES, Batch, read_log, tail_offset

T = TypeVar("T")
TS = b"2026-11-30T06:24:30.027115861-05:00"


def rec(content: bytes, *, partial: bool = False, stream: int = STDOUT) -> bytes:
    """One record as conmon writes it."""
    name = b"stdout" if stream == STDOUT else b"stderr"
    return b"%s %s %s %s\n" % (TS, name, b"P" if partial else b"F", content)


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Runs one coroutine on a fresh event loop."""
    return asyncio.run(coro)


async def collect(batches: AsyncGenerator[Batch, None]) -> list[Batch]:
    """All batches of a finite read."""
    async with aclosing(batches):
        return [batch async for batch in batches]


def data(batches: list[Batch]) -> list[bytes]:
    """The data of every record, in order."""
    return [r[2] for b in batches for r in b.records]


def open_fds(path: Path) -> int:
    """How many of this process's descriptors refer to ``path``."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            count += os.readlink(f"/proc/self/fd/{fd}") == str(path)
        except OSError:
            pass
    return count


@pytest.fixture
def log(tmp_path: Path) -> Path:
    """Path of a log file in its own directory, not created yet."""
    (tmp_path / "ctr").mkdir()
    return tmp_path / "ctr" / "ctr.log"


def test_reads_whole_file_with_streams_and_offset(log: Path) -> None:
    """A read with no offset or tail returns every record and the offset of the file's end."""
    log.write_bytes(rec(b"out1") + rec(b"err1", stream=STDERR) + rec(b"abc", partial=True) + rec(b"def"))
    batches = run(collect(read_log(log)))
    assert len(batches) == 1
    assert [(r[1], r[2]) for r in batches[0].records] == [
        (STDOUT, b"out1\n"),
        (STDERR, b"err1\n"),
        (STDOUT, b"abc"),
        (STDOUT, b"def\n"),
    ]
    assert batches[0].offset == log.stat().st_size


def test_missing_file_gives_nothing(log: Path) -> None:
    """Without follow, a log conmon has not created yet reads as empty."""
    assert run(collect(read_log(log))) == []


def test_large_log_comes_in_bounded_batches_without_gaps(log: Path) -> None:
    """Records are batched under the size limit and the offsets chain with no gap or repeat."""
    lines = [b"line %06d " % i + b"x" * (i % 300) for i in range(20000)]
    log.write_bytes(b"".join(rec(line) for line in lines))
    batches = run(collect(read_log(log)))
    assert len(batches) > 2
    assert data(batches) == [line + b"\n" for line in lines]
    previous = 0
    for batch in batches:
        assert 0 < batch.offset - previous <= BATCH_BYTES
        resumed = run(collect(read_log(log, offset=previous)))
        assert resumed[0].records == batch.records
        previous = batch.offset
    assert previous == log.stat().st_size


def test_offset_continues_after_appends(log: Path) -> None:
    """Reading again from a returned offset yields exactly the records appended since."""
    log.write_bytes(rec(b"one") + rec(b"two"))
    first = run(collect(read_log(log)))
    with log.open("ab") as f:
        f.write(rec(b"three") + rec(b"four", partial=True))
    second = run(collect(read_log(log, offset=first[-1].offset, tail=1)))
    assert data(second) == [b"three\n", b"four"]


def test_incomplete_final_record_waits_until_complete(log: Path) -> None:
    """A final record without its newline is not consumed, and is read whole once completed."""
    full = rec(b"done") + rec(b"half-written")
    log.write_bytes(full[:-5])
    first = run(collect(read_log(log)))
    assert data(first) == [b"done\n"]
    with log.open("ab") as f:
        f.write(full[-5:])
    second = run(collect(read_log(log, offset=first[-1].offset)))
    assert data(second) == [b"half-written\n"]
    assert second[-1].offset == len(full)


def test_incomplete_only_record_reads_as_nothing(log: Path) -> None:
    """A file holding only part of a record yields no batch, with tail or without."""
    log.write_bytes(rec(b"partial write")[:20])
    assert run(collect(read_log(log))) == []
    assert run(collect(read_log(log, tail=3))) == []


@pytest.mark.parametrize(
    ("tail", "expected"), [(1, [b"c\n"]), (2, [b"b1", b"b2", b"\n", b"c\n"]), (5, [b"a\n", b"b1", b"b2", b"\n", b"c\n"])]
)
def test_tail_counts_lines_not_records(log: Path, tail: int, expected: list[bytes]) -> None:
    """Tail N returns the last N lines, a line being P records up to and including an F record."""
    log.write_bytes(rec(b"a") + rec(b"b1", partial=True) + rec(b"b2", partial=True) + rec(b"") + rec(b"c"))
    assert data(run(collect(read_log(log, tail=tail)))) == expected


def test_tail_counts_trailing_partials_as_a_line(log: Path) -> None:
    """P records after the last F form the last line; an incomplete record after them is ignored."""
    log.write_bytes(rec(b"a") + rec(b"b") + rec(b"c1", partial=True) + rec(b"c2", partial=True) + rec(b"zz")[:30])
    assert data(run(collect(read_log(log, tail=1)))) == [b"c1", b"c2"]
    assert data(run(collect(read_log(log, tail=2)))) == [b"b\n", b"c1", b"c2"]


def _expected_tail_start(records: list[tuple[int, bool]], lines: int) -> int:
    """Reference answer for tail_offset, computed forwards from (length, partial) pairs."""
    starts, ends, pos = [], [], 0
    for length, partial in records:
        starts.append(pos)
        pos += length
        if not partial:
            ends.append(len(starts))
    if records and records[-1][1]:
        ends.append(len(starts))
    line_starts = [0] + ends[:-1]
    if lines >= len(line_starts):
        return 0
    return starts[line_starts[-lines]] if line_starts[-lines] < len(starts) else pos


@pytest.mark.parametrize("seed", range(8))
def test_tail_offset_matches_forward_count_for_any_block_size(tmp_path: Path, seed: int) -> None:
    """The backward block scan finds the same start as a forward count, whatever the block size."""
    rng = random.Random(seed)
    records = [(rng.choice([b"", b"x" * rng.randint(1, 120)]), rng.random() < 0.4) for _ in range(rng.randint(1, 60))]
    raw = [rec(content, partial=partial) for content, partial in records]
    path = tmp_path / "ctr.log"
    path.write_bytes(b"".join(raw) + rec(b"unfinished")[: rng.randint(0, 40)])
    shape = [(len(r), partial) for r, (_, partial) in zip(raw, records, strict=True)]
    with path.open("rb") as f:
        size = path.stat().st_size
        for block in (1, 7, 46, 100, 4096):
            for lines in (1, 2, 3, 10, 100):
                assert tail_offset(f, size, lines, block) == _expected_tail_start(shape, lines)


def test_tail_reads_only_the_end_of_a_big_file(log: Path) -> None:
    """Tail of a large file reads a few blocks, not the file."""
    log.write_bytes(b"".join(rec(b"line %d" % i) for i in range(200000)))

    class Counting:
        """A file wrapper that counts the bytes read through it."""

        def __init__(self) -> None:
            self.f = log.open("rb")
            self.read_bytes = 0

        def seek(self, pos: int) -> int:
            return self.f.seek(pos)

        def read(self, n: int) -> bytes:
            self.read_bytes += n
            return self.f.read(n)

    counting = Counting()
    start = tail_offset(counting, log.stat().st_size, 10)  # type: ignore[arg-type]
    counting.f.close()
    assert log.read_bytes()[start:].count(b"\n") == 10
    assert counting.read_bytes <= 2 * 64 * 1024


def test_follow_streams_appended_records(log: Path) -> None:
    """Follow returns what exists, then new complete records as conmon appends them."""
    log.write_bytes(rec(b"before"))

    async def scenario() -> list[Record]:
        got: list[Record] = []
        batches = read_log(log, follow=True, poll_max=0.01)
        async with aclosing(batches):
            async for batch in batches:
                got.extend(batch.records)
                if len(got) == 1:
                    with log.open("ab") as f:
                        f.write(rec(b"after1") + rec(b"after2")[:10])
                elif len(got) == 2:
                    with log.open("ab") as f:
                        f.write(rec(b"after2")[10:])
                else:
                    return got
        return got

    got = run(asyncio.wait_for(scenario(), 5))
    assert [r[2] for r in got] == [b"before\n", b"after1\n", b"after2\n"]


def test_follow_waits_for_the_file_and_cancels_cleanly(log: Path) -> None:
    """Follow waits for conmon to create the log, and cancelling it closes the file."""

    async def scenario() -> list[bytes]:
        got: list[bytes] = []

        async def consume() -> None:
            async for batch in read_log(log, follow=True, poll_max=0.01):
                got.extend(r[2] for r in batch.records)

        task = asyncio.create_task(consume())
        await asyncio.sleep(0.05)
        log.write_bytes(rec(b"hello"))
        for _ in range(200):
            if got:
                break
            await asyncio.sleep(0.01)
        assert open_fds(log) == 1
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return got

    assert run(scenario()) == [b"hello\n"]
    assert open_fds(log) == 0


def test_follow_ends_when_log_directory_is_removed_before_creation(log: Path) -> None:
    """A follow still waiting for the file stops once the log's directory is gone."""

    async def scenario() -> list[Batch]:
        batches = read_log(log, follow=True, poll_max=0.01)
        task = asyncio.create_task(collect(batches))
        await asyncio.sleep(0.03)
        log.parent.rmdir()
        return await asyncio.wait_for(task, 2)

    assert run(scenario()) == []


def test_follow_switches_to_a_replaced_log(log: Path) -> None:
    """When conmon renames a fresh file over the log, follow continues from its start."""
    log.write_bytes(rec(b"old"))

    async def scenario() -> list[bytes]:
        got: list[bytes] = []
        batches = read_log(log, follow=True, poll_max=0.01)
        async with aclosing(batches):
            async for batch in batches:
                got.extend(r[2] for r in batch.records)
                if len(got) == 1:
                    tmp = log.with_suffix(".tmp")
                    tmp.write_bytes(rec(b"new"))
                    tmp.rename(log)
                else:
                    break
        return got

    assert run(asyncio.wait_for(scenario(), 5)) == [b"old\n", b"new\n"]
