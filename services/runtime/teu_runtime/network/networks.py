"""Container networking: the networks, and plugging containers into them.

    none    a namespace with only lo (what the OCI spec gives a container by default)
    host    no namespace of its own: the engine's
    bridge  the default bridge network (``teu0``); user-defined networks are bridges too, with
            name resolution (a DNS responder on their gateway address) and isolation from each other

A start goes ``prepare`` (address and ports recorded, files written; nothing exists yet, so a
refusal leaves nothing behind) → ``attach`` (once the container's namespace exists: bridge, veth,
rules) → ``release`` at exit or delete. What exists is always derivable from the database, so
``reconcile`` after a crash removes what no running container accounts for.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from pathlib import Path

import structlog

from teu_api.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound, TeuError
from teu_api.runtime.v1 import runtime_pb2
from teu_api.types.v1 import types_pb2
from teu_common import perms
from teu_runtime import events, spec
from teu_runtime.bundle import Bundle
from teu_runtime.database import Container, Store
from teu_runtime.network import addressing, firewall, links, netconf, ports
from teu_runtime.network.dns import Responder
from teu_runtime.network.records import Attachment, Connection, Records

log = structlog.get_logger()
NONE, HOST, BRIDGE = "none", "host", "bridge"
CONTAINER = "container:"  # another container's network namespace, joined (see sharing.py)
# A veth dies with its container's namespace, but the kernel destroys namespaces in a deferred
# work item, and deleting the veth ourselves costs ~15 ms of RTNL time on the exit path; so an exited
# container's veth is checked for (and removed) only after this grace period, in the background.
VETH_GRACE = 2.0
DEFAULT_NAME = BRIDGE


def owner_of(root: Path) -> str:
    """The alias that marks the links of the engine whose state is under ``root``."""
    return "teu:" + hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Plan:
    """What a starting container was given by ``prepare``."""

    network: str  # as the user sees it: none, host, bridge or a user network's name
    record: types_pb2.Network | None = None
    attachment: Attachment | None = None
    ports: list[types_pb2.PortMapping] = field(default_factory=list)

    @property
    def kind(self) -> str:
        """none, host or bridge (user networks are bridges)."""
        return BRIDGE if self.record is not None else self.network


class Networks:
    """The networks of this engine and the containers' places on them."""

    def __init__(self, store: Store, owner: str, default: str = NONE, subnet: str = addressing.DEFAULT_SUBNET,
                 firewall_backend: str | None = None, upstreams: Sequence[tuple[str, int]] = ()) -> None:  # fmt: skip
        self.store = store
        self.upstreams = list(upstreams)  # the engine's DNS servers, where user networks' responders relay
        self.owner = owner  # alias of every link this engine makes: its audits touch no one else's
        self.records = Records(store)
        self.default = default or NONE
        self._subnet = subnet or addressing.DEFAULT_SUBNET
        self._backend = firewall_backend
        self._firewall: firewall.Firewall | None = None
        self._lock = asyncio.Lock()  # bridges, responders and rule renders: one at a time
        self._dns: dict[str, Responder] = {}
        self._reapers: set[asyncio.Task[None]] = set()
        self._ready: set[str] = set()  # bridges set up by this process (skips ~1 ms of netlink per start)

    # -- set-up -----------------------------------------------------------------------------------

    async def setup(self) -> None:
        """Records the default network, on a subnet that no route of this namespace uses. Nothing
        is created in the namespace: its bridge appears with its first container."""
        current = self.records.find_network(DEFAULT_NAME)
        if current is not None and self.records.members(current.id):
            return  # in use: it stays where its containers are
        try:
            wanted = addressing.parse_subnet(self._subnet)
        except InvalidArgument as exc:
            log.error("bridge_subnet_invalid", subnet=self._subnet, error=exc.message, using=addressing.DEFAULT_SUBNET)
            wanted = IPv4Network(addressing.DEFAULT_SUBNET)
        taken = await self._taken(exclude=DEFAULT_NAME)
        chosen = addressing.free_subnet(wanted, taken)
        if chosen is None:
            log.error("no_free_bridge_subnet", wanted=str(wanted))
            return
        if chosen != wanted:
            log.warning("bridge_subnet_overlaps", wanted=str(wanted), overlaps=str(addressing.first_overlap(wanted, taken)),
                        using=str(chosen))  # fmt: skip
        if current is None:
            self.records.insert_network(self._new(DEFAULT_NAME, chosen, default=True))
        elif current.subnet != str(chosen):
            await links.delete_link(current.bridge)  # re-made with the new address on first use
            self.records.set_subnet(current.id, chosen)
        log.info("default_network", default=self.default, bridge_subnet=str(chosen))

    def _new(self, name: str, subnet: IPv4Network, default: bool) -> types_pb2.Network:
        nid = secrets.token_hex(32)
        return types_pb2.Network(
            id=nid, name=name, driver="bridge", subnet=str(subnet), gateway=str(addressing.gateway_of(subnet)),
            bridge=addressing.bridge_name(nid, default), created_at=time.time_ns(), dns=not default,
        )  # fmt: skip

    async def _taken(self, exclude: str = "") -> list[IPv4Network]:
        """Subnets a new network must not overlap: other networks', and routes of this namespace
        that are not through Teu's own bridges."""
        nets = [IPv4Network(n.subnet) for n in self.records.networks() if n.name != exclude]
        routes = [dst for dst, dev in await links.routes() if not dev.startswith(addressing.BRIDGE_PREFIX)]
        return nets + routes

    # -- networks ---------------------------------------------------------------------------------

    async def create(self, name: str, subnet: str, options: runtime_pb2.CreateNetworkRequest | None = None) -> types_pb2.Network:
        """A new user network; InvalidArgument for a bad or overlapping subnet, or a gateway or ip
        range (``options``) outside it."""
        opts = options or runtime_pb2.CreateNetworkRequest()
        if (opts.gateway or opts.ip_range) and not subnet:
            raise InvalidArgument("a gateway or an ip range needs the subnet they belong to (--subnet)")
        addressing.check_network_name(name)
        if name in addressing.RESERVED_NAMES or self.records.find_network(name) is not None:
            raise AlreadyExists(f"network with name {name} already exists")
        taken = await self._taken()
        if subnet:
            net = addressing.parse_subnet(subnet)
            if (other := addressing.first_overlap(net, taken)) is not None:
                raise InvalidArgument(f"subnet {net} overlaps {other}, which is already in use")
        else:
            found = addressing.free_subnet(IPv4Network(addressing.USER_SUBNETS_FROM), taken)
            if found is None:
                raise InvalidArgument("no free subnet left: give one")
            net = found
        record = self._new(name, net, default=False)
        if opts.gateway:
            record.gateway = str(addressing.host_address(net, opts.gateway, "gateway"))
        if opts.ip_range:
            record.ip_range = str(addressing.check_ip_range(net, opts.ip_range))
        record.internal = opts.internal
        record.labels.update(opts.labels)
        self.records.insert_network(record, events.network(record, "create"))
        log.info("network_created", network=name, subnet=str(net), bridge=record.bridge)
        return self.describe(record)

    def get(self, ref: str) -> types_pb2.Network:
        """The network ``ref`` (name or id) with its containers; NotFound otherwise."""
        found = self.records.find_network(ref) if ref else None
        if found is None:
            raise NotFound(f"network {ref} not found")
        return self.describe(found)

    def list(self) -> list[types_pb2.Network]:
        """Every network with its containers."""
        return [self.describe(n) for n in self.records.networks()]

    def describe(self, n: types_pb2.Network) -> types_pb2.Network:
        """``n`` with the containers attached to it now."""
        out = types_pb2.Network()
        out.CopyFrom(n)
        prefix = IPv4Network(n.subnet).prefixlen
        out.containers.update({cid: f"{a}/{prefix}" for cid, a in self.records.members(n.id).items()})
        return out

    async def remove(self, ref: str) -> types_pb2.Network:
        """Removes a user network and its bridge; FailedPrecondition for the default network or
        while any container (running or not) is on it."""
        n = self.get(ref)
        if n.name == DEFAULT_NAME:
            raise FailedPrecondition("the default bridge network cannot be removed")
        users = [
            c.name
            for c in self.store.list()
            if c.spec.network in (n.name, n.id) or any(e.network == n.id for e in c.spec.endpoints)
        ]
        users += [cid[:12] for cid in n.containers if cid not in users]
        if users:
            raise FailedPrecondition(f"network {n.name} is in use by container(s): {', '.join(sorted(set(users)))}")
        async with self._lock:
            if (responder := self._dns.pop(n.id, None)) is not None:
                responder.close()
            await links.delete_link(n.bridge)
            self._ready.discard(n.bridge)
            self.records.delete_network(n.id, events.network(n, "destroy"))
        await self.render()
        log.info("network_removed", network=n.name)
        return n

    # -- containers -------------------------------------------------------------------------------

    def resolve(self, ref: str) -> tuple[str, types_pb2.Network | None]:
        """(name as shown, bridge network record or None for none/host) of a container's network."""
        name = ref or self.default
        if name in (NONE, HOST) or name.startswith(CONTAINER):
            return name, None
        found = self.records.find_network(name)
        if found is None:
            raise NotFound(f"network {name} not found")
        return found.name, found

    def check(self, cspec: runtime_pb2.ContainerSpec) -> None:
        """InvalidArgument/NotFound for a spec whose network or ports cannot work (at create)."""
        name, record = self.resolve(cspec.network)
        ports.normalize(cspec.ports, BRIDGE if record is not None else name)

    async def prepare(self, c: Container) -> Plan:
        """Records the container's attachment (address, ports) after checking that its host ports
        are free. Nothing is created yet: a refusal leaves nothing behind."""
        name, record = self.resolve(c.spec.network)
        mappings = ports.normalize(c.spec.ports, BRIDGE if record is not None else name)
        for m in mappings:
            ports.check_host_free(m)
        att = self.records.allocate(c.id, record if record is not None else name, addressing.veth_name(c.id), mappings)
        return Plan(name, record, att, mappings)

    def write_files(self, plan: Plan, c: Container, bundle: Bundle) -> dict[str, str]:
        """Writes the container's hosts (and resolv.conf) for ``plan``; returns the bind mounts
        (container path → bundle file) to add to its spec."""
        binds = {"/etc/hostname": str(bundle.hostname), "/etc/hosts": str(bundle.hosts)}
        hostname = spec.hostname_of(c.id, c.spec)
        extra = [(name, self._host_gateway(plan) if ip == "host-gateway" else ip)
                 for name, _, ip in (e.partition(":") for e in c.spec.extra_hosts)]  # fmt: skip
        s = c.spec
        if plan.kind == NONE:
            perms.public_file(bundle.hosts, netconf.hosts(hostname, None, extra=extra))  # loopback only
            if not (s.dns or s.dns_search or s.dns_options):
                return binds
            resolv = netconf.resolv_from_host(netconf.read_host_file())
        elif plan.kind == HOST:
            host_hosts = netconf.read_host_file(Path("/etc/hosts")) or netconf.hosts(hostname, None)
            perms.public_file(bundle.hosts, host_hosts + "".join(f"{ip}\t{name}\n" for name, ip in extra))
            resolv = netconf.read_host_file()
        else:
            assert plan.record is not None and plan.attachment is not None and plan.attachment.address is not None
            perms.public_file(bundle.hosts, netconf.hosts(hostname, plan.attachment.address.ip, c.name, extra))
            gateway = IPv4Address(plan.record.gateway)
            if plan.record.dns:  # the network's responder only: it relays to the --dns servers
                resolv = netconf.resolv_for_dns(gateway)
            else:
                resolv = netconf.with_overrides(netconf.resolv_from_host(netconf.read_host_file()), s.dns, (), ())
        perms.public_file(bundle.resolv_conf, netconf.with_overrides(
            resolv, s.dns if plan.kind != BRIDGE else (), s.dns_search, s.dns_options))  # fmt: skip
        binds["/etc/resolv.conf"] = str(bundle.resolv_conf)
        return binds

    def _upstreams(self, nid: str, client: str) -> Sequence[tuple[str, int]]:
        """Where the responder of network ``nid`` relays a query of the container at ``client``: its
        --dns servers, else the engine's."""
        own = self.records.nameservers_of(nid, client)
        return [(ns, 53) for ns in own] if own else self.upstreams

    def _host_gateway(self, plan: Plan) -> str:
        """What --add-host NAME:host-gateway means: the address of the container's bridge, else the
        default bridge's (as Docker's docker0 address)."""
        record = plan.record or self.records.find_network(DEFAULT_NAME)
        if record is not None:
            return record.gateway
        return str(addressing.gateway_of(IPv4Network(self._subnet)))

    async def attach(self, cid: str, pid: int, plan: Plan) -> None:
        """Plugs the created container (init ``pid``, not yet started) into its bridge network:
        bridge (and responder) if missing, veth pair, address, route; then the rules."""
        if plan.kind != BRIDGE:
            return
        record, att = plan.record, plan.attachment
        assert record is not None and att is not None and att.address is not None
        created = await self._ensure_bridge(record)
        plug = links.Plug(pid, record.bridge, att.host_interface, att.address, IPv4Address(record.gateway), att.mac, self.owner)
        try:
            await links.plug(plug)
        except links.NoBridge:  # deleted behind our back: make it again, once
            self._ready.discard(record.bridge)
            created = await self._ensure_bridge(record)
            await links.plug(plug)
        if plan.ports or created:
            try:
                await self.render()
            except TeuError as exc:
                if plan.ports:
                    raise
                # without NAT the container still reaches its network and this namespace
                log.warning("firewall_unavailable", error=exc.message)
        log.info("container_attached", container=cid[:12], network=record.name, address=str(att.address), ports=len(plan.ports))

    async def _ensure_bridge(self, record: types_pb2.Network) -> bool:
        if record.bridge in self._ready and (not record.dns or record.id in self._dns):
            return False
        async with self._lock:
            gateway = IPv4Interface(f"{record.gateway}/{IPv4Network(record.subnet).prefixlen}")
            created = await links.ensure_bridge(record.bridge, gateway, addressing.mac_for(gateway.ip), self.owner)
            self._ready.add(record.bridge)
            if record.dns and record.id not in self._dns:
                nid = record.id
                try:
                    self._dns[nid] = await Responder.start(
                        record.gateway, lambda name: self.records.lookup(nid, name), lambda client: self._upstreams(nid, client)
                    )
                except OSError as exc:  # no name resolution is better than no network; retried on the next start
                    log.error("dns_unavailable", network=record.name, address=record.gateway, error=str(exc))
        if created:
            log.info("bridge_created", bridge=record.bridge, network=record.name, subnet=record.subnet)
        return created

    async def release(self, cid: str, wait: bool = False) -> None:
        """Forgets the container's address and ports, removes its rules, and sees its veth gone
        (after :data:`VETH_GRACE`, in the background, unless ``wait``). Idempotent."""
        att, held, extra = self.records.release(cid)
        if held:
            await self.render()
        for conn in extra:  # gone with the container's namespace, if it is gone: else now
            await links.delete_link(conn.host_interface)
        if att is None:
            return
        log.info("container_detached", container=cid[:12], network=att.network, ports=len(held))
        if att.host_interface and wait:
            await links.delete_link(att.host_interface)
        elif att.host_interface:
            task = asyncio.create_task(self._reap(cid, att.host_interface))
            self._reapers.add(task)
            task.add_done_callback(self._reapers.discard)

    async def _reap(self, cid: str, veth: str) -> None:
        await asyncio.sleep(VETH_GRACE)
        if self.records.attachment(cid) is not None:
            return  # started again meanwhile: the name belongs to its new veth
        try:
            if await links.delete_link(veth):
                log.info("veth_removed", interface=veth, container=cid[:12])
        except Exception:
            log.exception("veth_remove_failed", interface=veth)

    # -- network connect / disconnect -----------------------------------------------------------

    def endpoint(self, c: Container, ref: str, ip: str, aliases: Sequence[str]) -> runtime_pb2.NetworkEndpoint:
        """Checks that container ``c`` (in any state) may be connected to one more network ``ref``: a
        bridge network it is not on yet, from a network namespace of its own on a bridge network (a
        container on none or host, or sharing another's namespace, joins no other network, as in
        Docker). The endpoint to keep in its spec."""
        own_name, own = self.resolve(c.spec.network)
        if own is None:
            raise FailedPrecondition(
                f"container {c.name} is on network {own_name}: only a container on a bridge network joins more networks"
            )
        name, record = self.resolve(ref)
        if record is None:
            raise InvalidArgument(f"a container can be connected only to bridge networks, not to {name}")
        if record.id == own.id or any(e.network == record.id for e in c.spec.endpoints):
            raise FailedPrecondition(f"container {c.name} is already on network {record.name}")
        if ip:
            addressing.host_address(IPv4Network(record.subnet), ip, f"address for network {record.name}")
        return runtime_pb2.NetworkEndpoint(network=record.id, ip=ip, aliases=aliases)

    async def connect(self, c: Container, pid: int, endpoint: runtime_pb2.NetworkEndpoint) -> types_pb2.NetworkAttachment:
        """Plugs container ``c``, whose namespaces ``pid`` holds, into one more user network: an
        address (the endpoint's or the first free one), a veth whose end is its next ethN (no default
        route: the network it was started on keeps that), its name and aliases on that network's DNS."""
        record = self.records.find_network(endpoint.network)
        if record is None:
            raise NotFound(f"network {endpoint.network[:12]} not found: disconnect container {c.name} from it")
        host_if = addressing.veth_name(hashlib.sha256(f"{c.id}/{record.id}".encode()).hexdigest())
        conn = self.records.connect(c.id, record, host_if, endpoint.ip, endpoint.aliases)
        try:
            created = await self._ensure_bridge(record)
            plug = links.Plug(pid, record.bridge, host_if, conn.address, IPv4Address(record.gateway), conn.mac, self.owner,
                              ifname=conn.ifname, default_route=False)  # fmt: skip
            await links.plug(plug)
            if created:
                await self.render()
        except BaseException:
            self.records.disconnect(c.id, record.id)
            await links.delete_link(host_if)
            raise
        self.store.record(events.network(record, "connect", container=c.id))
        log.info("container_connected", container=c.id[:12], network=record.name, address=str(conn.address), ifname=conn.ifname)
        return self._connection_view(conn, record)

    async def disconnect(self, c: Container, ref: str, force: bool) -> None:
        """Unplugs ``c`` from a network it was connected to (its veth goes, and its name there)."""
        name, record = self.resolve(ref)
        current = self.records.attachment(c.id)
        if record is not None and current is not None and current.network == record.id:
            raise FailedPrecondition(
                f"container {c.name} was started on network {record.name}: it cannot be disconnected from it"
            )
        conn = self.records.disconnect(c.id, record.id) if record is not None else None
        if conn is None:
            if force:
                return
            raise NotFound(f"container {c.name} is not connected to network {name}")
        await links.delete_link(conn.host_interface)
        if record is not None:
            self.store.record(events.network(record, "disconnect", container=c.id))
        log.info("container_disconnected", container=c.id[:12], network=name)

    def endpoints(self, c: Container) -> Sequence[types_pb2.NetworkAttachment]:
        """The more networks container ``c`` joins at its starts, by name and aliases (no address
        while it does not run)."""
        return [
            types_pb2.NetworkAttachment(network=record.name, aliases=e.aliases)
            for e in c.spec.endpoints
            if (record := self.records.find_network(e.network)) is not None
        ]

    def connected(self, c: Container) -> Sequence[types_pb2.NetworkAttachment]:
        """The networks running container ``c`` was connected to, as the API shows them."""
        out = []
        for conn in self.records.connections(c.id):
            record = self.records.find_network(conn.network)
            if record is not None:
                out.append(self._connection_view(conn, record))
        return out

    @staticmethod
    def _connection_view(conn: Connection, record: types_pb2.Network) -> types_pb2.NetworkAttachment:
        return types_pb2.NetworkAttachment(network=record.name, address=str(conn.address), gateway=record.gateway, mac=conn.mac,
                                           host_interface=conn.host_interface, aliases=conn.aliases)  # fmt: skip

    def attachment(self, c: Container) -> types_pb2.NetworkAttachment | None:
        """The running container's attachment as the API shows it."""
        att = self.records.attachment(c.id)
        if att is None:
            return None
        if att.network in (NONE, HOST):
            return types_pb2.NetworkAttachment(network=att.network)
        n = self.records.find_network(att.network)
        return types_pb2.NetworkAttachment(
            network=n.name if n else att.network, address=str(att.address or ""), gateway=n.gateway if n else "",
            mac=att.mac, ports=self.records.ports(c.id), host_interface=att.host_interface, aliases=c.spec.network_aliases,
        )  # fmt: skip

    # -- rules ------------------------------------------------------------------------------------

    async def render(self) -> None:
        """Installs the rules the database calls for (bridges that exist, ports of attached containers)."""
        async with self._lock:
            present = set(await links.link_names(addressing.BRIDGE_PREFIX, self.owner))
            bridges = tuple(
                firewall.Bridge(n.bridge, n.subnet, n.internal) for n in self.records.networks() if n.bridge in present
            )
            forwards = tuple(
                firewall.Forward(m.host_ip, m.host_port, m.protocol, str(addr), m.container_port)
                for m, addr in self.records.forwards()
            )
            rs = firewall.Ruleset(bridges, forwards)
            if rs.empty and self._firewall is None and not present:
                return  # nothing of Teu's here, nothing to probe: leave this namespace untouched
            if self._firewall is None:
                self._firewall = await firewall.probe(self._backend)
                log.info("firewall_backend", backend=self._firewall.name)
            await self._firewall.apply(rs)

    # -- restart of this service ------------------------------------------------------------------

    async def reconcile(self, running: set[str]) -> None:
        """Leak audit after a (re)start: releases what stopped containers held, deletes veths and
        bridges nothing accounts for, restarts the responders and re-renders the rules."""
        for cid in self.records.holders() - running:
            await self.release(cid, wait=True)
        expected = {a.host_interface for a in self.records.attachments() if a.host_interface}
        expected |= {k.host_interface for k in self.records.connections()}
        for veth in set(await links.link_names(addressing.VETH_PREFIX, self.owner)) - expected:
            log.warning("stray_veth_removed", interface=veth)
            await links.delete_link(veth)
        known = {n.bridge: n for n in self.records.networks()}
        bridges = await links.link_names(addressing.BRIDGE_PREFIX, self.owner)
        for name in bridges:
            if name not in known:
                log.warning("stray_bridge_removed", bridge=name)
                await links.delete_link(name)
            elif known[name].dns:
                await self._ensure_bridge(known[name])
        if bridges:
            await self.render()

    async def close(self) -> None:
        """Stops the responders and reapers (bridges and rules stay for the running containers;
        a veth left by a reaper cancelled here is found by the next reconcile)."""
        for task in list(self._reapers):
            task.cancel()
        for responder in self._dns.values():
            responder.close()
        self._dns.clear()
