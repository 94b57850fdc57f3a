"""The files a container's network configuration shows inside it: /etc/hosts, /etc/resolv.conf.

They live in the bundle and are bind-mounted over the image's (outside the snapshot's upper
directory, so ``diff`` and ``commit`` never see them). The renderers are pure.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from ipaddress import IPv4Address
from pathlib import Path

LOCALHOST = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"


def hosts(hostname: str, address: IPv4Address | None, name: str = "", extra: Sequence[tuple[str, str]] = ()) -> str:
    """/etc/hosts: localhost, the container's own names on its address (127.0.1.1 without one),
    then the --add-host entries (name, address)."""
    own = " ".join(dict.fromkeys(n for n in (hostname, name) if n))
    added = "".join(f"{ip}\t{host}\n" for host, ip in extra)
    return f"{LOCALHOST}{address or '127.0.1.1'}\t{own}\n{added}"


def with_overrides(conf: str, nameservers: Sequence[str], search: Sequence[str], options: Sequence[str]) -> str:
    """resolv.conf with each kind of line the user gave (--dns, --dns-search, --dns-option)
    replacing the ones there."""
    keep = []
    for line in conf.splitlines():
        word = line.split()[0] if line.split() else ""
        if (word == "nameserver" and nameservers) or (word in ("search", "domain") and search) or (word == "options" and options):
            continue
        keep.append(line)
    keep += [f"nameserver {ns}" for ns in nameservers]
    keep += [f"search {' '.join(search)}"] if search else []
    keep += [f"options {' '.join(options)}"] if options else []
    return "\n".join(line for line in keep if line.strip()) + "\n"


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
