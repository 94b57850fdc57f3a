"""A tiny authoritative DNS responder per user network: container names → their addresses.

It answers A queries for the names of the containers on its network and nothing else: every other
name is NXDOMAIN and nothing is ever forwarded, so a container can learn no more than its peers'
addresses. It listens on the network's gateway address (port 53) inside the engine's own network
namespace; the containers' resolv.conf points there.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import IPv4Address
from typing import cast

import structlog

log = structlog.get_logger()

TYPE_A, TYPE_AAAA, CLASS_IN = 1, 28, 1
NOERROR, FORMERR, NXDOMAIN, NOTIMP = 0, 1, 3, 4
IP_FREEBIND = 15  # <linux/in.h>; not exported by the socket module
TTL = 5  # short: containers come and go, and their addresses with them
_HEADER = struct.Struct("!HHHHHH")
Lookup = Callable[[str], IPv4Address | None]


class Malformed(ValueError):
    """The datagram is not a DNS query we can parse."""


@dataclass(frozen=True)
class Query:
    """The parts of a query an answer needs."""

    id: int
    flags: int
    name: str
    qtype: int
    qclass: int
    question: bytes  # the question section as received, echoed in the answer


def parse_query(data: bytes) -> Query:
    """Decodes a standard query with one question; Malformed otherwise."""
    if len(data) < _HEADER.size:
        raise Malformed("short header")
    qid, flags, qdcount, _, _, _ = _HEADER.unpack_from(data)
    if flags & 0x8000:
        raise Malformed("not a query")
    if qdcount != 1:
        raise Malformed("want exactly one question")
    labels: list[str] = []
    pos = _HEADER.size
    while True:
        if pos >= len(data):
            raise Malformed("truncated name")
        length = data[pos]
        pos += 1
        if length == 0:
            break
        if length & 0xC0:
            raise Malformed("compressed name in question")
        if pos + length > len(data):
            raise Malformed("truncated label")
        labels.append(data[pos : pos + length].decode("ascii", errors="replace"))
        pos += length
    if pos + 4 > len(data):
        raise Malformed("truncated question")
    qtype, qclass = struct.unpack_from("!HH", data, pos)
    return Query(qid, flags, ".".join(labels).lower(), qtype, qclass, data[_HEADER.size : pos + 4])


def answer(q: Query, lookup: Lookup) -> bytes:
    """The response to ``q``: the address for a known name's A query, an empty NOERROR for other
    types of a known name (so resolvers do not give up on it), NXDOMAIN for any other name."""
    opcode = (q.flags >> 11) & 0xF
    addr = lookup(q.name) if opcode == 0 and q.qclass == CLASS_IN else None
    records = b""
    if opcode != 0:
        rcode = NOTIMP
    elif addr is None:
        rcode = NXDOMAIN
    else:
        rcode = NOERROR
        if q.qtype == TYPE_A:
            # the name as a pointer to the question (offset 12), then type, class, TTL, length, address
            records = struct.pack("!HHHIH", 0xC00C, TYPE_A, CLASS_IN, TTL, 4) + addr.packed
    flags = 0x8000 | (opcode << 11) | 0x0400 | (q.flags & 0x0100) | rcode  # QR, AA, RD echoed
    return _HEADER.pack(q.id, flags, 1, 1 if records else 0, 0, 0) + q.question + records


def formerr(data: bytes) -> bytes | None:
    """FORMERR for a query we cannot parse, if it has at least an id; None to stay silent."""
    if len(data) < 2:
        return None
    return _HEADER.pack(struct.unpack_from("!H", data)[0], 0x8000 | FORMERR, 0, 0, 0, 0)


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, lookup: Lookup) -> None:
        self.lookup = lookup
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # a datagram endpoint's transport, whatever class the event loop in use gives it
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | bytes, int]) -> None:
        reply: bytes | None
        try:
            reply = answer(parse_query(data), self.lookup)
        except Malformed:
            reply = formerr(data)
        except Exception:  # a lookup failure must not take the responder down
            log.exception("dns_lookup_failed")
            return
        if reply is not None and self.transport is not None:
            self.transport.sendto(reply, addr)


class Responder:
    """One network's responder, bound to its gateway address."""

    def __init__(self, transport: asyncio.DatagramTransport, address: str) -> None:
        self._transport = transport
        self.address = address

    @classmethod
    async def start(cls, address: str, lookup: Lookup, port: int = 53) -> Responder:
        """Binds ``address:port`` (UDP) and serves until closed."""
        loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            # FREEBIND: the bridge may still be without carrier (no container plugged in yet)
            sock.setsockopt(socket.IPPROTO_IP, IP_FREEBIND, 1)
            sock.bind((address, port))
        except OSError:
            sock.close()
            raise
        transport, _ = await loop.create_datagram_endpoint(lambda: _Protocol(lookup), sock=sock)
        log.info("dns_listening", address=address, port=port)
        return cls(transport, address)

    def close(self) -> None:
        """Stops answering."""
        self._transport.close()
