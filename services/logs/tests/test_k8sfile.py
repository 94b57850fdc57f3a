"""Tests of the k8s-file record parser."""

from __future__ import annotations

import calendar

import pytest

from teu_logs.k8sfile import STDERR, STDOUT, parse_records, parse_timestamp

TS = b"2026-11-30T06:24:30.027115861+00:00"
TS_NS = calendar.timegm((2026, 11, 30, 6, 24, 30)) * 1_000_000_000 + 27115861


def test_full_record_keeps_its_newline() -> None:
    """An F record's data is its content plus the newline that ended the line."""
    assert parse_records(TS + b" stdout F out1\n") == [(TS_NS, STDOUT, b"out1\n")]


def test_partial_record_has_no_newline() -> None:
    """A P record's data is its content only; the record's newline is just a terminator."""
    assert parse_records(TS + b" stderr P abc\n") == [(TS_NS, STDERR, b"abc")]


def test_empty_full_record_is_a_bare_newline() -> None:
    """An F record with empty content (a line ended right after a P chunk) yields just the newline."""
    assert parse_records(TS + b" stdout F \n") == [(TS_NS, STDOUT, b"\n")]


def test_binary_bytes_survive() -> None:
    """NUL, 0xff and carriage returns pass through unchanged."""
    content = b"a\x00b\xff\rc\t \x01"
    assert parse_records(TS + b" stdout F " + content + b"\n") == [(TS_NS, STDOUT, content + b"\n")]


def test_long_line_split_in_partials_reassembles() -> None:
    """A line conmon split into P chunks then an empty F rebuilds byte for byte."""
    line = bytes(range(256)).replace(b"\n", b"") * 80
    chunks = [line[i : i + 8192] for i in range(0, len(line), 8192)]
    buf = b"".join(TS + b" stdout P " + c + b"\n" for c in chunks) + TS + b" stdout F \n"
    records = parse_records(buf)
    assert [r[2] for r in records[:-1]] == chunks
    assert b"".join(r[2] for r in records) == line + b"\n"


def test_malformed_lines_are_skipped() -> None:
    """Lines that are not conmon records are dropped, the others kept."""
    buf = b"garbage\n" + TS + b" stdout X x\n" + b"not-a-timestamp-at-all-not-at-all-x stdout F y\n" + TS + b" stdout F ok\n"
    assert parse_records(buf) == [(TS_NS, STDOUT, b"ok\n")]


@pytest.mark.parametrize(
    ("ts", "utc"),
    [
        (b"2026-11-30T06:24:30.000000001+00:00", (2026, 11, 30, 6, 24, 30)),
        (b"2026-11-30T01:24:30.000000001-05:00", (2026, 11, 30, 6, 24, 30)),
        (b"2026-12-01T01:54:30.000000001+05:30", (2026, 11, 30, 20, 24, 30)),
        (b"2024-02-29T23:59:59.000000001-01:00", (2024, 3, 1, 0, 59, 59)),
        (b"1970-01-01T00:00:00.000000001+00:00", (1970, 1, 1, 0, 0, 0)),
    ],
)
def test_timestamp_offsets(ts: bytes, utc: tuple[int, int, int, int, int, int]) -> None:
    """Local timestamps with any UTC offset convert to the right Unix nanoseconds."""
    assert parse_timestamp(ts) == calendar.timegm((*utc, 0, 0, 0)) * 1_000_000_000 + 1


def test_timestamp_keeps_nanoseconds() -> None:
    """All nine fractional digits are kept."""
    assert parse_timestamp(TS) % 1_000_000_000 == 27115861


@pytest.mark.parametrize("ts", [b"2026-11-30 06:24:30.027115861+00:00", b"2026-11-30T06:24:30.027115861Z00:00", b"short"])
def test_bad_timestamp_raises(ts: bytes) -> None:
    """A timestamp not in conmon's format raises ValueError."""
    with pytest.raises(ValueError, match="timestamp"):
        parse_timestamp(ts)
