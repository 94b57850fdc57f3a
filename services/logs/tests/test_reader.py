"""Tests of reads over a segmented log: global offsets, since/until, tail, follow, restarts."""

from __future__ import annotations

import asyncio
import os
import random
from collections.abc import AsyncGenerator
from contextlib import aclosing
from pathlib import Path

import pytest

from teu_logs.k8sfile import STDERR, STDOUT, parse_timestamp
from teu_logs.reader import Batch, ReadOptions, read_log
from teu_logs.rotation import apply_retention, rotate
from teu_logs.scan import Filter
from teu_logs.segments import LogDir
from teu_logs.tail import tail_start
from teu_logs.timeindex import find_time

SECOND = b"2026-11-30T06:24:%02d.%09d-05:00"


def rec(content: bytes, *, partial: bool = False, stream: int = STDOUT, ns: int = 0) -> bytes:
    """One record as conmon writes it, ``ns`` nanoseconds after a fixed minute."""
    name = b"stdout" if stream == STDOUT else b"stderr"
    ts = SECOND % (ns // 1_000_000_000, ns % 1_000_000_000)
    return b"%s %s %s %s\n" % (ts, name, b"P" if partial else b"F", content)


def append(d: LogDir, data: bytes) -> None:
    """Appends to the current file as conmon does (creating it after a rotation, like a reopen)."""
    with open(d.current, "ab") as f:
        f.write(data)


async def collect(batches: AsyncGenerator[Batch, None]) -> list[Batch]:
    """All batches of a finite read."""
    async with aclosing(batches):
        return [batch async for batch in batches]


def read(d: LogDir, **kw: object) -> list[Batch]:
    """A whole batch read with the given ReadOptions fields."""
    return asyncio.run(collect(read_log(d, ReadOptions(**kw))))  # type: ignore[arg-type]


def text(batches: list[Batch]) -> bytes:
    """Every byte of the chunks, in order."""
    return b"".join(data for b in batches for _s, data in b.chunks)


def lines(batches: list[Batch]) -> list[bytes]:
    """The data of every record, in order."""
    return [r[2] for b in batches for r in b.records]


@pytest.fixture
def d(tmp_path: Path) -> LogDir:
    """An empty log directory."""
    (tmp_path / "ctr").mkdir()
    return LogDir(tmp_path / "ctr")


def numbered(first: int, count: int) -> bytes:
    """Records ``line <i>`` for i in [first, first+count), one nanosecond apart."""
    return b"".join(rec(b"line %d" % i, ns=i) for i in range(first, first + count))


def test_offsets_are_global_across_rotations_and_retention(d: LogDir) -> None:
    """After 3 rotations with max_files 2, a read gives the last segment and the current file in order."""
    for n in range(4):
        append(d, numbered(n * 10, 10))
        if n < 3:
            assert rotate(d, 2)
    apply_retention(d, 2)  # what the next check does once conmon has reopened
    assert len(d.segments()) == 1
    batches = read(d)
    assert text(batches) == b"".join(b"line %d\n" % i for i in range(20, 40))
    assert batches[-1].offset == len(numbered(0, 40))


def test_resuming_from_every_offset_continues_without_gap_or_repeat(d: LogDir) -> None:
    """Each batch offset, given back, yields exactly what follows it, across segment boundaries."""
    for n in range(3):
        append(d, numbered(n * 3000, 3000))
        rotate(d, 10)
    append(d, numbered(9000, 500))
    batches = read(d, flt=Filter(records=True))
    assert lines(batches) == [b"line %d\n" % i for i in range(9500)]
    for i, batch in enumerate(batches[:-1]):
        resumed = read(d, offset=batch.offset, flt=Filter(records=True))
        assert lines(resumed) == lines(batches[i + 1 :])


def test_offset_in_a_deleted_segment_continues_at_the_oldest_data(d: LogDir) -> None:
    """A position inside a segment retention removed resumes at the oldest remaining record."""
    append(d, numbered(0, 10))
    first = read(d)
    rotate(d, 5)
    append(d, numbered(10, 10))
    rotate(d, 5)
    append(d, numbered(20, 10))
    rotate(d, 1)
    assert text(read(d, offset=first[0].offset // 2)) == b"".join(b"line %d\n" % i for i in range(20, 30))


def test_restart_continues_offsets(d: LogDir) -> None:
    """A new LogDir on the same directory (a restarted service) keeps positions, even with every segment gone."""
    append(d, numbered(0, 10))
    rotate(d, 1)
    append(d, numbered(10, 10))
    rotate(d, 1)
    append(d, numbered(20, 10))
    end = read(d)[-1].offset
    rotate(d, 1)
    append(d, numbered(30, 5))
    apply_retention(d, 1)
    assert d.segments() == []
    again = LogDir(d.path)
    assert again.floor == end
    batches = read(again, offset=end)
    assert text(batches) == b"".join(b"line %d\n" % i for i in range(30, 35))
    assert batches[-1].offset == end + len(numbered(30, 5))


def test_chunks_are_byte_exact_versus_records(d: LogDir) -> None:
    """The chunk form and the record form carry the same bytes, and the same final offset."""
    rng = random.Random(3)
    raw = b""
    for i in range(5000):
        raw += rec(b"x" * rng.randint(0, 80), partial=rng.random() < 0.2, stream=rng.choice([STDOUT, STDERR]), ns=i)
    append(d, raw)
    chunks, records = read(d), read(d, flt=Filter(records=True))
    for stream in (STDOUT, STDERR):
        assert b"".join(c for b in chunks for s, c in b.chunks if s == stream) == b"".join(
            r[2] for b in records for r in b.records if r[1] == stream
        )
    assert chunks[-1].offset == records[-1].offset == len(raw)


def test_incomplete_final_record_is_read_once_complete(d: LogDir) -> None:
    """A final record without its newline is not consumed, and is read whole once completed."""
    full = rec(b"done") + rec(b"half-written")
    append(d, full[:-5])
    first = read(d)
    assert text(first) == b"done\n"
    append(d, full[-5:])
    assert text(read(d, offset=first[-1].offset)) == b"half-written\n"


def test_a_file_cut_at_its_size_limit_is_read_up_to_its_last_whole_record(d: LogDir) -> None:
    """A file the file-size limit stopped in the middle of a record (the logs service was down), then
    rotated: its whole records, then the next file's, the cut record's head skipped, forwards and from the tail."""
    append(d, numbered(0, 10) + rec(b"cut off")[:20])
    assert rotate(d, 10)
    append(d, numbered(10, 5))
    want = [b"line %d\n" % i for i in range(15)]
    assert lines(read(d, flt=Filter(records=True))) == want
    assert text(read(d, tail=7)) == b"".join(want[-7:])


def test_partial_line_at_the_end_is_returned_as_partial(d: LogDir) -> None:
    """Output that stopped mid-line comes back as one partial record when not following."""
    append(d, rec(b"a") + rec(b"b1", partial=True) + rec(b"b2", partial=True))
    records = [r for b in read(d, flt=Filter(records=True)) for r in b.records]
    assert [(r[2], r[3]) for r in records] == [(b"a\n", False), (b"b1b2", True)]


def test_missing_log_gives_nothing(d: LogDir) -> None:
    """Without follow, a log conmon has not created yet reads as empty."""
    assert read(d) == []


def linear_first_at_or_after(raw: bytes, t: int) -> int:
    """Reference for find_time: position of the first record at or after ``t`` by a linear scan."""
    pos = 0
    for line in raw.split(b"\n")[:-1]:
        if parse_timestamp(line[:35]) >= t:
            return pos
        pos += len(line) + 1
    return len(raw)


@pytest.mark.parametrize("seed", range(4))
def test_since_binary_search_matches_a_linear_scan(d: LogDir, seed: int) -> None:
    """find_time over several segments agrees with a linear scan for random times."""
    rng = random.Random(seed)
    raw, ns = b"", 0
    for n in range(3):
        part = b""
        for _ in range(rng.randint(500, 3000)):
            ns += rng.choice([0, 0, 1, 1000, 1_000_000])
            part += rec(b"y" * rng.randint(0, 300), ns=ns, partial=rng.random() < 0.1)
        append(d, part)
        raw += part
        if n < 2:
            rotate(d, 10)
    t0 = parse_timestamp(SECOND % (0, 0))
    for t in [t0 - 5, t0, t0 + ns, t0 + ns + 1] + [t0 + rng.randint(0, ns) for _ in range(40)]:
        assert find_time(d, t) == linear_first_at_or_after(raw, t), t


def test_since_and_until_read(d: LogDir) -> None:
    """A read with since and until returns exactly the records in [since, until)."""
    append(d, numbered(0, 50))
    rotate(d, 10)
    append(d, numbered(50, 50))
    t0 = parse_timestamp(SECOND % (0, 0))
    batches = read(d, flt=Filter(since=t0 + 30, until=t0 + 70, records=True))
    assert lines(batches) == [b"line %d\n" % i for i in range(30, 70)]


def test_tail_reaches_into_older_segments(d: LogDir) -> None:
    """Tail N takes lines from the previous segment when the current file holds fewer than N."""
    append(d, numbered(0, 10))
    rotate(d, 10)
    append(d, numbered(10, 10))
    rotate(d, 10)
    append(d, numbered(20, 2))
    assert text(read(d, tail=5)) == b"".join(b"line %d\n" % i for i in range(17, 22))
    assert text(read(d, tail=100)) == b"".join(b"line %d\n" % i for i in range(22))


def test_tail_counts_lines_after_stream_filter_and_grep(d: LogDir) -> None:
    """Tail counts reassembled lines of the wanted streams that match the pattern."""
    import re

    append(
        d,
        rec(b"o1")
        + rec(b"e1", stream=STDERR)
        + rec(b"o", partial=True)
        + rec(b"2")
        + rec(b"e2", stream=STDERR)
        + rec(b"skip")
        + rec(b"o3"),
    )
    assert text(read(d, tail=2, flt=Filter(streams=frozenset({STDOUT})))) == b"skip\no3\n"
    assert text(read(d, tail=2, flt=Filter(grep=re.compile(rb"^o")))) == b"o2\no3\n"
    assert text(read(d, tail=1, flt=Filter(streams=frozenset({STDERR})))) == b"e2\n"


def test_tail_reads_only_the_end_of_a_big_log(d: LogDir) -> None:
    """Tail of a large log stops after the blocks that hold the answer."""
    append(d, numbered(0, 200_000))
    files = d.snapshot()
    assert tail_start(d, 10, files[-1].end, 0, Filter()) == len(numbered(0, 199_990))


async def _follow(d: LogDir, last: bytes, opts: ReadOptions) -> list[bytes]:
    """Followed record data until the record ``last`` arrives."""
    got: list[bytes] = []
    async with aclosing(read_log(d, opts, poll_max=0.005, hold=0.2)) as batches:
        async for batch in batches:
            got.extend(r[2] for r in batch.records)
            if got and got[-1] == last:
                break
    return got


def test_follow_across_manual_rotations_has_no_gap_or_repeat(d: LogDir) -> None:
    """A follower sees every numbered line exactly once while the log is renamed and recreated."""

    async def scenario() -> list[bytes]:
        follower = asyncio.create_task(_follow(d, b"line 2999\n", ReadOptions(follow=True, flt=Filter(records=True))))
        for n in range(30):
            append(d, numbered(n * 100, 100))
            if n % 7 == 6:
                rotate(d, 3)
            await asyncio.sleep(0.002)
        return await asyncio.wait_for(follower, 5)

    assert asyncio.run(scenario()) == [b"line %d\n" % i for i in range(3000)]


def test_follow_holds_a_partial_line_then_emits_it(d: LogDir) -> None:
    """A follower holds an unterminated line briefly, emits it as partial, and continues without repeat."""

    async def scenario() -> list[tuple[bytes, bool]]:
        got: list[tuple[bytes, bool]] = []
        append(d, rec(b"a") + rec(b"prompt> ", partial=True))
        async with aclosing(read_log(d, ReadOptions(follow=True, flt=Filter(records=True)), poll_max=0.01, hold=0.1)) as batches:
            async for batch in batches:
                got.extend((r[2], r[3]) for r in batch.records)
                if len(got) == 2:
                    append(d, rec(b"yes"))
                if len(got) == 3:
                    break
        return got

    assert asyncio.run(asyncio.wait_for(scenario(), 5)) == [(b"a\n", False), (b"prompt> ", True), (b"yes\n", False)]


def test_follow_applies_filters(d: LogDir) -> None:
    """Streams and grep filters apply to followed output too."""
    import re

    async def scenario() -> list[bytes]:
        opts = ReadOptions(follow=True, flt=Filter(streams=frozenset({STDERR}), grep=re.compile(rb"keep"), records=True))
        task = asyncio.create_task(_follow(d, b"keep end\n", opts))
        await asyncio.sleep(0.02)
        append(d, rec(b"keep out") + rec(b"drop", stream=STDERR) + rec(b"keep err", stream=STDERR))
        await asyncio.sleep(0.02)
        append(d, rec(b"keep end", stream=STDERR))
        return await asyncio.wait_for(task, 5)

    assert asyncio.run(scenario()) == [b"keep err\n", b"keep end\n"]


def open_fds(path: Path) -> int:
    """How many of this process's descriptors refer to ``path``."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            count += os.readlink(f"/proc/self/fd/{fd}") == str(path)
        except OSError:
            pass
    return count


def test_follow_waits_for_the_file_and_cancels_cleanly(d: LogDir) -> None:
    """Follow waits for conmon to create the log, and cancelling it closes the file."""

    async def scenario() -> list[bytes]:
        got: list[bytes] = []

        async def consume() -> None:
            async for batch in read_log(d, ReadOptions(follow=True), poll_max=0.01):
                got.extend(c for _s, c in batch.chunks)

        task = asyncio.create_task(consume())
        await asyncio.sleep(0.05)
        append(d, rec(b"hello"))
        for _ in range(200):
            if got:
                break
            await asyncio.sleep(0.01)
        assert open_fds(d.current) == 1
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return got

    assert asyncio.run(scenario()) == [b"hello\n"]
    assert open_fds(d.current) == 0


def test_follow_ends_when_the_log_directory_is_removed(d: LogDir) -> None:
    """A follower stops once the log's directory is gone (RemoveLog)."""
    import shutil

    async def scenario() -> list[Batch]:
        task = asyncio.create_task(collect(read_log(d, ReadOptions(follow=True), poll_max=0.01)))
        await asyncio.sleep(0.03)
        shutil.rmtree(d.path)
        return await asyncio.wait_for(task, 2)

    assert asyncio.run(scenario()) == []


def test_lines_straddling_batches_are_whole_and_offsets_chain(d: LogDir) -> None:
    """Long lines cut across batch boundaries come back whole, and resuming from each offset repeats nothing."""
    rng = random.Random(5)
    expected, raw = [], b""
    while len(raw) < 3 * 1024 * 1024:
        pieces = [b"%d:" % len(expected) + b"p" * rng.randint(0, 8000) for _ in range(rng.randint(1, 4))]
        raw += b"".join(rec(p, partial=True) for p in pieces[:-1]) + rec(pieces[-1])
        expected.append(b"".join(pieces) + b"\n")
    append(d, raw)
    batches = read(d, flt=Filter(records=True))
    assert lines(batches) == expected
    assert all(not r[3] for b in batches for r in b.records)
    for i, batch in enumerate(batches[:-1]):
        assert lines(read(d, offset=batch.offset, flt=Filter(records=True))) == lines(batches[i + 1 :])


@pytest.mark.parametrize("seed", range(6))
def test_tail_matches_the_last_lines_of_a_full_read(d: LogDir, seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Tail N over random P/F records of both streams, split in segments, equals the last N lines of a full read."""
    import re

    import teu_logs.tail

    monkeypatch.setattr(teu_logs.tail, "TAIL_BLOCK", 97)  # many block boundaries inside records
    rng = random.Random(seed)
    for n in range(3):
        append(
            d,
            b"".join(
                rec(
                    rng.choice([b"", b"a", b"bb", b"ab" * rng.randint(1, 30)]),
                    partial=rng.random() < 0.3,
                    stream=rng.choice([STDOUT, STDERR]),
                )
                for _ in range(rng.randint(1, 40))
            ),
        )
        if n < 2:
            rotate(d, 10)
    for flt in (
        Filter(records=True),
        Filter(streams=frozenset({STDERR}), records=True),
        Filter(grep=re.compile(rb"b$"), records=True),
    ):
        everything = lines(read(d, flt=flt))
        for tail in (1, 2, 5, 17, 1000):
            assert lines(read(d, tail=tail, flt=flt)) == everything[-tail:], (flt, tail)
