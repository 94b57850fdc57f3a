"""Container networking end to end, with the whole engine inside a network namespace of its own.

Bridges, veths, nftables rules and container addresses all live in that namespace (made here,
removed at the end), so nothing touches the host's network; every packet a test sends goes to
loopback or to a container of that namespace.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import grpc
import pytest

from conftest import IMAGE_TAR, REPO
from teu import mounts
from teu.client import Client, ContainerOptions
from teu.errors import FailedPrecondition, InvalidArgument, NotFound, TeuError, from_status
from teu.testing import PrivateEngine, wait_ready, wait_until
from teu_api.gateway.v1 import gateway_pb2 as gw
from teu_api.runtime.v1 import runtime_pb2 as rt
from teu_api.runtime.v1 import runtime_pb2_grpc
from teu_api.types.v1 import types_pb2
from teu_runtime.network.networks import owner_of

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root"),
    pytest.mark.timeout(120),
]
STEP = 30  # seconds any one helper command may take


class NamespacedEngine(PrivateEngine):
    """A private engine whose processes (and so its containers' networks) live in namespace ``ns``."""

    def __init__(self, base: Path, ns: str, firewall: str) -> None:
        super().__init__(base)
        self.ns = ns
        self.firewall = firewall

    def start(self) -> NamespacedEngine:
        """Starts the supervisor under ``nsenter --net`` (only the network namespace changes) with
        bridge networking as the default and the given firewall back-end."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        env = {"TEU_DNS_UPSTREAM": "none", **os.environ, "TEU_METRICS_PORT_BASE": "0", "TEU_DEFAULT_NETWORK": "bridge",
               "TEU_FIREWALL": self.firewall, **self.extra_env}  # fmt: skip
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                ["nsenter", f"--net=/run/netns/{self.ns}", sys.executable, "-m", "teu_engine",
                 "--root", str(self.root), "--run-dir", str(self.run_dir)],
                env=env, stdout=log, stderr=log, start_new_session=True,
            )  # fmt: skip
        with Client(self.target) as c:
            wait_ready(c)
        return self

    def stop(self) -> None:
        """Waits for every service (a test may have just killed one), then removes the containers and stops."""
        if self.proc is not None:
            with Client(self.target) as c:
                wait_ready(c, timeout=STEP)
        super().stop()


def in_ns(ns: str, *argv: str, timeout: float = STEP) -> subprocess.CompletedProcess[str]:
    """Runs ``argv`` in namespace ``ns`` (network only)."""
    return subprocess.run(["nsenter", f"--net=/run/netns/{ns}", *argv], capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module", params=["nftables", "iptables"])
def backend(request: pytest.FixtureRequest) -> str:
    """The firewall back-end the engine is made to use (the whole module runs with each)."""
    return str(request.param)


@pytest.fixture(scope="module")
def netns(backend: str) -> Iterator[str]:
    """A fresh network namespace with lo up (one per back-end), removed with everything in it at the end."""
    from pyroute2 import IPRoute
    from pyroute2 import netns as pnetns

    name = f"teutest{os.getpid()}"
    pnetns.create(name)
    try:
        with IPRoute(netns=name, flags=0) as ipr:
            ipr.link("set", index=ipr.link_lookup(ifname="lo")[0], state="up")
        yield name
    finally:
        pnetns.remove(name)


@pytest.fixture(scope="module")
def neteng(netns: str, backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[NamespacedEngine]:
    """The engine in ``netns``, with busybox imported."""
    eng = NamespacedEngine(tmp_path_factory.mktemp("netengine"), netns, backend)
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
    """A stub of the engine's runtime service (networks are its API)."""
    with grpc.insecure_channel(f"unix:{neteng.run_dir}/runtime.sock") as ch:
        yield runtime_pb2_grpc.RuntimeServiceStub(ch)


def rpc(call: object, request: object) -> object:
    """One unary call, with gRPC errors as Teu errors."""
    try:
        return call(request, timeout=STEP)  # type: ignore[operator]
    except grpc.RpcError as exc:
        raise from_status(exc.code(), exc.details()) from None


def run(c: Client, cmd: Sequence[str], network: str = "", ports: Sequence[types_pb2.PortMapping] = (),
        detach: bool = False, name: str = "") -> tuple[str, int, str]:  # fmt: skip
    """(id, exit code, output) of a busybox container on ``network`` (detached: exit code -1)."""
    config = ContainerOptions(image="busybox", cmd=list(cmd), remove=not detach, name=name).to_proto()
    config.network = network
    config.ports.extend(ports)
    cid, code, out = "", -1, []
    try:
        for frame in c.containers.Run(gw.RunRequest(config=config, detach=detach), timeout=STEP):
            kind = frame.WhichOneof("event")
            if kind == "created":
                cid = frame.created.id
            elif kind == "output":
                out.append(frame.output.data.decode(errors="replace"))
            elif kind == "exit":
                code = frame.exit.exit_code
    except grpc.RpcError as exc:
        raise from_status(exc.code(), exc.details()) from None
    return cid, code, "".join(out)


def port(host_port: int, container_port: int, host_ip: str = "") -> types_pb2.PortMapping:
    """A tcp mapping."""
    return types_pb2.PortMapping(host_ip=host_ip, host_port=host_port, container_port=container_port, protocol="tcp")


def attachment(runtime: runtime_pb2_grpc.RuntimeServiceStub, cid: str) -> types_pb2.NetworkAttachment:
    """The container's network attachment as the runtime reports it."""
    return rpc(runtime.GetContainer, rt.GetContainerRequest(ref=cid)).container.network  # type: ignore[attr-defined, no-any-return]


def veths(ns: str) -> list[str]:
    """Host-side veths Teu made in ``ns``."""
    out = in_ns(ns, "ip", "-o", "link", "show").stdout
    return [line.split(":")[1].strip().split("@")[0] for line in out.splitlines() if ": vteu" in line]


@pytest.fixture()
def nat_rules(netns: str, backend: str) -> Callable[[], str]:
    """Lists Teu's rules in the namespace: the nftables table, or the iptables chains (both print "dport N")."""

    def dump() -> str:
        if backend == "nftables":
            return in_ns(netns, "nft", "list", "table", "ip", "teu").stdout
        return in_ns(netns, "iptables", "-w", "-t", "nat", "-S").stdout

    return dump


def count_dnat(rules: str) -> int:
    """DNAT rules in a listing of either back-end."""
    return rules.count("dnat to") + rules.count("-j DNAT")


def fetch(ns: str, url: str) -> str:
    """Body of ``url`` fetched by a client inside ``ns``."""
    code = f"import urllib.request; print(urllib.request.urlopen({url!r}, timeout=5).read().decode(), end='')"
    done = in_ns(ns, sys.executable, "-c", code)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_bridge_gives_eth0_with_an_address_and_default_route(teu: Client) -> None:
    """A container on the default network has eth0 in 10.88.0.0/16, a default route via the bridge and its address in /etc/hosts."""
    _, code, out = run(teu, ["sh", "-c", "ip -4 addr show eth0; ip route; cat /etc/hosts"])
    assert code == 0, out
    assert "inet 10.88." in out and "/16" in out
    assert "default via 10.88.0.1 dev eth0" in out
    assert any(line.startswith("10.88.") for line in out.splitlines())


def test_none_network_is_loopback_only(teu: Client) -> None:
    """--network none still gives a namespace with only lo."""
    _, code, out = run(teu, ["ip", "-o", "link"], network="none")
    assert code == 0, out
    assert [line.split(":")[1].strip() for line in out.splitlines()] == ["lo"]


def test_host_network_shares_the_engine_namespace(teu: Client) -> None:
    """--network host sees the engine's own links (its bridge), not a namespace of its own."""
    run(teu, ["true"])  # the default bridge exists from here on
    _, code, out = run(teu, ["ip", "-o", "link"], network="host")
    assert code == 0, out
    assert "teu0" in out


def test_user_network_resolves_names_and_is_isolated(
    teu: Client, runtime: runtime_pb2_grpc.RuntimeServiceStub, netns: str
) -> None:
    """Containers on one user network ping each other by name; a container on another network reaches neither the name nor the address."""
    rpc(runtime.CreateNetwork, rt.CreateNetworkRequest(name="front", subnet="10.89.7.0/24"))
    rpc(runtime.CreateNetwork, rt.CreateNetworkRequest(name="back"))
    db, _, _ = run(teu, ["sleep", "300"], network="front", detach=True, name="db")
    try:
        att = attachment(runtime, db)
        assert att.network == "front" and att.address.startswith("10.89.7.") and att.address.endswith("/24")
        assert att.gateway == "10.89.7.1" and att.mac.startswith("02:42:") and att.host_interface.startswith("vteu")
        net = rpc(runtime.GetNetwork, rt.GetNetworkRequest(ref="front")).network  # type: ignore[attr-defined]
        assert dict(net.containers) == {db: att.address} and net.dns
        _, code, out = run(teu, ["ping", "-c1", "-W2", "db"], network="front")
        assert code == 0, out
        _, code, out = run(teu, ["nslookup", "nosuchname"], network="front")
        assert code != 0  # NXDOMAIN, never forwarded anywhere
        address = att.address.split("/")[0]
        _, code, out = run(teu, ["sh", "-c", f"ping -c1 -W2 db; ping -c1 -W2 {address}"], network="back")
        assert code != 0 and "bad address 'db'" in out and "100% packet loss" in out, out
        with pytest.raises(FailedPrecondition, match="in use"):
            rpc(runtime.RemoveNetwork, rt.RemoveNetworkRequest(ref="front"))
    finally:
        teu.remove(db, force=True)
    rpc(runtime.RemoveNetwork, rt.RemoveNetworkRequest(ref="front"))
    rpc(runtime.RemoveNetwork, rt.RemoveNetworkRequest(ref="back"))
    assert "front" not in [n.name for n in rpc(runtime.ListNetworks, rt.ListNetworksRequest()).networks]  # type: ignore[attr-defined]


def test_published_port_on_loopback_and_rule_removed_at_stop(teu: Client, runtime: runtime_pb2_grpc.RuntimeServiceStub, netns: str,
                                                             nat_rules: Callable[[], str]) -> None:  # fmt: skip
    """-p 127.0.0.1:8080:80 reaches busybox httpd from the engine's namespace; stopping the container removes the rule."""
    serve = "mkdir -p /www && echo hello-from-teu > /www/index.html && exec httpd -f -p 80 -h /www"
    web, _, _ = run(teu, ["sh", "-c", serve], detach=True, ports=[port(8080, 80, "127.0.0.1")])
    try:
        att = attachment(runtime, web)
        assert [(p.host_ip, p.host_port, p.container_port, p.protocol) for p in att.ports] == [("127.0.0.1", 8080, 80, "tcp")]
        assert "dport 8080" in nat_rules()
        wait_until(
            lambda: (
                in_ns(netns, sys.executable, "-c", "import socket; socket.create_connection(('127.0.0.1', 8080), 2)").returncode
                == 0
            )
        )
        assert fetch(netns, "http://127.0.0.1:8080/") == "hello-from-teu\n"
        teu.stop(web, timeout=2)
        assert "dport 8080" not in nat_rules()
        wait_until(lambda: att.host_interface not in veths(netns))  # gone with the namespace, or reaped
    finally:
        teu.remove(web, force=True)


def test_host_port_in_use_is_refused_and_nothing_is_left(teu: Client, runtime: runtime_pb2_grpc.RuntimeServiceStub, netns: str,
                                                         nat_rules: Callable[[], str]) -> None:  # fmt: skip
    """A host port held by another container or by a listening socket is INVALID_ARGUMENT naming it, and the container does not run."""
    holder, _, _ = run(teu, ["sleep", "300"], detach=True, ports=[port(8081, 80)])
    listener = subprocess.Popen(
        ["nsenter", f"--net=/run/netns/{netns}", sys.executable, "-c",
         "import socket,time; s=socket.socket(); s.bind(('0.0.0.0', 8082)); s.listen(); print('up', flush=True); time.sleep(120)"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert listener.stdout is not None and listener.stdout.readline().strip() == "up"
        for taken in (8081, 8082):
            before = set(veths(netns))  # the holder's only
            with pytest.raises(InvalidArgument, match=f"port {taken}/tcp"):
                run(teu, ["sleep", "300"], detach=True, name=f"late{taken}", ports=[port(taken, 80, "127.0.0.1")])
            late = rpc(runtime.GetContainer, rt.GetContainerRequest(ref=f"late{taken}")).container  # type: ignore[attr-defined]
            assert late.state == types_pb2.CONTAINER_STATE_CREATED and f"port {taken}/tcp" in late.error
            assert set(veths(netns)) <= before  # no veth was made (an earlier one may be reaped meanwhile)
            bridge = rpc(runtime.GetNetwork, rt.GetNetworkRequest(ref="bridge")).network  # type: ignore[attr-defined]
            assert list(bridge.containers) == [holder]
            teu.remove(f"late{taken}", force=True)
        assert count_dnat(nat_rules()) == 1 and "dport 8081" in nat_rules()
    finally:
        listener.kill()
        listener.wait()
        teu.remove(holder, force=True)


def test_network_api_errors(runtime: runtime_pb2_grpc.RuntimeServiceStub) -> None:
    """Overlapping or invalid subnets are INVALID_ARGUMENT, a taken name ALREADY_EXISTS, the default network cannot be removed."""
    rpc(runtime.CreateNetwork, rt.CreateNetworkRequest(name="n1", subnet="10.90.0.0/16"))
    try:
        for bad in ("10.90.3.0/24", "10.88.0.0/24", "10.1.2.3/24", "300.1.0.0/16", "10.2.0.0", "fd00::/64"):
            with pytest.raises(InvalidArgument):
                rpc(runtime.CreateNetwork, rt.CreateNetworkRequest(name="n2", subnet=bad))
        with pytest.raises(TeuError) as exists:
            rpc(runtime.CreateNetwork, rt.CreateNetworkRequest(name="n1", subnet="10.91.0.0/16"))
        assert type(exists.value).__name__ == "AlreadyExists"
        with pytest.raises(FailedPrecondition):
            rpc(runtime.RemoveNetwork, rt.RemoveNetworkRequest(ref="bridge"))
        with pytest.raises(TeuError) as missing:
            rpc(runtime.GetNetwork, rt.GetNetworkRequest(ref="nope"))
        assert type(missing.value).__name__ == "NotFound"
    finally:
        rpc(runtime.RemoveNetwork, rt.RemoveNetworkRequest(ref="n1"))


def test_no_leftovers_after_rm(
    teu: Client, runtime: runtime_pb2_grpc.RuntimeServiceStub, netns: str, nat_rules: Callable[[], str]
) -> None:
    """Force-removing running containers with ports leaves no veth, no DNAT rule and no allocation."""
    ids = [run(teu, ["sleep", "300"], detach=True, ports=[port(8090 + i, 80)])[0] for i in range(3)]
    assert len(veths(netns)) >= 3
    for cid in ids:
        teu.remove(cid, force=True)
    wait_until(lambda: veths(netns) == [])
    assert count_dnat(nat_rules()) == 0
    networks = rpc(runtime.ListNetworks, rt.ListNetworksRequest()).networks  # type: ignore[attr-defined]
    assert all(not n.containers for n in networks)


def test_no_leftovers_after_runtime_sigkill(teu: Client, runtime: runtime_pb2_grpc.RuntimeServiceStub, neteng: NamespacedEngine,
                                            netns: str, backend: str, nat_rules: Callable[[], str]) -> None:  # fmt: skip
    """After a SIGKILL of the runtime service, the restarted one releases a container that exited meanwhile, removes a
    stray veth and rule, and keeps a surviving container attached and resolvable by name."""
    rpc(runtime.CreateNetwork, rt.CreateNetworkRequest(name="mid"))
    made: list[str] = []
    try:
        survivor, _, _ = run(teu, ["sleep", "300"], network="mid", detach=True, name="survivor")
        made.append(survivor)
        cid, _, _ = run(teu, ["sleep", "300"], detach=True, ports=[port(8099, 80)])
        made.append(cid)
        kept = attachment(runtime, survivor)
        pid = teu.inspect(cid).pid
        old = neteng.service_pid("runtime")
        os.kill(old, signal.SIGSTOP)  # frozen: it must not see the exit below
        try:
            os.kill(pid, signal.SIGKILL)
            # a stray veth of this engine (its alias), and a look-alike of another engine's that must be left alone
            for name, peer, alias in (
                ("vteudeadbeef00", "vteudeadbeef01", owner_of(neteng.root)),
                ("vteuforeign000", "teuforeign001", "teu:other"),
            ):
                assert in_ns(netns, "ip", "link", "add", name, "type", "veth", "peer", "name", peer).returncode == 0
                assert in_ns(netns, "ip", "link", "set", "dev", name, "alias", alias).returncode == 0
            stray_rule = (["nft", "add", "rule", "ip", "teu", "ports", "tcp", "dport", "9999", "dnat", "to", "10.88.0.250:80"]
                          if backend == "nftables" else
                          ["iptables", "-w", "-t", "nat", "-A", "TEU-PORTS", "-p", "tcp", "--dport", "9999", "-j", "DNAT",
                           "--to-destination", "10.88.0.250:80"])  # fmt: skip
            assert in_ns(netns, *stray_rule).returncode == 0
        finally:
            os.kill(old, signal.SIGKILL)
        wait_until(lambda: _pid_or_zero(neteng) not in (0, old))
        wait_ready(teu)
        exited = types_pb2.CONTAINER_STATE_EXITED
        wait_until(lambda: rpc(runtime.GetContainer, rt.GetContainerRequest(ref=cid)).container.state == exited)  # type: ignore[attr-defined]
        wait_until(lambda: veths(netns) == [kept.host_interface, "vteuforeign000"])
        assert in_ns(netns, "ip", "link", "del", "vteuforeign000").returncode == 0
        rules = nat_rules()
        assert "dport 8099" not in rules and "dport 9999" not in rules
        networks = {n.name: n for n in rpc(runtime.ListNetworks, rt.ListNetworksRequest()).networks}  # type: ignore[attr-defined]
        assert not networks["bridge"].containers and dict(networks["mid"].containers) == {survivor: kept.address}
        assert attachment(runtime, survivor) == kept
        _, code, out = run(teu, ["ping", "-c1", "-W2", "survivor"], network="mid")  # the responder is back
        assert code == 0, out
    finally:
        wait_ready(teu)
        for made_id in made:
            teu.remove(made_id, force=True)
        rpc(runtime.RemoveNetwork, rt.RemoveNetworkRequest(ref="mid"))
    wait_until(lambda: veths(netns) == [])


def _pid_or_zero(eng: PrivateEngine) -> int:
    try:
        return eng.service_pid("runtime")
    except LookupError:
        return 0


def test_cli_network_commands_and_publish(neteng: NamespacedEngine, netns: str) -> None:
    """The CLI creates, lists, inspects and removes a network; `run --network` and `-p` work from it."""
    teu_bin = str(Path(sys.executable).parent / "teu")

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([teu_bin, *args], env=neteng.env(), capture_output=True, text=True, timeout=STEP)

    assert cli("network", "create", "--subnet", "10.99.7.0/24", "clinet").returncode == 0
    assert "clinet" in cli("network", "ls").stdout
    assert '"Subnet": "10.99.7.0/24"' in cli("network", "inspect", "clinet").stdout
    out = cli("run", "--rm", "--network", "clinet", "busybox", "ip", "-4", "addr", "show", "eth0")
    assert "inet 10.99.7." in out.stdout, out.stderr
    started = cli("run", "-d", "--name", "cliweb", "--network", "clinet", "-p", "127.0.0.1:18081:80", "busybox",
                  "sh", "-c", "mkdir /www && echo clipage > /www/index.html && httpd -f -p 80 -h /www")  # fmt: skip
    assert started.returncode == 0, started.stderr
    fetch = (
        "import socket,time\nfor _ in range(50):\n try:\n  s=socket.create_connection(('127.0.0.1',18081),1);break\n"
        " except OSError: time.sleep(0.1)\ns.sendall(b'GET / HTTP/1.0\\r\\n\\r\\n')\nbody=b''\n"
        "while chunk := s.recv(4096): body += chunk\nprint(body.decode())"
    )  # read to EOF: headers and body may come apart
    assert "clipage" in in_ns(netns, sys.executable, "-c", fetch).stdout
    assert "clinet" not in cli("network", "ls", "--filter", "dangling=true", "--format", "{{.Name}}").stdout.split()
    assert cli("rm", "-f", "cliweb").returncode == 0
    assert cli(
        "network", "ls", "--filter", "type=custom", "--filter", "name=clin", "--format", "{{.Name}} {{.Driver}}"
    ).stdout == ("clinet bridge\n")
    assert cli("network", "ls", "--filter", "type=builtin", "-q").stdout.split() != []
    assert cli("network", "prune", "-f").stdout.split() == ["Deleted", "Networks:", "clinet"]
    assert "clinet" not in cli("network", "ls").stdout


def test_free_host_ports_publish_all_and_ranges(teu: Client, neteng: NamespacedEngine, netns: str) -> None:
    """-p 127.0.0.1::80 and -P with --expose get free host ports, -p 9000-9001:80-81 a range; each
    reaches its httpd, and `teu port` prints what inspect shows."""
    from teu.cli import parse

    serve = "mkdir /www && echo served > /www/index.html && httpd -p 80 -h /www && exec httpd -f -p 81 -h /www"
    free = teu.run_detached(ContainerOptions(image="busybox", cmd=["sh", "-c", serve], ports=parse.ports("127.0.0.1::80"),
                                             publish_all=True, expose=parse.exposed("81")))  # fmt: skip
    ranged = teu.run_detached(
        ContainerOptions(image="busybox", cmd=["sh", "-c", serve], ports=parse.ports("127.0.0.1:9000-9001:80-81"))
    )
    try:
        published = {p.container_port: p for p in teu.inspect(free).network.ports}
        assert set(published) == {80, 81} and all(p.host_port >= 1024 for p in published.values())
        assert published[80].host_ip == "127.0.0.1" and published[81].host_ip == ""
        assert [(p.host_port, p.container_port) for p in teu.inspect(ranged).network.ports] == [(9000, 80), (9001, 81)]
        for host_port in (published[80].host_port, published[81].host_port, 9000, 9001):
            wait_until(lambda hp=host_port: in_ns(netns, sys.executable, "-c",  # type: ignore[misc]
                       f"import socket; socket.create_connection(('127.0.0.1', {hp}), 2)").returncode == 0)  # fmt: skip
            assert fetch(netns, f"http://127.0.0.1:{host_port}/") == "served\n"
        shown = subprocess.run(
            [str(REPO / ".venv" / "bin" / "teu"), "port", free], env=neteng.env(), capture_output=True, text=True
        )
        assert sorted(shown.stdout.splitlines()) == [
            f"80/tcp -> 127.0.0.1:{published[80].host_port}", f"81/tcp -> 0.0.0.0:{published[81].host_port}",
        ]  # fmt: skip
    finally:
        teu.remove(free, force=True)
        teu.remove(ranged, force=True)


def test_dns_flags_and_host_gateway_on_the_bridge(teu: Client) -> None:
    """On the default bridge, --dns replaces the nameservers and host-gateway is the bridge's own address."""
    r = teu.run(ContainerOptions(image="busybox", cmd=["sh", "-c", "cat /etc/resolv.conf /etc/hosts; ip route"], remove=True,
                                 dns=["192.0.2.53"], extra_hosts=["gw:host-gateway"]))  # fmt: skip
    out = r.stdout.decode().splitlines()
    assert [ln for ln in out if ln.startswith("nameserver")] == ["nameserver 192.0.2.53"]
    (gw,) = [ln.split("\t")[0] for ln in out if ln.endswith("\tgw")]
    assert f"default via {gw} dev eth0" in [ln.strip() for ln in out]


UPSTREAM = """
import socket, struct, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 53))
print("up", flush=True)
while True:
    data, addr = s.recvfrom(512)
    qid, flags = struct.unpack("!HH", data[:4])
    end = data.index(b"\\0", 12) + 5
    known = b"\\x08upstream\\x04test\\x00" in data[12:end]
    header = struct.pack("!HHHHHH", qid, 0x8180 if known else 0x8183, 1, 1 if known else 0, 0, 0)
    answer = struct.pack("!HHHIH", 0xC00C, 1, 1, 5, 4) + bytes([192, 0, 2, 99]) if known else b""
    s.sendto(header + data[12:end] + answer, addr)
"""


def test_user_network_dns_answers_aliases_and_relays_to_the_containers_upstream(teu: Client, netns: str) -> None:
    """--network-alias names answer on the network's DNS; a name no container has is relayed to the
    asking container's --dns server (one this test runs on loopback in the engine's namespace)."""
    upstream = subprocess.Popen(["nsenter", f"--net=/run/netns/{netns}", sys.executable, "-c", UPSTREAM],
                                stdout=subprocess.PIPE, text=True)  # fmt: skip
    teu.create_network("aliased")
    db = teu.run_detached(
        ContainerOptions(image="busybox", cmd=["sleep", "300"], network="aliased", network_aliases=["database"])
    )
    try:
        assert upstream.stdout is not None and upstream.stdout.readline().strip() == "up"
        r = teu.run(ContainerOptions(image="busybox", cmd=["sh", "-c", "nslookup database; nslookup upstream.test; cat /etc/resolv.conf"],
                                     network="aliased", dns=["127.0.0.1"], remove=True))  # fmt: skip
        out = r.stdout.decode()
        address = teu.inspect(db).network.address.split("/")[0]
        assert f"Address: {address}" in out and "Address: 192.0.2.99" in out, out
        assert "nameserver 127.0.0.1" not in out  # the responder relays: the container asks it only
        with pytest.raises(InvalidArgument, match="user-defined networks"):
            teu.create(ContainerOptions(image="busybox", network="bridge", network_aliases=["x"]))
        with pytest.raises(InvalidArgument, match="duplicate network alias"):
            teu.create(ContainerOptions(image="busybox", network="aliased", network_aliases=["x", "X"]))
    finally:
        upstream.kill()
        upstream.wait()
        teu.remove(db, force=True)
        teu.remove_network("aliased")


def test_debian_serves_a_bind_mounted_directory_on_a_published_port(teu: Client, netns: str, tmp_path: Path) -> None:
    """A real payload: Debian's python3 serves a host directory bind-mounted read-only, on a port
    published on a free host port; the host reads the file back, and a change made on the host shows."""
    from conftest import debian_tar
    from teu.cli import parse

    with debian_tar().open("rb") as f:
        teu.import_image(f, "debian:12", types_pb2.ImageConfig(cmd=["bash"]))
    (tmp_path / "index.html").write_text("served from the host\n")
    cid = teu.run_detached(ContainerOptions(
        image="debian:12", cmd=["python3", "-m", "http.server", "8000", "--directory", "/srv/www"],
        mounts=[mounts.volume(f"{tmp_path}:/srv/www:ro")], ports=parse.ports("127.0.0.1::8000"),
    ))  # fmt: skip
    try:
        (published,) = teu.inspect(cid).network.ports
        url = f"http://127.0.0.1:{published.host_port}/index.html"
        wait_until(lambda: in_ns(netns, sys.executable, "-c",
                                 f"import socket; socket.create_connection(('127.0.0.1', {published.host_port}), 2)").returncode == 0,
                   timeout=30)  # fmt: skip
        assert fetch(netns, url) == "served from the host\n"
        (tmp_path / "index.html").write_text("changed on the host\n")
        assert fetch(netns, url) == "changed on the host\n"
    finally:
        teu.remove(cid, force=True)


def test_network_create_options_gateway_ip_range_internal_labels(teu: Client, netns: str, backend: str) -> None:
    """--gateway is the bridge's address, --ip-range where addresses come from, --internal drops the
    masquerade, --label shows and filters; a gateway outside the subnet is refused and nothing is made."""
    teu.create_network("opts", subnet="10.96.5.0/24", gateway="10.96.5.254", ip_range="10.96.5.128/25", internal=True,
                       labels={"tier": "backend"})  # fmt: skip
    try:
        n = teu.inspect_network("opts")
        assert (n.gateway, n.ip_range, n.internal, dict(n.labels)) == ("10.96.5.254", "10.96.5.128/25", True, {"tier": "backend"})
        r = teu.run(
            ContainerOptions(image="busybox", cmd=["sh", "-c", "ip -4 addr show eth0; ip route"], network="opts", remove=True)
        )
        out = r.stdout.decode()
        assert "inet 10.96.5.128/24" in out and "default via 10.96.5.254" in out, out
        assert [x.name for x in teu.list_networks(["label=tier=backend"])] == ["opts"]
        rules = in_ns(netns, "nft", "list", "ruleset").stdout if backend == "nftables" else in_ns(netns, "iptables-save").stdout
        assert "10.96.5.0/24" not in "\n".join(line for line in rules.splitlines() if "asquerade" in line.lower())
        with pytest.raises(InvalidArgument, match="not a host address"):
            teu.create_network("badgw", subnet="10.96.6.0/24", gateway="10.96.7.1")
        with pytest.raises(InvalidArgument, match="not inside"):
            teu.create_network("badrange", subnet="10.96.6.0/24", ip_range="10.96.7.0/25")
        assert {x.name for x in teu.list_networks()} >= {"opts"} and not {"badgw", "badrange"} & {
            x.name for x in teu.list_networks()
        }
    finally:
        teu.remove_network("opts")


def test_network_connect_and_disconnect_a_running_container(teu: Client, neteng: NamespacedEngine) -> None:
    """connect gives a running container eth1 on another network, where others reach it by name and
    alias, and inspect shows both networks; disconnect takes it away; the refusals are Docker's."""
    teu.create_network("left")
    teu.create_network("right")
    web = teu.run_detached(ContainerOptions(image="busybox", cmd=["sleep", "300"], network="left", name="multi"))
    hosted = teu.create(ContainerOptions(image="busybox", cmd=["true"], network="host")).id
    try:
        att = teu.connect_network("right", "multi", aliases=["api"])
        assert att.network == "right" and att.address
        ip = att.address.split("/")[0]
        shown = subprocess.run([str(REPO / ".venv" / "bin" / "teu"), "inspect", "-f", "{{json .NetworkSettings.Networks}}", "multi"],
                               env=neteng.env(), capture_output=True, text=True)  # fmt: skip
        networks = json.loads(shown.stdout)
        assert set(networks) == {"left", "right"} and networks["right"]["Aliases"] == ["api"]
        r = teu.run(ContainerOptions(image="busybox", cmd=["sh", "-c", "ping -c1 -W2 multi && ping -c1 -W2 api"], network="right",
                                     remove=True))  # fmt: skip
        assert r.exit_code == 0 and ip in r.stdout.decode(), r.stdout
        inside = teu.run(
            ContainerOptions(image="busybox", cmd=["ip", "-4", "-o", "addr"], network="container:multi", remove=True)
        )
        assert any(ln.split()[1:4] == ["eth1", "inet", att.address] for ln in inside.stdout.decode().splitlines()), inside.stdout
        with pytest.raises(FailedPrecondition, match="already"):
            teu.connect_network("right", "multi")
        with pytest.raises(FailedPrecondition, match="only a container on a bridge network"):
            teu.connect_network("right", hosted)
        with pytest.raises(InvalidArgument, match="bridge networks"):
            teu.connect_network("none", "multi")
        with pytest.raises(FailedPrecondition, match="started on"):
            teu.disconnect_network("left", "multi")
        teu.disconnect_network("right", "multi")
        assert "eth1" not in teu.run(ContainerOptions(image="busybox", cmd=["ip", "-o", "link"], network="container:multi",
                                                      remove=True)).stdout.decode()  # fmt: skip
        with pytest.raises(NotFound):
            teu.disconnect_network("right", "multi")
        teu.disconnect_network("right", "multi", force=True)
    finally:
        teu.remove(web, force=True)
        teu.remove(hosted, force=True)
        teu.remove_network("left")
        teu.remove_network("right")


def _eth1(teu: Client, cid: str) -> str:
    """The container's address on eth1, empty without one."""
    out = teu.exec_run(cid, ["sh", "-c", "ip -4 -o addr show eth1 2>/dev/null || true"]).stdout.decode()
    return out.split()[3] if out.strip() else ""


def test_a_container_connected_before_its_start_joins_the_network_at_each_start(teu: Client, neteng: NamespacedEngine) -> None:
    """Docker keeps a container's endpoints: connected while created, it has eth1 on that network from
    its start and again after a restart, where others reach it by its alias; the network is in use
    meanwhile; disconnected while stopped, it no longer joins it."""
    teu.create_network("front", subnet="10.96.8.0/24")
    teu.create_network("back", subnet="10.96.9.0/24")
    cid = teu.create(ContainerOptions(image="busybox", cmd=["sleep", "300"], network="front", name="twonets")).id
    try:
        att = teu.connect_network("back", cid, aliases=["db"])
        assert att.network == "back" and not att.address  # an address comes with the start
        assert [(c.network, list(c.aliases)) for c in teu.inspect(cid).connected] == [("back", ["db"])]
        with pytest.raises(FailedPrecondition, match="in use"):
            teu.remove_network("back")
        with pytest.raises(FailedPrecondition, match="already"):
            teu.connect_network("back", cid)
        teu.start(cid)
        assert _eth1(teu, cid).startswith("10.96.9.")
        r = teu.run(ContainerOptions(image="busybox", cmd=["ping", "-c1", "-W2", "db"], network="back", remove=True))
        assert r.exit_code == 0, r.stdout
        teu.restart(cid, timeout=0)
        assert _eth1(teu, cid).startswith("10.96.9.")
        teu.stop(cid, timeout=0)
        teu.disconnect_network("back", cid)
        assert not teu.inspect(cid).connected
        with pytest.raises(NotFound, match="not connected"):
            teu.disconnect_network("back", cid)
        with pytest.raises(FailedPrecondition, match="created on"):
            teu.disconnect_network("front", cid)
        teu.start(cid)
        assert _eth1(teu, cid) == ""
    finally:
        teu.remove(cid, force=True)
        teu.remove_network("front")
        teu.remove_network("back")
