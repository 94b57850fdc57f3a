"""Turning a block of whole k8s-file records into output: lines, filters, chunks or records.

A block is processed in isolation and reports how many of its bytes it consumed; the reader rereads
the rest later. That rest is always a line still being written: P records of one stream with nothing
after them. Lines are reassembled per stream; a line interrupted by a record of another wanted stream
is emitted as partial at that point, so at most one line is ever pending and everything before it is
done: an offset handed out never splits a line that was not also delivered.

The common block (one stream, the whole block wanted, no per-line timestamps) takes a fast path: one
C-speed regular-expression substitution strips the 45-byte prefixes, checked by counting that every
record matched. Anything else is parsed record by record.
"""

from __future__ import annotations

import re
from typing import Final, NamedTuple

from teu_logs.k8sfile import FLAG_POS, HEADER_LEN, PARTIAL, STDERR, STDOUT, TIMESTAMP_LEN, parse_timestamp
from teu_logs.timeindex import Read, first_at_or_after, ts_at

#: Output without timestamps: (stream, bytes exactly as written).
Chunk = tuple[int, bytes]
#: Output with timestamps: (Unix ns of the line's first record, stream, data, partial).
Line = tuple[int, int, bytes, bool]

# The date is checked, the rest only framed: a full check would cost a third of the fast path.
_TS: Final = rb"\d{4}-\d\d-\d\dT[^\n]{24}"
_NAMES: Final = {STDOUT: b"stdout", STDERR: b"stderr"}
# Whole-F blocks: "\n" + block, every "\n<prefix>" becomes "\n" (a literal first byte searches fastest).
_FAST_F: Final = {s: re.compile(rb"\n" + _TS + b" " + name + b" F ") for s, name in _NAMES.items()}
_FAST_F_ANY: Final = re.compile(rb"\n" + _TS + rb" std(?:out|err) F ")
# The last record of each run of one stream (the next record is of the other stream, or none).
_RUN_END: Final = re.compile(rb"\n[^\n]{35} (stdout|stderr) [^\n]*+(?=\n(?![^\n]{35} \1 ))")
# The ten bytes between timestamp and content → (stream, whether the record ends a line).
_KINDS: Final[dict[bytes, tuple[int, bool]]] = {
    b" stdout F ": (STDOUT, True),
    b" stdout P ": (STDOUT, False),
    b" stderr F ": (STDERR, True),
    b" stderr P ": (STDERR, False),
}


class Filter(NamedTuple):
    """What a read wants: streams, a pattern, a time window, and the form of the answer."""

    streams: frozenset[int] = frozenset((STDOUT, STDERR))
    grep: re.Pattern[bytes] | None = None
    #: Unix ns; 0 = no bound.
    since: int = 0
    #: Unix ns, exclusive; 0 = no bound.
    until: int = 0
    #: Per-line records with timestamps instead of chunks.
    records: bool = False


class Scan(NamedTuple):
    """The output of one block."""

    chunks: list[Chunk]
    records: list[Line]
    #: Bytes of the block that are done; the rest (a pending line) must be read again.
    consumed: int
    #: The block reached ``until``: the read is over.
    done: bool


def scan_block(block: bytes, flt: Filter, final: bool) -> Scan:
    """Output of ``block`` (whole records, ending with a newline) under ``flt``.

    ``final`` says no more records will follow this block in this read (end of a batch read, end of
    a rotated file, or a line held too long): a pending line is then emitted as partial.
    """
    start, end, done = 0, len(block), False
    if flt.since:
        first = ts_at(block, 0)
        if first is None or first < flt.since:
            start = first_at_or_after(_mem(block), 0, end, flt.since)
    if flt.until and start < end:
        last = ts_at(block, block.rfind(b"\n", 0, end - 1) + 1)
        if last is None or last >= flt.until:
            end = first_at_or_after(_mem(block), start, end, flt.until)
            done = end < len(block)
    if start >= end:
        return Scan([], [], end, done)
    body = block if start == 0 and end == len(block) else block[start:end]
    final = final or done
    if not flt.records:
        fast = _fast(body, flt, final)
        if fast is not None:
            return Scan(fast[0], [], start + fast[1], done)
    chunks, records, consumed = _general(body, flt, final)
    return Scan(chunks, records, start + consumed, done)


