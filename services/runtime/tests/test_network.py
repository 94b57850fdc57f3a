"""Networking's pure parts: subnets, IPAM in SQLite, port specs, DNS packets, rule rendering, files."""

from __future__ import annotations

import asyncio
import socket
import struct
import threading
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

import pytest

from teu_api.errors import AlreadyExists, FailedPrecondition, Internal, InvalidArgument, NotFound, Unavailable
from teu_api.runtime.v1 import runtime_pb2 as rt
from teu_api.types.v1 import types_pb2
from teu_runtime import confine, spec
from teu_runtime.database import Store
from teu_runtime.network import addressing, dns, firewall, links, netconf, ports
from teu_runtime.network.networks import Networks
from teu_runtime.network.records import Records

CID = "ab" * 32


def network(name: str = "net", subnet: str = "10.89.0.0/29") -> types_pb2.Network:
    """A network record on ``subnet``."""
    net = IPv4Network(subnet)
    return types_pb2.Network(id=name * 8, name=name, subnet=subnet, gateway=str(addressing.gateway_of(net)), bridge=f"teu-{name}")


def mapping(host_port: int, container_port: int = 80, proto: str = "", host_ip: str = "") -> types_pb2.PortMapping:
    """A port mapping."""
    return types_pb2.PortMapping(host_ip=host_ip, host_port=host_port, container_port=container_port, protocol=proto)


# -- subnets ------------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["", "10.0.0.0", "10.1.2.3/24", "300.0.0.0/8", "10.0.0.0/33", "10.0.0.0/31",
                                 "127.0.0.0/8", "224.0.0.0/8", "169.254.0.0/16", "fd00::/64", "10.0.0.0/4"])  # fmt: skip
def test_invalid_subnets_are_refused(bad: str) -> None:
    """Non-CIDR, host bits, out-of-range prefixes, IPv6 and special ranges are INVALID_ARGUMENT."""
    with pytest.raises(InvalidArgument):
        addressing.parse_subnet(bad)


def test_free_subnet_skips_overlaps() -> None:
    """The wanted subnet if free, else the next of its size that overlaps nothing."""
    want = IPv4Network("10.88.0.0/16")
    assert addressing.free_subnet(want, [IPv4Network("192.168.0.0/24")]) == want
    taken = [IPv4Network("10.88.5.0/24"), IPv4Network("10.89.0.0/16")]
    assert addressing.free_subnet(want, taken) == IPv4Network("10.90.0.0/16")
    assert addressing.first_overlap(IPv4Network("10.0.0.0/8"), taken) == taken[0]


def test_addresses_macs_and_names() -> None:
    """Gateway is the first host, containers get the lowest free one, MACs follow addresses, names fit IFNAMSIZ."""
    net = IPv4Network("10.89.0.0/30")
    assert addressing.gateway_of(net) == IPv4Address("10.89.0.1")
    assert str(addressing.first_free_address(net, [])) == "10.89.0.2/30"
    assert addressing.first_free_address(net, [IPv4Address("10.89.0.2")]) is None
    assert addressing.mac_for(IPv4Address("10.88.0.2")) == "02:42:0a:58:00:02"
    assert addressing.bridge_name("f" * 64, default=False) == "teu-fffffffffff" and len(addressing.veth_name(CID)) == 15
    with pytest.raises(InvalidArgument):
        addressing.check_network_name("-bad")


# -- IPAM ---------------------------------------------------------------------------------------


def test_allocation_release_and_exhaustion(tmp_path: Path) -> None:
    """Addresses are handed out lowest first, reused after release, and a full subnet is UNAVAILABLE."""
    records = Records(Store(tmp_path / "db"))
    net = network()  # /29: gateway .1, containers .2-.6
    records.insert_network(net)
    got = [records.allocate(f"{i:064x}", net, f"vteu{i}", []).address for i in range(5)]
    assert [str(a) for a in got] == [f"10.89.0.{i}/29" for i in range(2, 7)]
    with pytest.raises(Unavailable):
        records.allocate("f" * 64, net, "vteuf", [])
    att, _, _ = records.release(f"{2:064x}")
    assert att is not None and str(att.address) == "10.89.0.4/29"
    assert str(records.allocate("f" * 64, net, "vteuf", []).address) == "10.89.0.4/29"
    assert records.members(net.id)["f" * 64] == "10.89.0.4"
    with pytest.raises(AlreadyExists):
        records.insert_network(network())


