"""IPv4 subnets, addresses and interface names of bridge networks. Pure: no I/O here.

A bridge network owns one subnet; its first host address is the gateway (the bridge's own
address) and containers get the others. Interface names are derived from ids so that every link
Teu creates can be recognised, and audited, by its name alone.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Iterator
from ipaddress import IPv4Address, IPv4Interface, IPv4Network

from teu_api.errors import InvalidArgument

DEFAULT_SUBNET = "10.88.0.0/16"
USER_SUBNETS_FROM = "10.89.0.0/24"  # where automatically chosen /24s of user networks start
MIN_PREFIX, MAX_PREFIX = 8, 30  # a /30 still holds the gateway and one container
DEFAULT_BRIDGE = "teu0"
BRIDGE_PREFIX = "teu"  # every bridge of Teu; "teu*" matches all of them in firewall rules
VETH_PREFIX = "vteu"
IFNAMSIZ = 15
_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}")
RESERVED_NAMES = ("none", "host")


def parse_subnet(text: str) -> IPv4Network:
    """An IPv4 subnet usable for a bridge network; InvalidArgument otherwise."""
    try:
        net = ipaddress.ip_network(text.strip(), strict=True)
    except ValueError as exc:
        raise InvalidArgument(f"invalid subnet {text!r}: {exc}") from exc
    if not isinstance(net, IPv4Network):
        raise InvalidArgument(f"invalid subnet {text!r}: only IPv4 subnets are supported")
    if "/" not in text:
        raise InvalidArgument(f"invalid subnet {text!r}: want CIDR notation such as 10.89.0.0/24")
    if not MIN_PREFIX <= net.prefixlen <= MAX_PREFIX:
        raise InvalidArgument(f"invalid subnet {text!r}: the prefix length must be {MIN_PREFIX}-{MAX_PREFIX}")
    if net.is_loopback or net.is_multicast or net.is_link_local or net.is_unspecified or net.is_reserved:
        raise InvalidArgument(f"invalid subnet {text!r}: loopback, link-local, multicast and reserved ranges are not allowed")
    return net


def check_network_name(name: str) -> str:
    """Returns ``name`` if it can name a network; InvalidArgument otherwise."""
    if not _NAME.fullmatch(name):
        raise InvalidArgument(f"invalid network name {name!r}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
    return name


def first_overlap(net: IPv4Network, others: Iterable[IPv4Network]) -> IPv4Network | None:
    """The first of ``others`` that shares an address with ``net``."""
    return next((o for o in others if net.overlaps(o)), None)


def candidates(start: IPv4Network) -> Iterator[IPv4Network]:
    """``start``, then the subnets of its size that follow it in 10/8 (all of 10/8 if it lies
    elsewhere), then those of 172.16/12."""
    yield start
    for space in (IPv4Network("10.0.0.0/8"), IPv4Network("172.16.0.0/12")):
        if start.prefixlen < space.prefixlen:
            continue
        for net in space.subnets(new_prefix=start.prefixlen):
            if space.supernet_of(start) and net <= start:
                continue
            yield net


def free_subnet(start: IPv4Network, taken: Iterable[IPv4Network]) -> IPv4Network | None:
    """The first candidate from ``start`` that overlaps none of ``taken``."""
    used = list(taken)
    return next((n for n in candidates(start) if first_overlap(n, used) is None), None)


def gateway_of(net: IPv4Network) -> IPv4Address:
    """The gateway (bridge) address: the subnet's first host address."""
    return net.network_address + 1


def first_free_address(net: IPv4Network, used: Iterable[IPv4Address], within: IPv4Network | None = None) -> IPv4Interface | None:
    """The lowest host address of ``net`` (of ``within``, a part of it, if given) that is neither
    the default gateway nor in ``used``."""
    taken = set(used) | {gateway_of(net)}
    pool = within or net
    first = max(int(pool.network_address), int(net.network_address) + 1)
    last = min(int(pool.broadcast_address), int(net.broadcast_address) - 1)
    for value in range(first, last + 1):
        addr = IPv4Address(value)
        if addr not in taken:
            return IPv4Interface(f"{addr}/{net.prefixlen}")
    return None


def host_address(net: IPv4Network, text: str, what: str) -> IPv4Address:
    """An address of ``net`` a host may have (``--gateway``, ``--ip``: ``what``); InvalidArgument otherwise."""
    try:
        addr = IPv4Address(text)
    except ValueError:
        raise InvalidArgument(f"invalid {what} {text[:40]!r}: want an IPv4 address") from None
    if addr not in net or addr in (net.network_address, net.broadcast_address):
        raise InvalidArgument(f"{what} {addr} is not a host address of subnet {net}")
    return addr


def check_ip_range(net: IPv4Network, text: str) -> IPv4Network:
    """--ip-range: a CIDR inside ``net``; InvalidArgument otherwise."""
    try:
        pool = IPv4Network(text, strict=True)
    except ValueError as exc:
        raise InvalidArgument(f"invalid ip range {text!r}: {exc}") from None
    if not pool.subnet_of(net):
        raise InvalidArgument(f"ip range {pool} is not inside subnet {net}")
    return pool


def mac_for(addr: IPv4Address) -> str:
    """A locally administered unicast MAC derived from the address (as Docker does), so a reused
    address keeps its MAC and neighbours' ARP caches stay right."""
    return "02:42:" + ":".join(f"{b:02x}" for b in addr.packed)


def bridge_name(network_id: str, default: bool) -> str:
    """The Linux bridge of a network: ``teu0`` for the default one, ``teu-<id prefix>`` otherwise."""
    return DEFAULT_BRIDGE if default else f"{BRIDGE_PREFIX}-{network_id[: IFNAMSIZ - len(BRIDGE_PREFIX) - 1]}"


def veth_name(cid: str) -> str:
    """The host side of a container's veth pair: ``vteu<id prefix>``."""
    return VETH_PREFIX + cid[: IFNAMSIZ - len(VETH_PREFIX)]
