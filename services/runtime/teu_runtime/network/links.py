"""Links, addresses and routes through pyroute2 (netlink): bridges, veth pairs, the routes that
subnets must not overlap. Everything here acts on the network namespace this service runs in,
except :func:`plug`, which also configures the container's side through its ``/proc/<pid>/ns/net``.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from pathlib import Path
from typing import Any

from pyroute2 import AsyncIPRoute
from pyroute2.netlink.exceptions import NetlinkError
from pyroute2.netns import setns

from teu_api.errors import Internal

CONTAINER_IF = "eth0"
_MAIN_TABLE = 254
_ENOENT, _EEXIST, _ENODEV = 2, 17, 19
# The only thread that ever enters containers' namespaces: no other work runs on it, so even a
# failed return could not make unrelated work (sysctl writes, say) act on a container's network.
_VISITOR = ThreadPoolExecutor(max_workers=1, thread_name_prefix="teu-netns")


class NoBridge(Internal):
    """The bridge to plug into does not exist."""


@asynccontextmanager
async def _ipr(sock: socket.socket | None = None) -> AsyncIterator[Any]:
    ipr = AsyncIPRoute(use_socket=sock) if sock is not None else AsyncIPRoute()
    try:
        yield ipr
    finally:
        ipr.close()


async def _all(result: Any) -> list[Any]:
    return [m async for m in result]


async def _index(ipr: Any, name: str) -> int | None:
    found = await ipr.link_lookup(ifname=name)
    return int(found[0]) if found else None


async def link_names(prefix: str, owner: str | None = None) -> list[str]:
    """Names of this namespace's links that start with ``prefix`` (and whose alias is ``owner``,
    if given: the mark of the engine that made them, so an audit never touches another's)."""
    async with _ipr() as ipr:
        found = [(m.get("IFLA_IFNAME"), m.get("IFLA_IFALIAS")) for m in await _all(await ipr.link("dump"))]
    return sorted(n for n, alias in found if n and n.startswith(prefix) and (owner is None or alias == owner))


async def routes() -> list[tuple[IPv4Network, str]]:
    """(destination, interface) of the IPv4 routes of the main table, the default route excepted."""
    async with _ipr() as ipr:
        names = {m["index"]: m.get("IFLA_IFNAME") for m in await _all(await ipr.link("dump"))}
        out = []
        for r in await _all(await ipr.route("dump", family=socket.AF_INET)):
            dst = r.get("RTA_DST")
            if r.get("RTA_TABLE", r["table"]) != _MAIN_TABLE or not dst or not r["dst_len"]:
                continue
            out.append((IPv4Network(f"{dst}/{r['dst_len']}", strict=False), names.get(r.get("RTA_OIF"), "")))
    return out


def _sysctl(path: str, value: str) -> None:
    Path("/proc/sys/net", path).write_text(value)


def _sysctl_if_present(path: str, value: str) -> None:
    """Like :func:`_sysctl`, for a setting that may be missing (IPv6 off, or the link just deleted)."""
    try:
        _sysctl(path, value)
    except FileNotFoundError:
        pass


async def ensure_bridge(name: str, gateway: IPv4Interface, mac: str, owner: str) -> bool:
    """Creates bridge ``name`` (alias ``owner``) with the gateway address, up, unless it exists;
    True if created.

    Also turns on IPv4 forwarding (of this namespace) and turns off ``accept_ra`` on the bridge, so
    that a container cannot configure this namespace's IPv6 addresses and routes with router
    advertisements (CVE-2020-13401). ``route_localnet`` is left to :func:`allow_localnet`, once the
    firewall drops loopback addresses coming from bridges.
    """
    async with _ipr() as ipr:
        created = False
        index = await _index(ipr, name)
        if index is None:
            try:
                await ipr.link("add", ifname=name, kind="bridge", address=mac)
                created = True
            except NetlinkError as exc:
                if exc.code != _EEXIST:  # a concurrent start created it first
                    raise Internal(f"creating bridge {name} failed: {exc}") from exc
            index = await _index(ipr, name)
            if index is None:
                raise Internal(f"bridge {name} vanished while being created")
        have = {(a.get("IFA_ADDRESS"), a["prefixlen"]) for a in await _all(await ipr.addr("dump", index=index))}
        if (str(gateway.ip), gateway.network.prefixlen) not in have:
            await ipr.addr("add", index=index, address=str(gateway.ip), prefixlen=gateway.network.prefixlen)
        await asyncio.to_thread(_sysctl_if_present, f"ipv6/conf/{name}/accept_ra", "0")
        await ipr.link("set", index=index, state="up", ifalias=owner)
    await asyncio.to_thread(_sysctl, "ipv4/ip_forward", "1")
    return created


