"""What a container on a bridge network, or a neighbour on the engine's LAN, must not reach.

As in tests/integration/test_network.py the whole engine runs inside a network namespace made
here, with each firewall back-end; the "LAN" and the "other host" are namespaces made here too,
wired to the engine's namespace by veth pairs. Every packet a test sends stays inside those
namespaces: nothing is created in, or sent to, the host's own network.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import grpc
import pytest
from test_network import STEP, NamespacedEngine, attachment, in_ns, port, run

from conftest import IMAGE_TAR
from teu.client import Client
from teu.testing import wait_ready, wait_until
from teu_api.runtime.v1 import runtime_pb2 as rt
from teu_api.runtime.v1 import runtime_pb2_grpc
from teu_api.types.v1 import types_pb2

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root"),
    pytest.mark.timeout(120),
]

# A TCP server: bound to argv[1]:argv[2], prints "up", then answers every request with argv[3] and closes.
SERVER = """\
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen(16)
print("up", flush=True)
while True:
    c, _ = s.accept()
    c.settimeout(3)
    try:
        c.recv(4096)
    except OSError:
        pass
    c.sendall(sys.argv[3].encode())
    c.close()
"""
# A TCP client: sends an HTTP request to argv[1]:argv[2], prints the answer (to EOF), or "failed: <error>".
CLIENT = """\
import socket, sys
try:
    s = socket.create_connection((sys.argv[1], int(sys.argv[2])), 3)
    s.sendall(b"GET / HTTP/1.0\\r\\n\\r\\n")
    data = b""
    while chunk := s.recv(4096):
        data += chunk
    print(data.decode())
except OSError as exc:
    print("failed:", exc)
"""
# A UDP server on 0.0.0.0:argv[1]: prints "up", then "<source> <data>" per datagram until "control" comes.
UDP_SERVER = """\
import socket, sys
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.bind(("0.0.0.0", int(sys.argv[1])))
u.settimeout(10)
print("up", flush=True)
while True:
    data, (source, _) = u.recvfrom(512)
    print(source, data.decode(), flush=True)
    if data == b"control":
        break
"""
# Sends a UDP datagram "spoofed" from 127.0.0.2 (a raw IP packet) to argv[1]:argv[2], then an honest "control" one.
# (Not 127.0.0.1: the kernel drops a source that is one of its own addresses anyway.)
UDP_SPOOF = """\
import socket, struct, sys
dst, dport = sys.argv[1], int(sys.argv[2])
udp = struct.pack("!HHHH", 40000, dport, 8 + 7, 0) + b"spoofed"
ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, socket.IPPROTO_UDP, 0,
                 socket.inet_aton("127.0.0.2"), socket.inet_aton(dst))
socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW).sendto(ip + udp, (dst, 0))
socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"control", (dst, dport))
"""
LAN_HOST, LAN_PEER = "198.51.100.1", "198.51.100.2"  # TEST-NET-2: the engine's side, a LAN neighbour
FAR_HOST, FAR_PEER = "203.0.113.1", "203.0.113.2"  # TEST-NET-3: the engine's side, a host behind it


@pytest.fixture(scope="module", params=["nftables", "iptables"])
def backend(request: pytest.FixtureRequest) -> str:
    """The firewall back-end the engine is made to use (the whole module runs with each)."""
    return str(request.param)


def _make_ns(name: str) -> None:
    from pyroute2 import IPRoute
    from pyroute2 import netns as pnetns

    pnetns.create(name)
    with IPRoute(netns=name, flags=0) as ipr:
        ipr.link("set", index=ipr.link_lookup(ifname="lo")[0], state="up")


def _remove_ns(name: str) -> None:
    from pyroute2 import netns as pnetns

    pnetns.remove(name)


@pytest.fixture(scope="module")
def netns(backend: str) -> Iterator[str]:
    """A fresh network namespace for the engine, with lo up, removed with everything in it at the end."""
    name = f"teusec{os.getpid()}"
    _make_ns(name)
    try:
        yield name
    finally:
        _remove_ns(name)


@pytest.fixture(scope="module")
def neteng(netns: str, backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[NamespacedEngine]:
    """The engine in ``netns``, with busybox imported."""
    eng = NamespacedEngine(tmp_path_factory.mktemp("isolation"), netns, backend)
    with eng:
        with Client(eng.target) as c, IMAGE_TAR.open("rb") as f:
            c.import_image(f, "busybox", types_pb2.ImageConfig(cmd=["sh"]))
        yield eng


@pytest.fixture()
def teu(neteng: NamespacedEngine) -> Iterator[Client]:
    """An SDK client of the namespaced engine."""
    with Client(neteng.target) as c:
        wait_ready(c)
        yield c


@pytest.fixture()
def runtime(neteng: NamespacedEngine) -> Iterator[runtime_pb2_grpc.RuntimeServiceStub]:
    """A stub of the engine's runtime service."""
    with grpc.insecure_channel(f"unix:{neteng.run_dir}/runtime.sock") as ch:
        yield runtime_pb2_grpc.RuntimeServiceStub(ch)