def test_concurrent_allocations_never_share_an_address(tmp_path: Path) -> None:
    """Two database connections (as two processes would) allocating at once never hand out the same address."""
    Records(Store(tmp_path / "db")).insert_network(network(subnet="10.89.0.0/24"))
    results: list[str] = []
    lock = threading.Lock()

    def worker(k: int) -> None:
        records = Records(Store(tmp_path / "db"))
        for i in range(40):
            att = records.allocate(f"{k}{i:063x}", network(subnet="10.89.0.0/24"), "v", [])
            with lock:
                results.append(str(att.address))

    threads = [threading.Thread(target=worker, args=(k,)) for k in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 80 and len(set(results)) == 80


def test_host_ports_are_held_once(tmp_path: Path) -> None:
    """A host port held by one container is refused to another (all-addresses and specific ones collide) and free again after release."""
    records = Records(Store(tmp_path / "db"))
    net = network()
    records.insert_network(net)
    records.allocate("a" * 64, net, "va", [mapping(8080, proto="tcp")])
    with pytest.raises(InvalidArgument, match="port 8080/tcp"):
        records.allocate("b" * 64, net, "vb", [mapping(8080, proto="tcp", host_ip="127.0.0.1")])
    assert records.attachment("b" * 64) is None  # the refused allocation left nothing
    records.allocate("b" * 64, net, "vb", [mapping(8080, proto="udp")])
    records.release("a" * 64)
    records.allocate("c" * 64, net, "vc", [mapping(8080, proto="tcp", host_ip="127.0.0.1")])
    assert sorted((str(a), m.protocol) for m, a in records.forwards()) == [("10.89.0.2", "tcp"), ("10.89.0.3", "udp")]


# -- ports --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mappings", "mode", "message"),
    [
        ([mapping(70000)], "bridge", "host port 70000"),
        ([mapping(80, 0)], "bridge", "container port 0"),
        ([mapping(80, proto="sctp")], "bridge", "protocol"),
        ([mapping(80, host_ip="nope")], "bridge", "host address"),
        ([mapping(80)], "none", "--network none"),
        ([mapping(80)], "host", "--network host"),
        ([mapping(80), mapping(80, 81, host_ip="127.0.0.1")], "bridge", "twice"),
    ],
)
def test_port_specs_are_validated(mappings: list[types_pb2.PortMapping], mode: str, message: str) -> None:
    """Ports 1-65535, tcp/udp, IPv4 host addresses, no duplicates, bridge networks only."""
    with pytest.raises(InvalidArgument, match=message):
        ports.normalize(mappings, mode)


def test_a_host_port_of_zero_asks_for_a_free_one() -> None:
    """Host port 0 (-p 80) passes, twice even, and free_port picks one no mapping holds."""
    (a, b) = ports.normalize([mapping(0), mapping(0, 81)], "bridge")
    assert a.host_port == b.host_port == 0
    held = [("", 40000, "tcp")]
    port = ports.free_port(a, held)
    assert 1024 <= port <= 65535 and port != 40000


def test_port_defaults() -> None:
    """Protocol defaults to tcp and 0.0.0.0 means every address."""
    [p] = ports.normalize([mapping(8080, 80, host_ip="0.0.0.0")], "bridge")
    assert (p.host_ip, p.protocol) == ("", "tcp")
    assert ports.normalize([mapping(53, 53, "UDP")], "bridge")[0].protocol == "udp"


