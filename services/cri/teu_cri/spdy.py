"""SPDY/3 framing, as Kubernetes' streaming clients speak it (client-go over moby/spdystream): the
subset a streaming server needs. Streams are opened by the client (SYN_STREAM with headers, answered
by SYN_REPLY); data frames carry bytes both ways, FIN ends a direction; headers are zlib-compressed
with SPDY/3's dictionary, one compression context per direction for the whole connection. Flow
control is granted generously (a WINDOW_UPDATE per data frame read) and not enforced on our side.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
import zlib
from collections.abc import Callable

VERSION = 3
SYN_STREAM, SYN_REPLY, RST_STREAM, SETTINGS, PING, GOAWAY, HEADERS, WINDOW_UPDATE = 1, 2, 3, 4, 6, 7, 8, 9
FLAG_FIN = 0x01
#: Largest frame accepted from a client (SPDY allows 16 MiB; kubelet clients send a few KiB at most).
MAX_FRAME = 1 << 20
#: Largest decompressed header block.
MAX_HEADERS = 64 << 10
#: Most bytes buffered from a client stream that nothing reads yet.
MAX_BUFFERED = 8 << 20

#: SPDY/3's zlib dictionary (draft 3 of the protocol, section 2.6.10.1): 1423 bytes.
DICTIONARY = (
    b"\x00\x00\x00\x07options\x00\x00\x00\x04head\x00\x00\x00\x04p"
    b"ost\x00\x00\x00\x03put\x00\x00\x00\x06delete\x00\x00\x00\x05trac"
    b"e\x00\x00\x00\x06accept\x00\x00\x00\x0eaccept-charset\x00\x00\x00"
    b"\x0faccept-encoding\x00\x00\x00\x0faccept-language\x00\x00\x00\ra"
    b"ccept-ranges\x00\x00\x00\x03age\x00\x00\x00\x05allow\x00\x00\x00\r"
    b"authorization\x00\x00\x00\rcache-control\x00\x00\x00\nconnection"
    b"\x00\x00\x00\x0ccontent-base\x00\x00\x00\x10content-encoding"
    b"\x00\x00\x00\x10content-language\x00\x00\x00\x0econtent-leng"
    b"th\x00\x00\x00\x10content-location\x00\x00\x00\x0bcontent-md"
    b"5\x00\x00\x00\rcontent-range\x00\x00\x00\x0ccontent-type\x00\x00"
    b"\x00\x04date\x00\x00\x00\x04etag\x00\x00\x00\x06expect"
    b"\x00\x00\x00\x07expires\x00\x00\x00\x04from\x00\x00\x00\x04h"
    b"ost\x00\x00\x00\x08if-match\x00\x00\x00\x11if-modified-since"
    b"\x00\x00\x00\rif-none-match\x00\x00\x00\x08if-range\x00\x00\x00"
    b"\x13if-unmodified-since\x00\x00\x00\rlast-modified\x00\x00\x00"
    b"\x08location\x00\x00\x00\x0cmax-forwards\x00\x00\x00\x06pragma\x00"
    b"\x00\x00\x12proxy-authenticate\x00\x00\x00\x13proxy-authorization"
    b"\x00\x00\x00\x05range\x00\x00\x00\x07referer\x00\x00\x00\x0bretr"
    b"y-after\x00\x00\x00\x06server\x00\x00\x00\x02te\x00\x00\x00\x07t"
    b"railer\x00\x00\x00\x11transfer-encoding\x00\x00\x00\x07upgra"
    b"de\x00\x00\x00\nuser-agent\x00\x00\x00\x04vary\x00\x00\x00\x03"
    b"via\x00\x00\x00\x07warning\x00\x00\x00\x10www-authenticate\x00\x00"
    b"\x00\x06method\x00\x00\x00\x03get\x00\x00\x00\x06statu"
    b"s\x00\x00\x00\x06200 OK\x00\x00\x00\x07version\x00\x00\x00\x08HT"
    b"TP/1.1\x00\x00\x00\x03url\x00\x00\x00\x06public\x00\x00\x00\nset-c"
    b"ookie\x00\x00\x00\nkeep-alive\x00\x00\x00\x06origin100101201202205"
    b"2063003023033043053063074024054064074084094104114124134144154164"
    b"17502504505203 Non-Authoritative Information204 No Content301 Mo"
    b"ved Permanently400 Bad Request401 Unauthorized403 Forbidden404 N"
    b"ot Found500 Internal Server Error501 Not Implemented503 Service "
    b"UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:0"
    b"0:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,ima"
    b"ge/png,image/jpg,image/gif,application/xml,application/xhtml+xml"
    b",text/plain,text/javascript,publicprivatemax-age=gzip,deflate,sd"
    b"chcharset=utf-8charset=iso-8859-1,utf-,*,enq=0."
)


class ProtocolError(Exception):
    """The peer broke SPDY: the connection ends."""


def encode_headers(headers: dict[str, str]) -> bytes:
    """A header block before compression: count, then each name and value, 32-bit lengths."""
    out = [struct.pack("!I", len(headers))]
    for name, value in headers.items():
        n, v = name.lower().encode(), value.encode()
        out += [struct.pack("!I", len(n)), n, struct.pack("!I", len(v)), v]
    return b"".join(out)


def decode_headers(block: bytes) -> dict[str, str]:
    """A decompressed header block; several values of one name (NUL-separated) are kept joined."""
    try:
        (count,), pos = struct.unpack_from("!I", block), 4
        out = {}
        for _ in range(count):
            (size,) = struct.unpack_from("!I", block, pos)
            name, pos = block[pos + 4 : pos + 4 + size], pos + 4 + size
            (size,) = struct.unpack_from("!I", block, pos)
            value, pos = block[pos + 4 : pos + 4 + size], pos + 4 + size
            out[name.decode(errors="replace").lower()] = value.decode(errors="replace")
        return out
    except struct.error as exc:
        raise ProtocolError("a malformed header block") from exc


class Stream:
    """One stream the client opened: its headers, its bytes in, ours out."""

    def __init__(self, session: Session, sid: int, headers: dict[str, str]) -> None:
        self.session, self.id, self.headers = session, sid, headers
        self._incoming: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._buffered = 0
        self.closed = False  # our direction ended

    def _feed(self, data: bytes | None) -> None:
        if data is not None:
            self._buffered += len(data)
            if self._buffered > MAX_BUFFERED:
                raise ProtocolError(f"stream {self.id} sent more than {MAX_BUFFERED} bytes nobody read")
        self._incoming.put_nowait(data)

    async def read(self) -> bytes | None:
        """The next bytes from the client, None once it ended its direction."""
        data = await self._incoming.get()
        if data is None:
            self._incoming.put_nowait(None)  # later reads see the end too
        else:
            self._buffered -= len(data)
        return data

    async def write(self, data: bytes) -> None:
        if data and not self.closed:
            await self.session.data(self.id, data, fin=False)

    async def close(self) -> None:
        """Ends our direction (FIN), once."""
        if not self.closed:
            self.closed = True
            await self.session.data(self.id, b"", fin=True)


class Session:
    """A server's SPDY connection: ``on_stream`` is told of each stream the client opens."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, on_stream: Callable[[Stream], None]) -> None:
        self.reader, self.writer, self.on_stream = reader, writer, on_stream
        self.streams: dict[int, Stream] = {}
        self._inflate = zlib.decompressobj(zdict=DICTIONARY)
        self._deflate = zlib.compressobj(level=9, zdict=DICTIONARY)
        self._lock = asyncio.Lock()

    async def _send(self, frame: bytes) -> None:
        async with self._lock:
            self.writer.write(frame)
            await self.writer.drain()

    async def control(self, kind: int, flags: int, payload: bytes) -> None:
        await self._send(struct.pack("!HHI", 0x8000 | VERSION, kind, (flags << 24) | len(payload)) + payload)

    async def data(self, sid: int, payload: bytes, fin: bool) -> None:
        for i in range(0, max(len(payload), 1), MAX_FRAME):
            part = payload[i : i + MAX_FRAME]
            last = i + MAX_FRAME >= len(payload)
            await self._send(struct.pack("!II", sid & 0x7FFFFFFF, ((FLAG_FIN if fin and last else 0) << 24) | len(part)) + part)

    def _compressed(self, headers: dict[str, str]) -> bytes:
        return self._deflate.compress(encode_headers(headers)) + self._deflate.flush(zlib.Z_SYNC_FLUSH)

    def _headers(self, block: bytes) -> dict[str, str]:
        try:
            raw = self._inflate.decompress(block, MAX_HEADERS)
        except zlib.error as exc:
            raise ProtocolError(f"a header block that does not inflate: {exc}") from exc
        if self._inflate.unconsumed_tail:
            raise ProtocolError(f"a header block over {MAX_HEADERS} bytes")
        return decode_headers(raw)

    async def run(self) -> None:
        """Reads frames until the client goes (or breaks the protocol); every stream then sees its end."""
        try:
            while True:
                head = await self.reader.readexactly(8)
                first, second = struct.unpack("!II", head)
                flags, length = second >> 24, second & 0xFFFFFF
                if length > MAX_FRAME:
                    raise ProtocolError(f"a frame of {length} bytes")
                payload = await self.reader.readexactly(length)
                if first & 0x80000000:
                    await self._on_control((first >> 16) & 0x7FFF, first & 0xFFFF, flags, payload)
                else:
                    await self._on_data(first & 0x7FFFFFFF, flags, payload)
        except (asyncio.IncompleteReadError, ConnectionError, ProtocolError):
            pass
        finally:
            for stream in self.streams.values():
                stream._feed(None)

    async def _on_control(self, version: int, kind: int, flags: int, payload: bytes) -> None:
        if version != VERSION:
            raise ProtocolError(f"SPDY version {version}")
        if kind == SYN_STREAM:
            if len(payload) < 10:
                raise ProtocolError("a short SYN_STREAM")
            sid = struct.unpack_from("!I", payload)[0] & 0x7FFFFFFF
            stream = Stream(self, sid, self._headers(payload[10:]))
            self.streams[sid] = stream
            await self.control(SYN_REPLY, 0, struct.pack("!I", sid) + self._compressed({}))
            self.on_stream(stream)
            if flags & FLAG_FIN:
                stream._feed(None)
        elif kind == RST_STREAM and len(payload) >= 4:
            sid = struct.unpack_from("!I", payload)[0] & 0x7FFFFFFF
            if (reset := self.streams.get(sid)) is not None:
                reset.closed = True
                reset._feed(None)
        elif kind == PING:
            await self.control(PING, 0, payload)
        elif kind == GOAWAY:
            raise ProtocolError("the client went away")
        elif kind == HEADERS and len(payload) >= 4:
            self._headers(payload[4:])  # kept in step with the compression context, otherwise ignored

    async def _on_data(self, sid: int, flags: int, payload: bytes) -> None:
        stream = self.streams.get(sid)
        if stream is None:
            return
        if payload:
            stream._feed(payload)
            await self.control(WINDOW_UPDATE, 0, struct.pack("!II", sid, len(payload)))
        if flags & FLAG_FIN:
            stream._feed(None)

    async def close(self) -> None:
        """Says goodbye and closes the connection."""
        with contextlib.suppress(ConnectionError, RuntimeError):
            last = max(self.streams, default=0)
            await self.control(GOAWAY, 0, struct.pack("!II", last, 0))
            self.writer.close()
            await self.writer.wait_closed()
