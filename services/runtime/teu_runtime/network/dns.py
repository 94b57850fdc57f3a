"""A tiny DNS responder per user network: container names and aliases → their addresses, every
other name forwarded (Docker's embedded DNS).

It answers A queries for the names, short ids and aliases of the containers on its network itself,
authoritatively. Any other query is relayed as it is to the upstream servers of the container that
asked (its ``--dns`` servers, else the engine's: ``TEU_DNS_UPSTREAM``, else the host's resolv.conf),
one after the other, and the first answer goes back unchanged; none within the timeout is SERVFAIL,
and no upstream at all (``TEU_DNS_UPSTREAM=none``) is NXDOMAIN. It listens on the network's gateway
address (port 53) inside the engine's own network namespace, so a loopback upstream such as
systemd-resolved's 127.0.0.53 is reachable from it; the containers' resolv.conf points there.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address
from typing import cast

import structlog

log = structlog.get_logger()

TYPE_A, TYPE_AAAA, CLASS_IN = 1, 28, 1
NOERROR, FORMERR, SERVFAIL, NXDOMAIN, NOTIMP = 0, 1, 2, 3, 4
FORWARD_TIMEOUT = 2.0  # per upstream server
MAX_FORWARDS = 64  # queries relayed at once; more get SERVFAIL
IP_FREEBIND = 15  # <linux/in.h>; not exported by the socket module
TTL = 5  # short: containers come and go, and their addresses with them
_HEADER = struct.Struct("!HHHHHH")
Lookup = Callable[[str], IPv4Address | None]
#: The upstream servers (address, port) for the client at this address; empty: answer NXDOMAIN.
Upstreams = Callable[[str], Sequence[tuple[str, int]]]


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


def servfail(q: Query) -> bytes:
    """SERVFAIL for ``q`` (no upstream answered)."""
    return _HEADER.pack(q.id, 0x8000 | (q.flags & 0x7900) | 0x0080 | SERVFAIL, 1, 0, 0, 0) + q.question


async def ask(server: tuple[str, int], data: bytes, timeout: float = FORWARD_TIMEOUT) -> bytes | None:
    """The reply of ``server`` to the query ``data`` (same id), or None after ``timeout``."""
    loop = asyncio.get_running_loop()
    family = socket.AF_INET6 if ":" in server[0] else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.setblocking(False)
        try:
            await loop.sock_connect(sock, server)
            await loop.sock_sendall(sock, data)
            async with asyncio.timeout(timeout):
                while True:
                    reply = await loop.sock_recv(sock, 4096)
                    if reply[:2] == data[:2]:
                        return reply
        except (TimeoutError, OSError):
            return None


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, lookup: Lookup, upstreams: Upstreams) -> None:
        self.lookup = lookup
        self.upstreams = upstreams
        self.transport: asyncio.DatagramTransport | None = None
        self._forwards: set[asyncio.Task[None]] = set()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # a datagram endpoint's transport, whatever class the event loop in use gives it
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | bytes, int]) -> None:
        reply: bytes | None
        try:
            q = parse_query(data)
            own = (q.flags >> 11) & 0xF != 0 or q.qclass != CLASS_IN or self.lookup(q.name) is not None
            servers = () if own else self.upstreams(str(addr[0]))
            if servers and len(self._forwards) < MAX_FORWARDS:
                task = asyncio.create_task(self._forward(q, data, addr, servers))
                self._forwards.add(task)
                task.add_done_callback(self._forwards.discard)
                return
            reply = servfail(q) if servers else answer(q, self.lookup)
        except Malformed:
            reply = formerr(data)
        except Exception:  # a lookup failure must not take the responder down
            log.exception("dns_lookup_failed")
            return
        if reply is not None and self.transport is not None:
            self.transport.sendto(reply, addr)

    async def _forward(self, q: Query, data: bytes, addr: tuple[str | bytes, int], servers: Sequence[tuple[str, int]]) -> None:
        """Relays the query to each upstream in turn; the first reply goes back as it is."""
        for server in servers:
            reply = await ask(server, data)
            if reply is not None:
                break
        else:
            reply = servfail(q)
        if self.transport is not None:
            self.transport.sendto(reply, addr)

    def close(self) -> None:
        """Cancels the queries being relayed."""
        for task in list(self._forwards):
            task.cancel()


class Responder:
    """One network's responder, bound to its gateway address."""

    def __init__(self, transport: asyncio.DatagramTransport, protocol: _Protocol, address: str) -> None:
        self._transport = transport
        self._protocol = protocol
        self.address = address

    @classmethod
    async def start(cls, address: str, lookup: Lookup, upstreams: Upstreams, port: int = 53) -> Responder:
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
        transport, protocol = await loop.create_datagram_endpoint(lambda: _Protocol(lookup, upstreams), sock=sock)
        log.info("dns_listening", address=address, port=port)
        return cls(transport, protocol, address)

    def close(self) -> None:
        """Stops answering (and relaying)."""
        self._protocol.close()
        self._transport.close()


def parse_upstreams(setting: str | None, host_resolv: str) -> list[tuple[str, int]]:
    """The engine's upstream servers: ``setting`` ("none", or "ADDR[:PORT],..." with [v6]:port), else
    the nameservers of the host's resolv.conf (port 53)."""
    if setting is not None and setting.strip():
        return [] if setting.strip() == "none" else [_server(item.strip()) for item in setting.split(",")]
    words = [line.split() for line in host_resolv.splitlines()]
    return [(w[1].split("%")[0], 53) for w in words if len(w) > 1 and w[0] == "nameserver"]


def _server(item: str) -> tuple[str, int]:
    """ "ADDR", "ADDR:PORT" or "[V6]:PORT"."""
    if item.startswith("["):
        host, _, port = item[1:].partition("]")
        return host, int(port.lstrip(":") or 53)
    if item.count(":") == 1:
        host, _, port = item.partition(":")
        return host, int(port)
    return item, 53