def test_listening_socket_makes_a_port_unavailable() -> None:
    """A port with a listening socket on loopback is INVALID_ARGUMENT naming the port; a free one passes."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        taken = s.getsockname()[1]
        with pytest.raises(InvalidArgument, match=f"port {taken}/tcp"):
            ports.check_host_free(mapping(taken, proto="tcp", host_ip="127.0.0.1"))
    ports.check_host_free(mapping(taken, proto="tcp", host_ip="127.0.0.1"))


# -- DNS ----------------------------------------------------------------------------------------


def query(name: str, qtype: int = dns.TYPE_A, qid: int = 0x1234) -> bytes:
    """A standard recursive query for ``name``."""
    labels = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".") if p) + b"\0"
    return struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + labels + struct.pack("!HH", qtype, dns.CLASS_IN)


def lookup(name: str) -> IPv4Address | None:
    """A network with one container, db."""
    return IPv4Address("10.89.0.2") if name == "db" else None


def test_dns_answers_known_names() -> None:
    """An A query for a container's name gets its address, authoritative, with the query's id and question."""
    reply = dns.answer(dns.parse_query(query("DB")), lookup)
    qid, flags, qd, an, _, _ = struct.unpack_from("!HHHHHH", reply)
    assert (qid, flags & 0x8000, flags & 0x0400, flags & 0xF, qd, an) == (0x1234, 0x8000, 0x0400, dns.NOERROR, 1, 1)
    assert reply.endswith(bytes([10, 89, 0, 2])) and query("DB")[12:] in reply


def test_dns_refuses_to_know_other_names() -> None:
    """Unknown names are NXDOMAIN when there is no upstream to relay to; AAAA of a known name is an
    empty NOERROR; junk is FORMERR or ignored."""
    reply = dns.answer(dns.parse_query(query("example.com")), lookup)
    assert struct.unpack_from("!H", reply, 2)[0] & 0xF == dns.NXDOMAIN
    reply = dns.answer(dns.parse_query(query("db", dns.TYPE_AAAA)), lookup)
    assert struct.unpack_from("!HHHH", reply)[1] & 0xF == dns.NOERROR and struct.unpack_from("!HHHH", reply)[3] == 0
    for junk in (b"\x12", b"\x12\x34\x01\x00\x00\x01", query("db")[:-3], struct.pack("!HHHHHH", 1, 0x8000, 1, 0, 0, 0)):
        with pytest.raises(dns.Malformed):
            dns.parse_query(junk)
    assert dns.formerr(b"\x12") is None and dns.formerr(b"\x12\x34junk") is not None


def test_dns_upstreams_from_the_setting_or_the_hosts_resolv_conf() -> None:
    host = "# comment\nnameserver 127.0.0.53\nnameserver fe80::1%eth0\nsearch lan\n"
    assert dns.parse_upstreams(None, host) == [("127.0.0.53", 53), ("fe80::1", 53)]
    assert dns.parse_upstreams("10.0.0.1, 127.0.0.1:5353,[::1]:53", host) == [("10.0.0.1", 53), ("127.0.0.1", 5353), ("::1", 53)]
    assert dns.parse_upstreams("none", host) == []


def test_dns_relays_unknown_names_and_says_servfail_when_nobody_answers() -> None:
    """A query for a name no container has goes to the upstream as it is and its reply comes back;
    with no reply, SERVFAIL."""

    async def body() -> None:
        loop = asyncio.get_running_loop()
        up = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        up.bind(("127.0.0.1", 0))
        up.setblocking(False)
        port = up.getsockname()[1]

        async def serve() -> None:
            data, addr = await loop.sock_recvfrom(up, 512)
            await loop.sock_sendto(up, data[:2] + b"\x81\x80" + data[4:], addr)

        server = asyncio.create_task(serve())
        reply = await dns.ask(("127.0.0.1", port), query("example.com"))
        await server
        assert reply is not None and reply[:2] == query("example.com")[:2] and reply[2:4] == b"\x81\x80"
        assert await dns.ask(("127.0.0.1", port), query("example.com"), timeout=0.2) is None
        up.close()
        q = dns.parse_query(query("example.com"))
        assert struct.unpack_from("!H", dns.servfail(q), 2)[0] & 0xF == dns.SERVFAIL

    asyncio.run(body())


# -- rules and files ----------------------------------------------------------------------------


def test_rules_render_from_state() -> None:
    """The nft script replaces table ip teu wholesale; no bridge means the table is just dropped."""
    rs = firewall.Ruleset(
        (firewall.Bridge("teu0", "10.88.0.0/16"),), (firewall.Forward("127.0.0.1", 8080, "tcp", "10.88.0.2", 80),)
    )
    script = firewall.render_nft(rs)
    assert script.startswith("table ip teu {}\ndelete table ip teu\n")
    assert "ip daddr 127.0.0.1 tcp dport 8080 dnat to 10.88.0.2:80" in script
    assert 'ip saddr 10.88.0.0/16 oifname != "teu0" masquerade' in script
    assert firewall.render_nft(firewall.Ruleset()) == "table ip teu {}\ndelete table ip teu\n"
    restore = firewall.render_iptables(rs)
    assert "-A TEU-PORTS -d 127.0.0.1 -p tcp --dport 8080 -j DNAT --to-destination 10.88.0.2:80" in restore


def chain(script: str, name: str) -> list[str]:
    """The lines of chain ``name`` of an nft script (hook line included)."""
    lines = script.splitlines()
    start = lines.index(f"  chain {name} {{")
    return [line.strip() for line in lines[start + 1 : lines.index("  }", start)]]


def iptables_chain(restore: str, name: str) -> list[str]:
    """The rules (without "-A <chain>") of chain ``name`` of an iptables-restore input."""
    return [line.removeprefix(f"-A {name} ") for line in restore.splitlines() if line.startswith(f"-A {name} ")]


TWO_NETWORKS = firewall.Ruleset(
    (firewall.Bridge("teu0", "10.88.0.0/16"), firewall.Bridge("teu-abc", "10.89.1.0/24")),
    (firewall.Forward("127.0.0.1", 8080, "tcp", "10.88.0.2", 80),),
)


def test_loopback_from_bridges_is_dropped_before_nat() -> None:
    """Both back-ends drop loopback sources and destinations arriving from any Teu bridge in raw PREROUTING (before
    conntrack and DNAT), and the iptables back-end jumps there from the built-in chain and removes that jump too."""
    assert chain(firewall.render_nft(TWO_NETWORKS), "loopback") == [
        "type filter hook prerouting priority raw; policy accept;",
        'iifname "teu*" ip saddr 127.0.0.0/8 drop',
        'iifname "teu*" ip daddr 127.0.0.0/8 drop',
    ]
    restore = firewall.render_iptables(TWO_NETWORKS)
    assert restore.startswith("*raw\n:TEU-LOOPBACK - [0:0]\n")
    assert iptables_chain(restore, "TEU-LOOPBACK") == ["-i teu+ -s 127.0.0.0/8 -j DROP", "-i teu+ -d 127.0.0.0/8 -j DROP"]
    assert ("raw", "PREROUTING", ["-j", "TEU-LOOPBACK"]) in firewall._JUMPS
    assert firewall.CHAINS["raw"] == ("TEU-LOOPBACK",)
    # every chain restore declares is one the teardown flushes and deletes, and every jump leads to one of them
    declared = {(table, line[1:].split()[0]) for table, body in _tables(restore) for line in body if line.startswith(":")}
    assert declared == {(t, c) for t, chains in firewall.CHAINS.items() for c in chains}
    assert {(t, rule[rule.index("-j") + 1]) for t, _, rule in firewall._JUMPS} == declared


def _tables(restore: str) -> list[tuple[str, list[str]]]:
    out: list[tuple[str, list[str]]] = []
    for line in restore.splitlines():
        if line.startswith("*"):
            out.append((line[1:], []))
        elif line != "COMMIT":
            out[-1][1].append(line)
    return out


def test_forwarding_into_bridges_is_replies_published_or_same_network_only() -> None:
    """Forwarding into a Teu bridge accepts replies, DNATed traffic and traffic within that bridge, then drops the rest
    (other bridges, neighbours routing to containers); every accept is limited to Teu's bridges."""
    assert chain(firewall.render_nft(TWO_NETWORKS), "forward") == [
        "type filter hook forward priority filter; policy accept;",
        'oifname "teu*" ct state established,related accept',
        'oifname "teu*" ct status dnat accept',
        'iifname "teu0" oifname "teu0" accept',
        'iifname "teu-abc" oifname "teu-abc" accept',
        'oifname "teu*" drop',
    ]
    rules = iptables_chain(firewall.render_iptables(TWO_NETWORKS), "TEU-FORWARD")
    assert rules == [
        "-o teu+ -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
        "-i teu+ -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
        "-o teu+ -m conntrack --ctstate DNAT -j ACCEPT",
        "-i teu0 -o teu0 -j RETURN",
        "-i teu-abc -o teu-abc -j RETURN",
        "-o teu+ -j DROP",
    ]
    assert all(" -o teu+ " in f" {r} " or " -i teu+ " in f" {r} " for r in rules if r.endswith("ACCEPT"))
    assert addressing.BRIDGE_PREFIX == "teu" and addressing.bridge_name("f" * 64, default=False).startswith("teu")
    assert ("filter", "FORWARD", ["-j", "TEU-FORWARD"]) in firewall._JUMPS  # the built-in chain's policy is never set
    assert not any(line.startswith((":FORWARD", ":INPUT", ":PREROUTING", ":OUTPUT", ":POSTROUTING"))
                   for line in firewall.render_iptables(TWO_NETWORKS).splitlines())  # fmt: skip


