"""Tests of block processing: line reassembly, filters, and the chunk and record forms."""

from __future__ import annotations

import random
import re

import pytest

from teu_logs.k8sfile import STDERR, STDOUT, parse_timestamp
from teu_logs.scan import Filter, scan_block

TS = b"2026-11-30T06:24:30.%09d+00:00"


def rec(content: bytes, *, partial: bool = False, stream: int = STDOUT, ns: int = 0) -> bytes:
    """One record as conmon writes it, at nanosecond ``ns`` of a fixed second."""
    name = b"stdout" if stream == STDOUT else b"stderr"
    return b"%s %s %s %s\n" % (TS % ns, name, b"P" if partial else b"F", content)


def by_stream_chunks(block: bytes, flt: Filter) -> dict[int, bytes]:
    """All chunk bytes of a final scan, joined per stream."""
    out: dict[int, bytes] = {STDOUT: b"", STDERR: b""}
    for stream, data in scan_block(block, flt, True).chunks:
        out[stream] += data
    return out


def by_stream_records(block: bytes, flt: Filter) -> dict[int, bytes]:
    """All record bytes of a final scan, joined per stream."""
    out: dict[int, bytes] = {STDOUT: b"", STDERR: b""}
    for _ts, stream, data, _partial in scan_block(block, flt._replace(records=True), True).records:
        out[stream] += data
    return out


def random_log(rng: random.Random, n: int, streams: tuple[int, ...] = (STDOUT, STDERR)) -> tuple[bytes, dict[int, bytes]]:
    """Random records and, per stream, the bytes the container wrote."""
    written: dict[int, bytes] = {STDOUT: b"", STDERR: b""}
    raw = b""
    for i in range(n):
        stream = rng.choice(streams)
        content = bytes(rng.choice(b"abc \x00\xff\r") for _ in range(rng.randint(0, 30)))
        partial = rng.random() < 0.3
        raw += rec(content, partial=partial, stream=stream, ns=i)
        written[stream] += content + (b"" if partial else b"\n")
    return raw, written


@pytest.mark.parametrize("seed", range(6))
def test_chunks_and_records_are_the_bytes_written(seed: int) -> None:
    """Both forms give back, per stream, exactly the bytes written, whatever the mix of P and F."""
    raw, written = random_log(random.Random(seed), 300)
    assert by_stream_chunks(raw, Filter()) == written
    assert by_stream_records(raw, Filter()) == written


@pytest.mark.parametrize("stream", [STDOUT, STDERR])
def test_fast_path_matches_general_path(stream: int) -> None:
    """A single-stream block (fast path) yields the same bytes as record-by-record parsing."""
    raw, written = random_log(random.Random(7), 500, streams=(stream,))
    chunks = scan_block(raw, Filter(), True).chunks
    assert chunks == [(stream, written[stream])]
    assert by_stream_records(raw, Filter()) == written


def test_fast_path_rejects_a_record_of_another_shape() -> None:
    """A damaged record in a single-stream block makes the fast path step aside, and it is skipped."""
    raw = rec(b"a") + b"garbage line\n" + rec(b"b")
    assert scan_block(raw, Filter(), True).chunks == [(STDOUT, b"a\nb\n")]


def test_long_line_is_one_record_with_exact_bytes() -> None:
    """A 20000-byte line split P 8192, P 8192, P 3616, F '' comes back as one record."""
    line = bytes(random.Random(1).choice(b"xyz\x00\xff") for _ in range(20000))
    raw = rec(line[:8192], partial=True) + rec(line[8192:16384], partial=True) + rec(line[16384:], partial=True) + rec(b"")
    records = scan_block(raw, Filter(records=True), False).records
    assert records == [(parse_timestamp(TS % 0), STDOUT, line + b"\n", False)]
    assert scan_block(raw, Filter(), False).chunks == [(STDOUT, line + b"\n")]


def test_trailing_partial_waits_unless_final() -> None:
    """An unterminated line at the end is held back (not consumed) unless the scan is final."""
    raw = rec(b"done") + rec(b"half", partial=True) + rec(b"more", partial=True)
    held = scan_block(raw, Filter(records=True), False)
    assert [r[2] for r in held.records] == [b"done\n"]
    assert held.consumed == len(rec(b"done"))
    flushed = scan_block(raw, Filter(records=True), True)
    assert [(r[2], r[3]) for r in flushed.records] == [(b"done\n", False), (b"halfmore", True)]
    assert flushed.consumed == len(raw)
    assert scan_block(raw, Filter(), True).chunks == [(STDOUT, b"done\nhalfmore")]