@contextmanager
def peer(netns: str, tag: str, host_if: str, host_addr: str, peer_addr: str, routes: Sequence[str] = ()) -> Iterator[str]:
    """A namespace of its own wired to ``netns`` by a veth pair (``host_if`` with ``host_addr``/24 on the
    engine's side, eth0 with ``peer_addr``/24 on its side), with ``routes`` via the engine; removed at the end."""
    name = f"{tag}{os.getpid()}"
    _make_ns(name)
    try:
        made = in_ns(
            netns, "ip", "link", "add", host_if, "type", "veth", "peer", "name", "eth0", "netns", name
        )  # never in the host's
        assert made.returncode == 0, made.stderr
        for argv in (["ip", "addr", "add", f"{host_addr}/24", "dev", host_if], ["ip", "link", "set", host_if, "up"]):
            assert in_ns(netns, *argv).returncode == 0
        steps = [["ip", "addr", "add", f"{peer_addr}/24", "dev", "eth0"], ["ip", "link", "set", "eth0", "up"]]
        steps += [["ip", "route", "add", r, "via", host_addr] for r in routes]
        for argv in steps:
            done = in_ns(name, *argv)
            assert done.returncode == 0, done.stderr
        yield name
    finally:
        _remove_ns(name)  # takes the veth pair along


