"""The files a container's network configuration shows inside it: /etc/hosts, /etc/resolv.conf.

They live in the bundle and are bind-mounted over the image's (outside the snapshot's upper
directory, so ``diff`` and ``commit`` never see them). The renderers are pure.
"""

from __future__ import annotations

import ipaddress
from ipaddress import IPv4Address
from pathlib import Path

LOCALHOST = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"


def hosts(hostname: str, address: IPv4Address | None, name: str = "") -> str:
    """/etc/hosts: localhost, then the container's own names on its address (127.0.1.1 without one)."""
    own = " ".join(dict.fromkeys(n for n in (hostname, name) if n))
    return f"{LOCALHOST}{address or '127.0.1.1'}\t{own}\n"


def resolv_for_dns(server: IPv4Address) -> str:
    """resolv.conf of a user network: its own responder only (no search domain, names are short)."""
    return f"nameserver {server}\noptions ndots:0\n"


def resolv_from_host(host_conf: str) -> str:
    """resolv.conf of the default bridge: the host's, without loopback nameservers, which mean
    nothing from inside the container's namespace. No public resolver is ever added."""
    out = []
    for line in host_conf.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] == "nameserver":
            try:
                if ipaddress.ip_address(parts[1].split("%")[0]).is_loopback:
                    continue
            except ValueError:
                continue
        out.append(line)
    return "\n".join(out).strip() + "\n"


def read_host_file(path: Path = Path("/etc/resolv.conf")) -> str:
    """One of the host's files, such as its resolv.conf ("" if it has none)."""
    try:
        return path.read_text()
    except OSError:
        return ""
