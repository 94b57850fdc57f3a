"""Checks of a container's name-resolution options: --add-host, --dns, --dns-search, --dns-option. Pure."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from typing import Final

from teu_api.errors import InvalidArgument
from teu_gateway.limits import shown

HOST_GATEWAY: Final = "host-gateway"
_NAME: Final = re.compile(r"[a-zA-Z0-9_]([a-zA-Z0-9_.-]{0,252})")
_OPTION: Final = re.compile(r"[a-z0-9_-]+(:[0-9]+)?", re.IGNORECASE)


def _address(text: str, what: str) -> str:
    try:
        return str(ipaddress.ip_address(text.strip("[]")))
    except ValueError:
        raise InvalidArgument(f"invalid IP address {shown(text)} in {what}") from None


def extra_hosts(entries: Sequence[str]) -> list[str]:
    """--add-host NAME:IP (Docker also takes NAME=IP): "NAME:IP" each, IP an address or host-gateway."""
    out = []
    for entry in entries:
        sep = "=" if "=" in entry else ":"
        name, found, address = entry.partition(sep)
        if not found or not _NAME.fullmatch(name):
            raise InvalidArgument(f"invalid --add-host {shown(entry)}: want NAME:IP")
        out.append(f"{name}:{address if address == HOST_GATEWAY else _address(address, '--add-host')}")
    return out


def nameservers(entries: Sequence[str]) -> list[str]:
    """--dns: addresses."""
    return [_address(e, "--dns") for e in entries]


def search_domains(entries: Sequence[str]) -> list[str]:
    """--dns-search: domain names ("." alone means none, as Docker)."""
    for e in entries:
        if e != "." and not _NAME.fullmatch(e):
            raise InvalidArgument(f"invalid --dns-search domain {shown(e)}")
    return [e for e in entries if e != "."]


def resolver_options(entries: Sequence[str]) -> list[str]:
    """--dns-option: resolv.conf options (ndots:2, edns0...)."""
    for e in entries:
        if not _OPTION.fullmatch(e):
            raise InvalidArgument(f"invalid --dns-option {shown(e)}")
    return list(entries)


def aliases(entries: Sequence[str], network: str) -> list[str]:
    """--network-alias: DNS names on a user network (Docker's rule), each once."""
    if not entries:
        return []
    if network in ("", "bridge", "none", "host") or network.startswith("container:"):
        raise InvalidArgument("network-scoped aliases are supported only for containers on user-defined networks")
    seen: set[str] = set()
    for e in entries:
        if not _NAME.fullmatch(e):
            raise InvalidArgument(f"invalid network alias {shown(e)}")
        if e.lower() in seen:
            raise InvalidArgument(f"duplicate network alias {shown(e)}")
        seen.add(e.lower())
    return list(entries)