def _mem(buf: bytes) -> Read:
    """A reader over bytes in memory, for the bisection of a block."""
    return lambda pos, n: buf[pos : pos + n]


def trailing_partial_start(body: bytes) -> int:
    """Start of the run of P records at the end of ``body`` (``len(body)`` if it ends with an F)."""
    pos = len(body)
    while pos > 0:
        rec = body.rfind(b"\n", 0, pos - 1) + 1
        if pos - rec <= FLAG_POS or body[rec + FLAG_POS] != PARTIAL:
            break
        pos = rec
    return pos


def _stream_at(buf: bytes, rec: int) -> int:
    """Stream named by the record starting at ``buf[rec]`` (stdout unless it says stderr)."""
    return STDERR if buf[rec + TIMESTAMP_LEN + 1 : rec + TIMESTAMP_LEN + 7] == b"stderr" else STDOUT


def _fast(body: bytes, flt: Filter, final: bool) -> tuple[list[Chunk], int] | None:
    """Chunks of a block with bytes operations only; None if it needs record-by-record parsing.

    Three shapes are handled, each confirmed by a substitution count (every record must match, so a
    block of another shape costs a wasted C-speed pass): one stream all F; both streams all F (split
    into runs); one stream with P records.
    """
    cut = len(body) if final else trailing_partial_start(body)
    if cut == 0:
        return [], 0
    region = body if cut == len(body) else body[:cut]
    first = _stream_at(region, 0)
    single = first == _stream_at(region, region.rfind(b"\n", 0, len(region) - 1) + 1)
    # One cheap search picks the one pass that can succeed: conmon splits a line at each 8 KiB read,
    # so a fast writer's blocks usually hold P records, and trying the all-F pass first would waste it.
    partial = b" stdout P " in region or b" stderr P " in region  # memchr speed; a false hit only costs speed
    if single and not partial:
        # "\n" + region: each "\n<prefix>" becomes "\n"; the output keeps one newline per record
        # plus the leading one, which counts the records for the check.
        out, matched = _FAST_F[first].subn(b"\n", b"\n" + region)
        if matched == out.count(b"\n") - 1:
            return _single(first, out[1:], flt), cut
    if single and partial:
        joined = _strip_with_partials(region, first)
        if joined is not None:
            return _single(first, joined, flt), cut
    if not partial:
        mixed = _mixed(region, flt)
        if mixed is not None:
            return mixed, cut
    return None


def _strip_f(seg: bytes, stream: int) -> bytes | None:
    """The content of a run of F records of one stream (C-speed), or None if it holds anything else."""
    out, matched = _FAST_F[stream].subn(b"\n", b"\n" + seg)
    return out[1:] if matched == out.count(b"\n") - 1 else None


def _strip_with_partials(region: bytes, stream: int) -> bytes | None:
    """The content of a one-stream block that holds P records: runs of F records go through the C-speed
    substitution, each P record (one per conmon read that ended mid-line, so a few per 8 KiB) is cut
    out by hand without its terminating newline. A substitution with a group would call back into
    Python for every record."""
    parts: list[bytes] = []
    pos = 0
    marker = b" " + _NAMES[stream] + b" P "
    hit = region.find(marker)
    while hit >= 0:  # bytes.find is memchr-fast; a regex anchored at line starts is not
        rec = hit - TIMESTAMP_LEN
        if rec < pos or (rec > 0 and region[rec - 1] != 0x0A):  # the marker inside some content
            hit = region.find(marker, hit + 1)
            continue
        if rec > pos:
            run = _strip_f(region[pos:rec], stream)
            if run is None:
                return None
            parts.append(run)
        content = hit + len(marker)
        end = region.find(b"\n", content)
        if end < 0:
            return None
        parts.append(region[content:end])
        pos = end + 1
        hit = region.find(marker, pos)
    if pos < len(region):
        run = _strip_f(region[pos:], stream)
        if run is None:
            return None
        parts.append(run)
    return b"".join(parts)


def _single(stream: int, out: bytes, flt: Filter) -> list[Chunk]:
    """The chunk of a single-stream block's output, after the filters."""
    if stream not in flt.streams:
        return []
    if flt.grep is not None:
        out = _grep_lines(out, flt.grep)
    return [(stream, out)] if out else []