async def allow_localnet(name: str) -> None:
    """Turns on ``route_localnet`` on bridge ``name`` (if it still exists), which lets ports published
    on 127.0.0.1 be DNATed to its containers.

    Only once the firewall drops whatever arrives from a bridge with a loopback source or
    destination: otherwise a container could reach services listening on this namespace's
    127.0.0.1 through its gateway (CVE-2020-8558).
    """
    await asyncio.to_thread(_sysctl_if_present, f"ipv4/conf/{name}/route_localnet", "1")


async def delete_link(name: str) -> bool:
    """Deletes link ``name`` (a veth takes its peer along); False if there was none."""
    async with _ipr() as ipr:
        index = await _index(ipr, name)
        if index is None:
            return False
        try:
            await ipr.link("del", index=index)
        except NetlinkError as exc:
            if exc.code in (_ENOENT, _ENODEV):
                return False
            raise
    return True


def _socket_in(netns: str) -> socket.socket:
    """A netlink socket of namespace ``netns`` (a path), made by a thread that visits it.

    setns(2) moves only the calling thread; the socket stays bound to the namespace it was made
    in. Cheaper than pyroute2's own ``netns=`` (which forks a helper process).
    """
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(netns, os.O_RDONLY)
    try:
        setns(target)
        try:
            return socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, socket.NETLINK_ROUTE)
        finally:
            setns(own)
    finally:
        os.close(target)
        os.close(own)


@dataclass(frozen=True)
class Plug:
    """One container's connection to a bridge."""

    pid: int  # the container's init: its namespace is /proc/<pid>/ns/net
    bridge: str
    host_if: str
    address: IPv4Interface
    gateway: IPv4Address
    mac: str
    owner: str  # alias of the host end
    ifname: str = "eth0"  # the container's end
    default_route: bool = True  # the network a container is started on routes everything else


async def plug(p: Plug) -> None:
    """Connects the container to a bridge: a veth pair whose container end is born in its
    namespace as ``p.ifname`` (with its MAC and address, lo up, and the default route via the
    gateway unless told otherwise) and whose host end joins the bridge."""
    pid, bridge, host_if, address, gateway, mac = p.pid, p.bridge, p.host_if, p.address, p.gateway, p.mac
    netns = f"/proc/{pid}/ns/net"
    fd = os.open(netns, os.O_RDONLY)
    try:
        async with _ipr() as ipr:
            br = await _index(ipr, bridge)
            if br is None:
                raise NoBridge(f"bridge {bridge} does not exist")
            if (stale := await _index(ipr, host_if)) is not None:
                # the same container's previous veth, not yet gone with its old namespace (a quick restart)
                await ipr.link("del", index=stale)
            await ipr.link("add", ifname=host_if, kind="veth", peer={"ifname": p.ifname, "address": mac, "net_ns_fd": fd})
            index = await _index(ipr, host_if)
            await ipr.link("set", index=index, master=br, state="up", ifalias=p.owner)
    finally:
        os.close(fd)
    sock = await asyncio.get_running_loop().run_in_executor(_VISITOR, _socket_in, netns)
    async with _ipr(sock) as ipr:
        lo, eth = await _index(ipr, "lo"), await _index(ipr, p.ifname)
        if lo is None or eth is None:
            raise Internal(f"the container's {p.ifname} did not appear in its namespace")
        await ipr.link("set", index=lo, state="up")
        await ipr.addr("add", index=eth, address=str(address.ip), prefixlen=address.network.prefixlen)
        await ipr.link("set", index=eth, state="up")
        if p.default_route:
            await ipr.route("add", dst="0.0.0.0/0", gateway=str(gateway), oif=eth)