@contextmanager
def serving(where: Sequence[str], code: str, *args: str) -> Iterator[subprocess.Popen[str]]:
    """Runs server ``code`` under ``where`` (an nsenter prefix) until the block ends, once it printed "up"."""
    proc = subprocess.Popen([*where, sys.executable, "-c", code, *args], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "up"
        yield proc
    finally:
        proc.kill()
        proc.wait()


def ns(name: str) -> list[str]:
    """nsenter prefix of a named namespace (network only)."""
    return ["nsenter", f"--net=/run/netns/{name}"]


def of_pid(pid: int) -> list[str]:
    """nsenter prefix of a container's network namespace."""
    return ["nsenter", "-t", str(pid), "-n"]


def connect(where: Sequence[str], host: str, tcp_port: int) -> str:
    """What a client under ``where`` receives from ``host``:``tcp_port`` ("failed: ..." if it cannot connect)."""
    done = subprocess.run(
        [*where, sys.executable, "-c", CLIENT, host, str(tcp_port)], capture_output=True, text=True, timeout=STEP
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def sh(where: Sequence[str], script: str) -> None:
    """Runs a shell script under ``where``; it must succeed."""
    done = subprocess.run([*where, "sh", "-ec", script], capture_output=True, text=True, timeout=STEP)
    assert done.returncode == 0, done.stderr


HTTPD = "mkdir -p /www && echo {body} > /www/index.html && exec httpd -f -p 80 -h /www"


def test_host_loopback_is_unreachable_from_a_container(
    teu: Client, runtime: runtime_pb2_grpc.RuntimeServiceStub, netns: str
) -> None:
    """A container that routes 127.0.0.0/8 to its gateway cannot reach a server listening on 127.0.0.1 of the engine's namespace."""
    cid, _, _ = run(teu, ["sleep", "300"], detach=True)
    try:
        pid, gateway = teu.inspect(cid).pid, attachment(runtime, cid).gateway
        with (
            serving(ns(netns), SERVER, "127.0.0.1", "7777", "loopback-secret"),
            serving(ns(netns), SERVER, "0.0.0.0", "7778", "gateway-ok"),
        ):
            assert connect(of_pid(pid), gateway, 7778) == "gateway-ok"  # the container and its client work
            # the attacker owns its namespace: its own 127/8 goes, packets to 127.0.0.1 go to the gateway's MAC
            sh(of_pid(pid), f"ip addr del 127.0.0.1/8 dev lo; ip route add 127.0.0.0/8 via {gateway} dev eth0;"
                            " echo 1 > /proc/sys/net/ipv4/conf/eth0/route_localnet")  # fmt: skip
            got = connect(of_pid(pid), "127.0.0.1", 7777)
            assert got.startswith("failed"), got
    finally:
        teu.remove(cid, force=True)


def test_loopback_source_is_not_accepted_from_a_container(
    teu: Client, runtime: runtime_pb2_grpc.RuntimeServiceStub, netns: str
) -> None:
    """A datagram a container forges with a loopback source (127.0.0.2) does not reach a service of the engine's namespace; an honest one does."""
    cid, _, _ = run(teu, ["sleep", "300"], detach=True)
    try:
        pid, gateway = teu.inspect(cid).pid, attachment(runtime, cid).gateway
        address = attachment(runtime, cid).address.split("/")[0]
        with serving(ns(netns), UDP_SERVER, "7779") as server:
            done = subprocess.run(
                [*of_pid(pid), sys.executable, "-c", UDP_SPOOF, gateway, "7779"], capture_output=True, text=True, timeout=STEP
            )
            assert done.returncode == 0, done.stderr
            assert server.stdout is not None
            got = [line.strip() for line in server.stdout]  # up to "control", the last datagram sent
        assert got == [f"{address} control"], got
    finally:
        teu.remove(cid, force=True)


def test_bridges_ignore_router_advertisements(teu: Client, runtime: runtime_pb2_grpc.RuntimeServiceStub, netns: str) -> None:
    """The default bridge and a user network's bridge have accept_ra=0, so containers cannot configure the engine's IPv6 routes."""
    if in_ns(netns, "test", "-d", "/proc/sys/net/ipv6/conf/lo").returncode != 0:
        pytest.skip("IPv6 is disabled on this kernel")
    runtime.CreateNetwork(rt.CreateNetworkRequest(name="ra"), timeout=STEP)
    try:
        run(teu, ["true"])
        run(teu, ["true"], network="ra")
        bridge = runtime.GetNetwork(rt.GetNetworkRequest(ref="ra"), timeout=STEP).network.bridge
        for name in ("teu0", bridge):
            assert in_ns(netns, "cat", f"/proc/sys/net/ipv6/conf/{name}/accept_ra").stdout.strip() == "0", name
    finally:
        runtime.RemoveNetwork(rt.RemoveNetworkRequest(ref="ra"), timeout=STEP)


def test_lan_neighbour_reaches_published_ports_only(
    teu: Client, runtime: runtime_pb2_grpc.RuntimeServiceStub, netns: str
) -> None:
    """A LAN neighbour routing the containers' subnet via the engine reaches a published port, not the container's unpublished
    ports directly, while the container still opens connections to the LAN."""
    web, _, _ = run(teu, ["sh", "-c", HTTPD.format(body="published")], detach=True, ports=[port(8085, 80)])
    try:
        att = attachment(runtime, web)
        address = att.address.split("/")[0]
        subnet = runtime.GetNetwork(rt.GetNetworkRequest(ref="bridge"), timeout=STEP).network.subnet
        with peer(netns, "teulan", "xlan0", LAN_HOST, LAN_PEER, routes=[subnet]) as lan:
            wait_until(lambda: "published" in connect(ns(lan), LAN_HOST, 8085))
            assert connect(ns(netns), address, 80).endswith("published")  # the container serves on :80
            got = connect(ns(lan), address, 80)
            assert got.startswith("failed"), got
            with serving(ns(lan), SERVER, LAN_PEER, "9001", "lan-ok"):
                assert connect(of_pid(teu.inspect(web).pid), LAN_PEER, 9001) == "lan-ok"
    finally:
        teu.remove(web, force=True)


def test_host_forward_rules_still_apply_to_other_traffic(teu: Client, netns: str, backend: str) -> None:
    """A FORWARD rule of the host (here: dropping its own DNATed traffic to a machine behind it) is not overridden by Teu's
    rules for traffic that has nothing to do with Teu's bridges."""
    run(teu, ["true"])  # Teu's rules (and, with iptables, its jump at the top of FORWARD) are in place
    dnat = [
        "-t",
        "nat",
        "PREROUTING",
        "-i",
        "xlan0",
        "-p",
        "tcp",
        "--dport",
        "9000",
        "-j",
        "DNAT",
        "--to-destination",
        f"{FAR_PEER}:9000",
    ]
    drop = ["-t", "filter", "FORWARD", "-d", FAR_PEER, "-p", "tcp", "--dport", "9000", "-j", "DROP"]
    with peer(netns, "teulan", "xlan0", LAN_HOST, LAN_PEER) as lan, peer(netns, "teufar", "xfar0", FAR_HOST, FAR_PEER) as far:
        assert in_ns(far, "ip", "route", "add", "default", "via", FAR_HOST).returncode == 0
        added: list[list[str]] = []
        try:
            for rule in (dnat, drop):
                done = in_ns(netns, "iptables", "-w", rule[0], rule[1], "-A", *rule[2:])
                assert done.returncode == 0, done.stderr
                added.append(rule)
                if rule is dnat:
                    with serving(ns(far), SERVER, "0.0.0.0", "9000", "far-ok"):
                        assert connect(ns(lan), LAN_HOST, 9000) == "far-ok"  # the host's own DNAT works
            with serving(ns(far), SERVER, "0.0.0.0", "9000", "far-ok"):
                got = connect(ns(lan), LAN_HOST, 9000)
            assert got.startswith("failed"), got
        finally:
            for rule in added:
                in_ns(netns, "iptables", "-w", rule[0], rule[1], "-D", *rule[2:])