@pytest.mark.parametrize("backend", ["nftables", "iptables"])
def test_route_localnet_only_once_the_rules_are_in(backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Bridges get route_localnet from the firewall after its rules (loopback drop included) are installed, never when
    installing them failed; the iptables back-end refuses to go on if a jump cannot be inserted."""
    calls: list[list[str]] = []
    localnet: list[str] = []
    failing: set[str] = set()

    async def fake_run(argv: list[str], stdin: str | None = None) -> tuple[int, str, str]:
        calls.append(argv)
        check = "-C" in argv  # no jump there yet
        return (1 if check or any(word in failing for word in argv) else 0), "", "boom"

    async def fake_allow(name: str) -> None:
        localnet.append(name)

    monkeypatch.setattr(firewall, "_run", fake_run)
    monkeypatch.setattr(links, "allow_localnet", fake_allow)
    fw: firewall.Firewall = firewall.Nft("nft") if backend == "nftables" else firewall.Iptables("iptables", "iptables-restore")
    asyncio.run(fw.apply(TWO_NETWORKS))
    assert localnet == ["teu0", "teu-abc"]
    if backend == "iptables":
        inserted = [(c[3], c[5]) for c in calls if "-I" in c]  # [iptables, -w, -t, table, -I, chain, 1, ...]
        assert inserted == [
            ("raw", "PREROUTING"),
            ("nat", "PREROUTING"),
            ("nat", "OUTPUT"),
            ("nat", "POSTROUTING"),
            ("filter", "FORWARD"),
        ]
    for step in ["nft"] if backend == "nftables" else ["iptables-restore", "PREROUTING"]:
        localnet.clear()
        failing.add(step)
        with pytest.raises(Internal):
            asyncio.run(fw.apply(TWO_NETWORKS))
        assert localnet == []
        failing.discard(step)


def test_iptables_teardown_removes_every_jump_and_chain(monkeypatch: pytest.MonkeyPatch) -> None:
    """An empty ruleset deletes each jump of Teu from the built-in chains (raw PREROUTING included) and flushes and
    deletes each of its chains, touching nothing else."""
    calls: list[list[str]] = []

    async def fake_run(argv: list[str], stdin: str | None = None) -> tuple[int, str, str]:
        calls.append(argv)
        return (1 if argv[4] == "-D" and calls.count(argv) > 1 else 0), "", ""  # each jump is there once

    monkeypatch.setattr(firewall, "_run", fake_run)
    asyncio.run(firewall.Iptables("iptables", "iptables-restore").apply(firewall.Ruleset()))
    deleted = {(c[3], c[5], " ".join(c[6:])) for c in calls if c[4] == "-D"}
    assert deleted == {(t, chain, " ".join(rule)) for t, chain, rule in firewall._JUMPS}
    assert ("raw", "PREROUTING", "-j TEU-LOOPBACK") in deleted
    removed = [(c[3], c[4], c[5]) for c in calls if c[4] in ("-F", "-X")]
    assert removed == [(t, op, chain) for t, chains in firewall.CHAINS.items() for chain in chains for op in ("-F", "-X")]
    assert {c[4] for c in calls} == {"-D", "-F", "-X"}


def test_container_files() -> None:
    """hosts names the container on its address; resolv.conf points at the network's responder, or is the host's without loopback servers."""
    assert netconf.hosts("abc", IPv4Address("10.88.0.2"), "web").endswith("10.88.0.2\tabc web\n")
    assert netconf.hosts("abc", None).endswith("127.0.1.1\tabc\n")
    assert netconf.resolv_for_dns(IPv4Address("10.89.0.1")).startswith("nameserver 10.89.0.1\n")
    host = "search example.org\nnameserver 127.0.0.53\nnameserver 192.0.2.53\nnameserver ::1\n"
    assert netconf.resolv_from_host(host) == "search example.org\nnameserver 192.0.2.53\n"


def test_host_network_spec_has_no_network_namespace() -> None:
    """--network host drops the network namespace from the OCI spec; the others keep it."""
    s = rt.ContainerSpec(process=types_pb2.Process(args=["sh"]))
    user, host = spec.User(0, 0), spec.Host(limits={**confine.host_limits(), "nofile": 1024, "nproc": 1024})
    kinds = [
        n["type"] for n in spec.build(CID, s, user, host, {}, "teu/x", spec.Shared({"network": None}))["linux"]["namespaces"]
    ]
    assert "network" not in kinds and "uts" in kinds
    assert "network" in [n["type"] for n in spec.build(CID, s, user, host, {}, "teu/x")["linux"]["namespaces"]]


# -- orchestration (netlink mocked: no privileges, no namespace touched) -------------------------


def networks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, routes: list[str], subnet: str = addressing.DEFAULT_SUBNET
) -> Networks:
    """A Networks over a fresh database whose namespace has ``routes`` (on eth0)."""

    async def fake_routes() -> list[tuple[IPv4Network, str]]:
        return [(IPv4Network(r), "eth0") for r in routes]

    monkeypatch.setattr(links, "routes", fake_routes)
    tmp_path.mkdir(parents=True, exist_ok=True)
    n = Networks(Store(tmp_path / "db"), owner="teu:test", default="bridge", subnet=subnet)
    asyncio.run(n.setup())
    return n


def test_default_subnet_avoids_routes_of_the_namespace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A default subnet that overlaps a route is skipped for the next free one; an invalid one falls back to 10.88.0.0/16."""
    assert networks(tmp_path / "a", monkeypatch, ["10.88.0.0/20"]).get("bridge").subnet == "10.89.0.0/16"
    assert networks(tmp_path / "b", monkeypatch, [], subnet="nonsense").get("bridge").subnet == "10.88.0.0/16"
    custom = networks(tmp_path / "c", monkeypatch, ["192.168.0.0/16"], subnet="172.20.0.0/16").get("bridge")
    assert (custom.subnet, custom.gateway, custom.bridge, custom.dns) == ("172.20.0.0/16", "172.20.0.1", "teu0", False)


def test_user_networks_and_their_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """CreateNetwork picks free /24s, refuses overlaps (with networks or routes), taken and reserved names; unknown networks are NOT_FOUND."""
    n = networks(tmp_path, monkeypatch, ["10.89.0.0/24"])
    first = asyncio.run(n.create("one", ""))
    assert first.subnet == "10.89.1.0/24" and first.dns and first.bridge.startswith("teu-")
    with pytest.raises(InvalidArgument, match="overlaps"):
        asyncio.run(n.create("two", "10.89.1.128/25"))
    with pytest.raises(InvalidArgument, match="overlaps"):
        asyncio.run(n.create("two", "10.89.0.0/16"))
    for taken in ("one", "bridge", "host", "none"):
        with pytest.raises(AlreadyExists):
            asyncio.run(n.create(taken, ""))
    with pytest.raises(NotFound):
        n.check(rt.ContainerSpec(network="nope"))
    with pytest.raises(InvalidArgument, match="--network host"):
        n.check(rt.ContainerSpec(network="host", ports=[mapping(80)]))
    with pytest.raises(FailedPrecondition):
        asyncio.run(n.remove("bridge"))
    assert [x.name for x in n.list()] == ["bridge", "one"]


def test_an_internal_network_gets_no_masquerade_and_nothing_forwarded_out() -> None:
    rs = firewall.Ruleset((firewall.Bridge("teu0", "10.88.0.0/16"), firewall.Bridge("teu-x", "10.96.0.0/24", internal=True)), ())
    nft = firewall.render_nft(rs)
    assert "ip saddr 10.88.0.0/16" in nft and "ip saddr 10.96.0.0/24" not in nft
    assert 'iifname "teu-x" oifname != "teu-x" drop' in nft
    ipt = firewall.render_iptables(rs)
    assert "-s 10.96.0.0/24" not in ipt and "-A TEU-FORWARD -i teu-x ! -o teu-x -j DROP" in ipt


def test_addresses_come_from_the_ip_range_and_a_gateway_must_be_in_the_subnet() -> None:
    net = IPv4Network("10.96.5.0/24")
    assert str(addressing.first_free_address(net, [], IPv4Network("10.96.5.128/25"))) == "10.96.5.128/24"
    assert (
        str(addressing.first_free_address(net, [IPv4Address("10.96.5.254")], IPv4Network("10.96.5.252/30"))) == "10.96.5.252/24"
    )
    with pytest.raises(InvalidArgument):
        addressing.host_address(net, "10.96.5.255", "gateway")
    with pytest.raises(InvalidArgument):
        addressing.check_ip_range(net, "10.96.0.0/16")


def test_connections_take_free_addresses_next_ethn_and_answer_dns_with_aliases(tmp_path: Path) -> None:
    """A connected container gets an address no attachment or connection holds, eth1 then eth2, its
    name and aliases on that network's DNS; a taken or outside address is refused; release forgets it."""
    store = Store(tmp_path / "rt.db")
    records = Records(store)
    net = types_pb2.Network(id="n" * 64, name="side", subnet="10.90.0.0/29", gateway="10.90.0.1", bridge="teu-side", dns=True)
    other = types_pb2.Network(id="m" * 64, name="third", subnet="10.91.0.0/29", gateway="10.91.0.1", bridge="teu-third", dns=True)
    records.insert_network(net)
    records.insert_network(other)
    cid = "c" * 64
    store.insert(rt.Container(id=cid, name="web", spec=rt.ContainerSpec(process=types_pb2.Process(args=["sh"])), state=1))
    records.allocate("d" * 64, net, "vteud", [])  # another container started on it: 10.90.0.2
    first = records.connect(cid, net, "vteux1", "", ["api"])
    assert (str(first.address), first.ifname) == ("10.90.0.3/29", "eth1")
    assert records.connect(cid, other, "vteux2", "10.91.0.5", []).ifname == "eth2"
    assert records.lookup(net.id, "web") == IPv4Address("10.90.0.3") and records.lookup(net.id, "API") == IPv4Address("10.90.0.3")
    assert records.members(net.id) == {"d" * 64: "10.90.0.2", cid: "10.90.0.3"}
    with pytest.raises(FailedPrecondition, match="already connected"):
        records.connect(cid, net, "vteux3", "", [])
    with pytest.raises(FailedPrecondition, match="in use"):
        records.connect("e" * 64, net, "vteux4", "10.90.0.2", [])
    with pytest.raises(InvalidArgument, match="not a host address"):
        records.connect("e" * 64, net, "vteux4", "10.99.0.2", [])
    _, _, gone = records.release(cid)
    assert sorted(c.ifname for c in gone) == ["eth1", "eth2"] and records.connections(cid) == []
