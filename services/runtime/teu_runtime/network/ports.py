"""Published ports: validation of the requested mappings and the host-side "is it free?" check."""

from __future__ import annotations

import errno
import ipaddress
import socket
from collections.abc import Iterable

from teu_api.errors import InvalidArgument
from teu_api.types.v1 import types_pb2

PROTOCOLS = ("tcp", "udp")
ALL_ADDRESSES = ""  # how a mapping on every host address (0.0.0.0) is recorded


def describe(p: types_pb2.PortMapping) -> str:
    """``[ip:]host_port->container_port/proto`` for messages."""
    where = f"{p.host_ip}:" if p.host_ip else ""
    return f"{where}{p.host_port}->{p.container_port}/{p.protocol or 'tcp'}"


def normalize(ports: Iterable[types_pb2.PortMapping], mode: str) -> list[types_pb2.PortMapping]:
    """The mappings with defaults filled in (tcp, all addresses); InvalidArgument for bad ones.

    ``mode`` is the container's resolved network kind: ports need a bridge (its own addresses).
    """
    out: list[types_pb2.PortMapping] = []
    seen: set[tuple[str, int, str]] = set()
    for p in ports:
        proto = (p.protocol or "tcp").lower()
        if proto not in PROTOCOLS:
            raise InvalidArgument(f"invalid protocol {p.protocol!r} for port {p.host_port}: want tcp or udp")
        for what, value, low in (("host", p.host_port, 0), ("container", p.container_port, 1)):
            if not low <= value <= 65535:
                raise InvalidArgument(f"invalid {what} port {value}: ports are 1-65535 (a host port of 0 picks a free one)")
        host_ip = _host_ip(p.host_ip)
        if mode != "bridge":
            raise InvalidArgument(f"ports cannot be published with --network {mode}")
        key = (host_ip, p.host_port, proto)
        if p.host_port and any(conflicts(key, other) for other in seen):
            raise InvalidArgument(f"port {p.host_port}/{proto} is published twice")
        seen.add(key)
        out.append(types_pb2.PortMapping(host_ip=host_ip, host_port=p.host_port, container_port=p.container_port, protocol=proto))
    return out


def _host_ip(text: str) -> str:
    if text in ("", "0.0.0.0"):
        return ALL_ADDRESSES
    try:
        addr = ipaddress.ip_address(text)
    except ValueError as exc:
        raise InvalidArgument(f"invalid host address {text!r} for a published port") from exc
    if addr.version != 4:
        raise InvalidArgument(f"invalid host address {text!r}: only IPv4 ports are published")
    return str(addr)


def conflicts(a: tuple[str, int, str], b: tuple[str, int, str]) -> bool:
    """Whether two (host_ip, port, protocol) bindings collide: same port and protocol, and the
    same address or one of them on every address."""
    return a[1] == b[1] and a[2] == b[2] and (a[0] == b[0] or ALL_ADDRESSES in (a[0], b[0]))


def check_host_free(p: types_pb2.PortMapping) -> None:
    """InvalidArgument naming the port if a socket of this namespace holds it (or the address is
    not local). Binding, without listening, is the kernel's own answer to "is it taken?". A host
    port of 0 is picked later, free by construction (:func:`free_port`)."""
    if not p.host_port:
        return
    kind = socket.SOCK_STREAM if p.protocol == "tcp" else socket.SOCK_DGRAM
    with socket.socket(socket.AF_INET, kind) as s:
        if kind == socket.SOCK_STREAM:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT leftovers do not count
        try:
            s.bind((p.host_ip or "0.0.0.0", p.host_port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise InvalidArgument(f"port {p.host_port}/{p.protocol} is already in use on the host ({describe(p)})") from exc
            if exc.errno == errno.EADDRNOTAVAIL:
                raise InvalidArgument(f"host address {p.host_ip} is not an address of this host ({describe(p)})") from exc
            raise InvalidArgument(f"cannot publish {describe(p)}: {exc.strerror}") from exc


def free_port(p: types_pb2.PortMapping, held: Iterable[tuple[str, int, str]]) -> int:
    """A host port for ``p`` that no socket of this namespace holds (the kernel's pick among its
    ephemeral ports, as Docker picks from that range) and no other mapping in ``held`` uses."""
    kind = socket.SOCK_STREAM if p.protocol == "tcp" else socket.SOCK_DGRAM
    taken = list(held)
    for _ in range(64):
        with socket.socket(socket.AF_INET, kind) as s:
            s.bind((p.host_ip or "0.0.0.0", 0))
            port = int(s.getsockname()[1])
        if not any(conflicts((p.host_ip, port, p.protocol), other) for other in taken):
            return port
    raise InvalidArgument(f"no free host port for {describe(p)}")