def _mixed(region: bytes, flt: Filter) -> list[Chunk] | None:
    """Chunks of an all-F block of both streams: strip every prefix at once, then cut at run ends.

    A position in the input maps to the output by subtracting 45 bytes per record before it, and
    the run ends come from one more C-speed scan, so Python work is per run, not per line.
    """
    src = b"\n" + region
    out, matched = _FAST_F_ANY.subn(b"\n", src)
    if matched != out.count(b"\n") - 1:
        return None
    chunks: list[Chunk] = []
    records = prev_in = prev_out = 0
    for m in _RUN_END.finditer(src):
        end = m.end()  # the newline that ends the run's last record
        records += src.count(b"\n", prev_in, end)
        out_end = end - HEADER_LEN * records
        stream = STDOUT if m.group(1) == b"stdout" else STDERR
        if stream in flt.streams:
            data = out[prev_out + 1 : out_end + 1]
            if flt.grep is not None:
                data = _grep_lines(data, flt.grep)
            if data:
                if chunks and chunks[-1][0] == stream:  # runs of the other stream were filtered out
                    chunks[-1] = (stream, chunks[-1][1] + data)
                else:
                    chunks.append((stream, data))
        prev_in, prev_out = end, out_end
    return chunks


def _grep_lines(data: bytes, rx: re.Pattern[bytes]) -> bytes:
    """The lines of ``data`` that match ``rx`` (searched without their newline); a final partial too."""
    lines = data.split(b"\n")
    last = lines.pop()
    search = rx.search
    kept = [line for line in lines if search(line)]
    out = b"\n".join(kept) + b"\n" if kept else b""
    if last and search(last):
        out += last
    return out


def _general(body: bytes, flt: Filter, final: bool) -> tuple[list[Chunk], list[Line], int]:
    """Record-by-record processing: any mix of streams, P and F records, timestamps, damage."""
    wanted, rx, want_records = flt.streams, flt.grep, flt.records
    kinds = _KINDS
    chunks: list[Chunk] = []
    records: list[Line] = []
    run_stream = 0  # stream of the chunk being built
    run: list[bytes] = []
    pend_stream = 0  # stream of the pending (P) line, 0 if none
    pend: list[bytes] = []
    pend_start = pend_ts = 0
    last_ts_raw, last_ts = b"", 0
    pos = 0

    def emit(ts: int, stream: int, data: bytes, partial: bool) -> None:
        nonlocal run_stream, run
        if rx is not None and not rx.search(data if partial else data[:-1]):
            return
        if want_records:
            records.append((ts, stream, data, partial))
        elif stream == run_stream:
            run.append(data)
        else:
            if run:
                chunks.append((run_stream, b"".join(run)))
            run_stream, run = stream, [data]

    lines = body.split(b"\n")
    lines.pop()
    for raw in lines:
        size = len(raw) + 1
        kind = kinds.get(raw[TIMESTAMP_LEN:HEADER_LEN])
        if kind is None or kind[0] not in wanted:
            pos += size
            continue
        stream, full = kind
        if want_records:
            ts_raw = raw[:TIMESTAMP_LEN]
            if ts_raw != last_ts_raw:
                try:
                    last_ts = parse_timestamp(ts_raw)
                except ValueError:
                    last_ts = 0  # keep the bytes: the chunk form has no timestamps to check either
                last_ts_raw = ts_raw
        if pend_stream and pend_stream != stream:
            emit(pend_ts, pend_stream, b"".join(pend), True)  # interrupted by the other stream
            pend_stream = 0
        if full:
            if pend_stream:
                emit(pend_ts, stream, b"".join(pend) + raw[HEADER_LEN:] + b"\n", False)
                pend_stream = 0
            else:
                emit(last_ts, stream, raw[HEADER_LEN:] + b"\n", False)
        elif pend_stream:
            pend.append(raw[HEADER_LEN:])
        else:
            pend_stream, pend, pend_start, pend_ts = stream, [raw[HEADER_LEN:]], pos, last_ts
        pos += size
    consumed = len(body)
    if pend_stream:
        if final:
            emit(pend_ts, pend_stream, b"".join(pend), True)
        else:
            consumed = pend_start
    if run:
        chunks.append((run_stream, b"".join(run)))
    return chunks, records, consumed