def test_other_stream_interrupts_a_pending_line() -> None:
    """A stderr record in the middle of a stdout line flushes the stdout part as partial; bytes stay exact."""
    raw = rec(b"ab", partial=True) + rec(b"err", stream=STDERR) + rec(b"cd")
    records = scan_block(raw, Filter(records=True), False).records
    assert [(r[1], r[2], r[3]) for r in records] == [(STDOUT, b"ab", True), (STDERR, b"err\n", False), (STDOUT, b"cd\n", False)]
    only_stdout = scan_block(raw, Filter(streams=frozenset({STDOUT}), records=True), False).records
    assert [(r[2], r[3]) for r in only_stdout] == [(b"abcd\n", False)]


def test_consecutive_same_stream_output_is_one_chunk() -> None:
    """Chunks join consecutive lines of one stream and split where the stream changes."""
    raw = rec(b"1") + rec(b"2") + rec(b"e", stream=STDERR) + rec(b"3")
    assert scan_block(raw, Filter(), True).chunks == [(STDOUT, b"1\n2\n"), (STDERR, b"e\n"), (STDOUT, b"3\n")]


def test_stream_filter() -> None:
    """Only the wanted streams come out, in both forms."""
    raw = rec(b"o1") + rec(b"e1", stream=STDERR) + rec(b"o2")
    assert scan_block(raw, Filter(streams=frozenset({STDERR})), True).chunks == [(STDERR, b"e1\n")]
    records = scan_block(raw, Filter(streams=frozenset({STDOUT}), records=True), True).records
    assert [r[2] for r in records] == [b"o1\n", b"o2\n"]


def test_grep_matches_whole_reassembled_lines() -> None:
    """The pattern sees each whole line without its newline: a match spanning P pieces counts."""
    raw = rec(b"hel", partial=True) + rec(b"lo world") + rec(b"bye") + rec(b"x hello")
    flt = Filter(grep=re.compile(rb"hello"))
    assert scan_block(raw, flt, True).chunks == [(STDOUT, b"hello world\nx hello\n")]
    anchored = Filter(grep=re.compile(rb"^bye$"), records=True)
    assert [r[2] for r in scan_block(raw, anchored, True).records] == [b"bye\n"]


def test_since_and_until_trim_inside_a_block() -> None:
    """Records before ``since`` and from ``until`` on are cut off; reaching ``until`` ends the read."""
    raw = b"".join(rec(b"%d" % i, ns=i) for i in range(10))
    base = parse_timestamp(TS % 0)
    scan = scan_block(raw, Filter(since=base + 3, until=base + 7, records=True), False)
    assert [r[2] for r in scan.records] == [b"3\n", b"4\n", b"5\n", b"6\n"]
    assert scan.done
    assert scan.consumed == len(b"".join(rec(b"%d" % i, ns=i) for i in range(7)))


def reference_chunks(block: bytes, flt: Filter) -> list[tuple[int, bytes]]:
    """Chunks built from the record form: consecutive same-stream records joined."""
    chunks: list[tuple[int, bytes]] = []
    for _ts, stream, data, _partial in scan_block(block, flt._replace(records=True), True).records:
        if chunks and chunks[-1][0] == stream:
            chunks[-1] = (stream, chunks[-1][1] + data)
        else:
            chunks.append((stream, data))
    return chunks


@pytest.mark.parametrize(
    "flt",
    [
        Filter(),
        Filter(streams=frozenset({STDERR})),
        Filter(grep=re.compile(rb"a")),
        Filter(streams=frozenset({STDOUT}), grep=re.compile(rb"^b")),
    ],
)
def test_mixed_stream_runs_match_the_record_form(flt: Filter) -> None:
    """An all-F block of both streams (split into runs with bytes operations) matches the per-record result."""
    rng = random.Random(11)
    block = b""
    for i in range(3000):
        stream = STDOUT if (i // rng.randint(1, 6)) % 2 else STDERR
        block += rec(bytes(rng.choice(b"ab \xff") for _ in range(rng.randint(0, 20))), stream=stream, ns=i)
    assert scan_block(block, flt, True).chunks == reference_chunks(block, flt)


def test_partial_split_ignores_marker_text_inside_content() -> None:
    """A line whose text contains " stdout P " is not mistaken for a P record header."""
    from teu_logs.scan import _strip_with_partials

    ts = b"2026-11-30T06:24:30.027115861+00:00"
    block = (ts + b" stdout F says stdout P here\n" + ts + b" stdout P abc\n" + ts + b" stdout F def\n"
             + ts + b" stdout F x stdout P y\n")  # fmt: skip
    assert _strip_with_partials(block, 1) == b"says stdout P here\nabcdef\nx stdout P y\n"
