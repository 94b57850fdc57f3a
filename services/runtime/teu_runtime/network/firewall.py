"""NAT and isolation rules of the bridge networks, through nftables or, failing that, iptables.

The rules are never edited one by one: the whole ruleset is rendered from what the database says
(bridges in use, published ports of running containers) and swapped in atomically. So a stale
rule cannot survive a re-render, and reconciling after a crash is just one more render.

What the rules do (both back-ends):

- published ports: DNAT of local destinations (``fib daddr type local`` / ``addrtype LOCAL``)
  in PREROUTING (traffic from outside or other containers) and OUTPUT (this namespace's own
  clients, 127.0.0.1 included: the bridge has ``route_localnet`` and loopback sources leaving
  through it are masqueraded, the userland proxy of Docker is not needed);
- loopback: whatever arrives from a Teu bridge with a source or destination in 127.0.0.0/8 is
  dropped before conntrack and NAT see it (priority raw), so ``route_localnet`` does not let a
  container reach services listening on this namespace's 127.0.0.1 (CVE-2020-8558). Replies of
  127.0.0.1-published ports still pass: they reach the bridge addressed to the gateway (the
  masquerade) and only become 127.0.0.1 in NAT, after that rule;
- masquerade of each subnet's traffic leaving through another interface;
- forwarding into a Teu bridge: only replies (established/related), DNATed (published) traffic
  and traffic between containers of that same bridge. So no bridge reaches another, and a
  neighbour routing a subnet through this host does not reach unpublished ports. Every accept is
  limited to traffic to or from Teu's bridges: the host's own FORWARD rules still decide about
  everything else (and about containers' new outbound connections), and no built-in chain's
  policy is changed.

Bridges are matched by name, ``teu*`` (nft) / ``teu+`` (iptables), where a rule is about all of them.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from dataclasses import dataclass, field
from typing import Protocol

import structlog

from teu_api.errors import Internal, Unavailable
from teu_runtime.network import links
from teu_runtime.network.addressing import BRIDGE_PREFIX

log = structlog.get_logger()
TABLE = "teu"  # nft table (family ip) owned by Teu
CHAINS = {"raw": ("TEU-LOOPBACK",), "nat": ("TEU-PORTS", "TEU-POSTROUTING"), "filter": ("TEU-FORWARD",)}  # iptables chains
_JUMPS = (  # (table, builtin chain, match + jump) of the iptables back-end
    ("raw", "PREROUTING", ["-j", "TEU-LOOPBACK"]),
    ("nat", "PREROUTING", ["-m", "addrtype", "--dst-type", "LOCAL", "-j", "TEU-PORTS"]),
    ("nat", "OUTPUT", ["-m", "addrtype", "--dst-type", "LOCAL", "-j", "TEU-PORTS"]),
    ("nat", "POSTROUTING", ["-j", "TEU-POSTROUTING"]),
    ("filter", "FORWARD", ["-j", "TEU-FORWARD"]),
)
ANY_BRIDGE_NFT, ANY_BRIDGE_IPT = f'"{BRIDGE_PREFIX}*"', f"{BRIDGE_PREFIX}+"  # every bridge of Teu
LOOPBACK = "127.0.0.0/8"
_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])


@dataclass(frozen=True)
class Bridge:
    """A bridge that exists, with its subnet."""

    name: str
    subnet: str
    internal: bool = False  # nothing leaves it: no masquerade, nothing forwarded out


@dataclass(frozen=True)
class Forward:
    """One published port: host_ip:host_port/protocol → address:container_port ("" = any local address)."""

    host_ip: str
    host_port: int
    protocol: str
    address: str
    container_port: int


@dataclass(frozen=True)
class Ruleset:
    """Everything the rules depend on."""

    bridges: tuple[Bridge, ...] = ()
    forwards: tuple[Forward, ...] = field(default=())

    @property
    def empty(self) -> bool:
        """No bridge, so no rule at all is needed."""
        return not self.bridges and not self.forwards


def render_nft(rs: Ruleset) -> str:
    """An ``nft -f`` script that replaces table ``ip teu`` in one transaction (or just drops it)."""
    lines = [f"table ip {TABLE} {{}}", f"delete table ip {TABLE}"]  # "create if missing" makes delete safe
    if rs.empty:
        return "\n".join(lines) + "\n"
    ports = [
        (f"ip daddr {f.host_ip} " if f.host_ip else "")
        + f"{f.protocol} dport {f.host_port} dnat to {f.address}:{f.container_port}"
        for f in rs.forwards
    ]
    post = []
    loopback = [f"iifname {ANY_BRIDGE_NFT} ip saddr {LOOPBACK} drop", f"iifname {ANY_BRIDGE_NFT} ip daddr {LOOPBACK} drop"]
    forward = [f"oifname {ANY_BRIDGE_NFT} ct state established,related accept", f"oifname {ANY_BRIDGE_NFT} ct status dnat accept"]
    internal = [f'iifname "{b.name}" oifname != "{b.name}" drop' for b in rs.bridges if b.internal]
    forward = internal + forward  # an internal network's traffic goes nowhere else, replies included
    for b in rs.bridges:
        if not b.internal:
            post.append(f'ip saddr {b.subnet} oifname != "{b.name}" masquerade')
        post.append(f'oifname "{b.name}" ip saddr {LOOPBACK} masquerade')
        forward.append(f'iifname "{b.name}" oifname "{b.name}" accept')  # between containers of one network
    forward.append(f"oifname {ANY_BRIDGE_NFT} drop")  # from another bridge or from outside, not published
    for f in rs.forwards:  # hairpin: a container reaching its own published port
        post.append(f"ip saddr {f.address} ip daddr {f.address} {f.protocol} dport {f.container_port} masquerade")
    lines += [
        f"table ip {TABLE} {{",
        *_chain("loopback", "type filter hook prerouting priority raw; policy accept;", loopback),
        *_chain("ports", None, ports),
        *_chain("prerouting", "type nat hook prerouting priority dstnat; policy accept;", ["fib daddr type local jump ports"]),
        *_chain("output", "type nat hook output priority -100; policy accept;", ["fib daddr type local jump ports"]),
        *_chain("postrouting", "type nat hook postrouting priority srcnat; policy accept;", post),
        *_chain("forward", "type filter hook forward priority filter; policy accept;", forward),
        "}",
    ]
    return "\n".join(lines) + "\n"


def _chain(name: str, hook: str | None, rules: list[str]) -> list[str]:
    return [f"  chain {name} {{", *([f"    {hook}"] if hook else []), *(f"    {r}" for r in rules), "  }"]


def render_iptables(rs: Ruleset) -> str:
    """An ``iptables-restore --noflush`` input that refills Teu's own chains (declaring a chain
    flushes it); the jumps into them from the built-in chains are managed separately."""
    ports = [
        (["-d", f.host_ip] if f.host_ip else [])
        + ["-p", f.protocol, "--dport", str(f.host_port), "-j", "DNAT", "--to-destination", f"{f.address}:{f.container_port}"]
        for f in rs.forwards
    ]
    post: list[list[str]] = []
    loopback = [["-i", ANY_BRIDGE_IPT, "-s", LOOPBACK, "-j", "DROP"], ["-i", ANY_BRIDGE_IPT, "-d", LOOPBACK, "-j", "DROP"]]
    forward = [["-o", ANY_BRIDGE_IPT, "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", "-j", "ACCEPT"],
               ["-i", ANY_BRIDGE_IPT, "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", "-j", "ACCEPT"],
               ["-o", ANY_BRIDGE_IPT, "-m", "conntrack", "--ctstate", "DNAT", "-j", "ACCEPT"]]  # fmt: skip
    forward = [["-i", b.name, "!", "-o", b.name, "-j", "DROP"] for b in rs.bridges if b.internal] + forward
    for b in rs.bridges:
        if not b.internal:
            post.append(["-s", b.subnet, "!", "-o", b.name, "-j", "MASQUERADE"])
        post.append(["-o", b.name, "-s", LOOPBACK, "-j", "MASQUERADE"])
        forward.append(["-i", b.name, "-o", b.name, "-j", "RETURN"])  # between containers of one network: the host decides
    forward.append(["-o", ANY_BRIDGE_IPT, "-j", "DROP"])  # from another bridge or from outside, not published
    for f in rs.forwards:
        post.append(["-s", f.address, "-d", f.address, "-p", f.protocol, "--dport", str(f.container_port), "-j", "MASQUERADE"])
    out = ["*raw", ":TEU-LOOPBACK - [0:0]"]
    out += [" ".join(["-A", "TEU-LOOPBACK", *r]) for r in loopback]
    out += ["COMMIT", "*nat", ":TEU-PORTS - [0:0]", ":TEU-POSTROUTING - [0:0]"]
    out += [" ".join(["-A", "TEU-PORTS", *r]) for r in ports]
    out += [" ".join(["-A", "TEU-POSTROUTING", *r]) for r in post]
    out += ["COMMIT", "*filter", ":TEU-FORWARD - [0:0]"]
    out += [" ".join(["-A", "TEU-FORWARD", *r]) for r in forward]
    out += ["COMMIT"]
    return "\n".join(out) + "\n"


class Firewall(Protocol):
    """A back-end that installs a whole :class:`Ruleset`."""

    name: str

    async def apply(self, rs: Ruleset) -> None:
        """Replaces every rule of Teu with ``rs`` (an empty ruleset removes them all), then lets
        its bridges route 127.0.0.1 (``route_localnet``), now that loopback traffic from them is dropped."""


async def _allow_localnet(rs: Ruleset) -> None:
    for b in rs.bridges:
        await links.allow_localnet(b.name)


async def _run(argv: list[str], stdin: str | None = None) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate(stdin.encode() if stdin is not None else None)
    return proc.returncode or 0, out.decode(errors="replace"), err.decode(errors="replace").strip()


@dataclass
class Nft:
    """nftables through the ``nft`` command."""

    path: str
    name: str = "nftables"

    async def apply(self, rs: Ruleset) -> None:
        """Swaps table ``ip teu`` atomically."""
        code, _, err = await _run([self.path, "-f", "-"], render_nft(rs))
        if code:
            raise Internal(f"nft failed: {err}")
        await _allow_localnet(rs)


@dataclass
class Iptables:
    """iptables through ``iptables`` and ``iptables-restore``."""

    path: str
    restore: str
    name: str = "iptables"

    async def apply(self, rs: Ruleset) -> None:
        """Refills (or creates) Teu's chains, then adds the jumps into them that are missing."""
        if rs.empty:
            await self._unhook()
            return
        code, _, err = await _run([self.restore, "-w", "--noflush"], render_iptables(rs))
        if code:
            raise Internal(f"iptables-restore failed: {err}")
        for table, chain, rule in _JUMPS:
            if (await _run([self.path, "-w", "-t", table, "-C", chain, *rule]))[0]:
                code, _, err = await _run([self.path, "-w", "-t", table, "-I", chain, "1", *rule])
                if code:
                    raise Internal(f"iptables -t {table} -I {chain} failed: {err}")
        await _allow_localnet(rs)

    async def _unhook(self) -> None:
        for table, chain, rule in _JUMPS:
            while (await _run([self.path, "-w", "-t", table, "-D", chain, *rule]))[0] == 0:
                pass
        for table, chains in CHAINS.items():
            for c in chains:
                await _run([self.path, "-w", "-t", table, "-F", c])
                await _run([self.path, "-w", "-t", table, "-X", c])


async def probe(wanted: str | None = None) -> Firewall:
    """nftables if ``nft`` works here, else iptables; ``wanted`` ("nftables"/"iptables") forces one."""
    nft = shutil.which("nft", path=_PATH)
    ipt, restore = shutil.which("iptables", path=_PATH), shutil.which("iptables-restore", path=_PATH)
    if wanted in (None, "", "nftables", "nft") and nft and (await _run([nft, "list", "tables"]))[0] == 0:
        return Nft(nft)
    if wanted in (None, "", "iptables") and ipt and restore and (await _run([ipt, "-w", "-t", "nat", "-S"]))[0] == 0:
        return Iptables(ipt, restore)
    raise Unavailable(f"no usable firewall back-end ({wanted or 'nftables or iptables'}) for bridge networks")
