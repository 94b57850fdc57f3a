"""Network rows of the runtime database: networks, attachments (the IPAM) and published ports.

Every allocation is one transaction: the addresses and ports in use are read and the new ones
written under SQLite's write lock, so two containers starting at once never get the same address
or host port.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Interface, IPv4Network

from teu_api.errors import AlreadyExists, FailedPrecondition, InvalidArgument, Unavailable
from teu_api.runtime.v1 import runtime_pb2
from teu_api.types.v1 import types_pb2
from teu_common.journal import Event
from teu_runtime.database import Store
from teu_runtime.network import addressing, ports

Network = types_pb2.Network
_NET_FIELDS = "id, name, subnet, gateway, bridge, dns, created_at, extra"


@dataclass(frozen=True)
class Connection:
    """One more network a running container was connected to (network connect)."""

    container_id: str
    network: str  # a network id
    address: IPv4Interface
    mac: str
    host_interface: str
    ifname: str  # eth1, eth2... in the container
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True)
class Attachment:
    """Where one container is plugged in."""

    container_id: str
    network: str  # a network id, or "none" / "host"
    address: IPv4Interface | None = None
    mac: str = ""
    host_interface: str = ""


def _network(row: tuple[object, ...]) -> types_pb2.Network:
    nid, name, subnet, gateway, bridge, dns, created, extra = row
    more = json.loads(str(extra or "{}"))
    return Network(id=str(nid), name=str(name), driver="bridge", subnet=str(subnet), gateway=str(gateway),
                   bridge=str(bridge), dns=bool(dns), created_at=int(str(created)), internal=bool(more.get("internal")),
                   ip_range=str(more.get("ip_range", "")), labels=dict(more.get("labels", {})))  # fmt: skip


def _used(db: sqlite3.Connection, network: types_pb2.Network) -> list[IPv4Address]:
    """Addresses of ``network`` taken: by containers started on it, connected to it, and its gateway."""
    rows = db.execute(
        "SELECT address FROM attachments WHERE network = ? AND address IS NOT NULL "
        "UNION SELECT address FROM connections WHERE network = ?",
        (network.id, network.id),
    )
    return [IPv4Address(a) for (a,) in rows] + [IPv4Address(network.gateway)]


def _extra(n: types_pb2.Network) -> str:
    """The options kept in the ``extra`` column."""
    return json.dumps({"internal": n.internal, "ip_range": n.ip_range, "labels": dict(n.labels)})


class Records:
    """The network tables of a :class:`Store`."""

    def __init__(self, store: Store) -> None:
        self.store = store

    # -- networks ---------------------------------------------------------------------------------

    def insert_network(self, n: types_pb2.Network, *events: Event) -> None:
        """Adds a network; AlreadyExists if its name is taken."""
        try:
            with self.store.tx(events) as db:
                db.execute(f"INSERT INTO networks ({_NET_FIELDS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                           (n.id, n.name, n.subnet, n.gateway, n.bridge, int(n.dns), n.created_at, _extra(n)))  # fmt: skip
        except sqlite3.IntegrityError as exc:
            raise AlreadyExists(f"network with name {n.name} already exists") from exc

    def set_subnet(self, nid: str, subnet: IPv4Network) -> None:
        """Moves an unused network to another subnet."""
        with self.store.tx() as db:
            gateway = str(addressing.gateway_of(subnet))
            db.execute("UPDATE networks SET subnet = ?, gateway = ? WHERE id = ?", (str(subnet), gateway, nid))

    def delete_network(self, nid: str, *events: Event) -> None:
        """Forgets a network."""
        with self.store.tx(events) as db:
            db.execute("DELETE FROM networks WHERE id = ?", (nid,))

    def networks(self) -> list[types_pb2.Network]:
        """Every network, by name."""
        return [_network(r) for r in self.store.query(f"SELECT {_NET_FIELDS} FROM networks ORDER BY name")]

    def find_network(self, ref: str) -> types_pb2.Network | None:
        """The network named ``ref``, with id ``ref``, or whose id starts with ``ref`` (if unique)."""
        rows = self.store.query(f"SELECT {_NET_FIELDS} FROM networks WHERE name = ? OR id = ?", (ref, ref))
        if not rows and len(ref) >= 3 and all(ch in "0123456789abcdef" for ch in ref):
            rows = self.store.query(f"SELECT {_NET_FIELDS} FROM networks WHERE id >= ? AND id < ?", (ref, ref + "g"))
            if len(rows) > 1:
                raise InvalidArgument(f"multiple networks match the id prefix {ref!r}")
        return _network(rows[0]) if rows else None

    # -- attachments ------------------------------------------------------------------------------

    def allocate(self, cid: str, network: types_pb2.Network | str, host_if: str,
                 mappings: Sequence[types_pb2.PortMapping]) -> Attachment:  # fmt: skip
        """Records ``cid``'s attachment in one transaction: a free address of ``network`` (a bridge
        network; "none"/"host" get none) and its host ports (a free one for each host port of 0, set
        in ``mappings`` itself).
        InvalidArgument names a host port that another container holds; Unavailable if the subnet
        is full. Earlier rows of ``cid`` go."""
        wanted = list(mappings)
        with self.store.tx() as db:
            db.execute("DELETE FROM attachments WHERE container_id = ?", (cid,))
            db.execute("DELETE FROM ports WHERE container_id = ?", (cid,))
            held = [(str(h), int(p), str(pr)) for h, p, pr in db.execute("SELECT host_ip, host_port, protocol FROM ports")]
            for m in wanted:
                if any(ports.conflicts((m.host_ip, m.host_port, m.protocol), other) for other in held) and m.host_port:
                    what = f"port {m.host_port}/{m.protocol}"
                    raise InvalidArgument(f"{what} is already in use by another container ({ports.describe(m)})")
            for m in wanted:  # the free ports asked for, once the fixed ones are known to be free
                if not m.host_port:
                    m.host_port = ports.free_port(m, [*held, *((w.host_ip, w.host_port, w.protocol) for w in wanted)])
            if isinstance(network, str):
                att = Attachment(cid, network)
            else:
                subnet = IPv4Network(network.subnet)
                used = _used(db, network)
                within = IPv4Network(network.ip_range) if network.ip_range else None
                address = addressing.first_free_address(subnet, used, within)
                if address is None:
                    raise Unavailable(f"no free address left in network {network.name} ({network.subnet})")
                att = Attachment(cid, network.id, address, addressing.mac_for(address.ip), host_if)
            db.execute(
                "INSERT INTO attachments (container_id, network, address, mac, host_interface) VALUES (?, ?, ?, ?, ?)",
                (cid, att.network, str(att.address.ip) if att.address else None, att.mac, att.host_interface),
            )
            db.executemany(
                "INSERT INTO ports (host_ip, host_port, protocol, container_port, container_id) VALUES (?, ?, ?, ?, ?)",
                [(m.host_ip, m.host_port, m.protocol, m.container_port, cid) for m in wanted],
            )
        return att

    def release(self, cid: str) -> tuple[Attachment | None, list[types_pb2.PortMapping], list[Connection]]:
        """Forgets ``cid``'s attachment, ports and connections (one transaction); returns what they were."""
        att = self.attachment(cid)
        held = self.ports(cid)
        extra = self.connections(cid)
        with self.store.tx() as db:
            db.execute("DELETE FROM attachments WHERE container_id = ?", (cid,))
            db.execute("DELETE FROM ports WHERE container_id = ?", (cid,))
            db.execute("DELETE FROM connections WHERE container_id = ?", (cid,))
        return att, held, extra

    # -- connections (network connect) -----------------------------------------------------------

    def connect(self, cid: str, network: types_pb2.Network, host_if: str, ip: str, aliases: Sequence[str]) -> Connection:
        """Records ``cid``'s connection to ``network``: the address asked for (InvalidArgument if it is
        not in the subnet, FailedPrecondition if taken) or the first free one, the next free ethN."""
        subnet = IPv4Network(network.subnet)
        with self.store.tx() as db:
            taken = _used(db, network)
            if ip:
                addr = addressing.host_address(subnet, ip, f"address for network {network.name}")
                if addr in taken:
                    raise FailedPrecondition(f"address {addr} is already in use in network {network.name}")
                address = IPv4Interface(f"{addr}/{subnet.prefixlen}")
            else:
                within = IPv4Network(network.ip_range) if network.ip_range else None
                found = addressing.first_free_address(subnet, taken, within)
                if found is None:
                    raise Unavailable(f"no free address left in network {network.name} ({network.subnet})")
                address = found
            names = {str(n) for (n,) in db.execute("SELECT ifname FROM connections WHERE container_id = ?", (cid,))}
            ifname = next(f"eth{i}" for i in range(1, 1000) if f"eth{i}" not in names)
            conn = Connection(cid, network.id, address, addressing.mac_for(address.ip), host_if, ifname, tuple(aliases))
            try:
                db.execute(
                    "INSERT INTO connections (container_id, network, address, mac, host_interface, ifname, aliases) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (cid, network.id, str(address.ip), conn.mac, host_if, ifname, ",".join(aliases)),
                )
            except sqlite3.IntegrityError as exc:
                raise FailedPrecondition(f"the container is already connected to network {network.name}") from exc
        return conn

    def disconnect(self, cid: str, nid: str) -> Connection | None:
        """Forgets ``cid``'s connection to network ``nid``; what it was, or None."""
        found = [c for c in self.connections(cid) if c.network == nid]
        with self.store.tx() as db:
            db.execute("DELETE FROM connections WHERE container_id = ? AND network = ?", (cid, nid))
        return found[0] if found else None

    def connections(self, cid: str | None = None) -> list[Connection]:
        """``cid``'s connections (everyone's if None)."""
        sql = ("SELECT c.container_id, c.network, c.address, c.mac, c.host_interface, c.ifname, c.aliases, n.subnet "
               "FROM connections c JOIN networks n ON n.id = c.network")  # fmt: skip
        rows = self.store.query(sql + " WHERE c.container_id = ?", (cid,)) if cid else self.store.query(sql)
        out = []
        for c, n, a, m, h, i, al, sub in rows:
            address = IPv4Interface(f"{a}/{IPv4Network(sub).prefixlen}")
            out.append(Connection(str(c), str(n), address, str(m), str(h), str(i), tuple(x for x in str(al).split(",") if x)))
        return out

    def attachment(self, cid: str) -> Attachment | None:
        """``cid``'s attachment, if it has one."""
        found = self._attachments("WHERE a.container_id = ?", (cid,))
        return found[0] if found else None

    def attachments(self) -> list[Attachment]:
        """Every attachment."""
        return self._attachments("", ())

    def _attachments(self, where: str, args: tuple[object, ...]) -> list[Attachment]:
        rows = self.store.query(
            "SELECT a.container_id, a.network, a.address, a.mac, a.host_interface, n.subnet "
            f"FROM attachments a LEFT JOIN networks n ON n.id = a.network {where}",
            args,
        )
        out = []
        for cid, network, address, mac, host_if, subnet in rows:
            iface = IPv4Interface(f"{address}/{IPv4Network(subnet).prefixlen}") if address and subnet else None
            out.append(Attachment(str(cid), str(network), iface, str(mac), str(host_if)))
        return out

    def holders(self) -> set[str]:
        """Ids of the containers that hold an attachment, a connection or a port."""
        rows = self.store.query(
            "SELECT container_id FROM attachments UNION SELECT container_id FROM ports UNION SELECT container_id FROM connections"
        )
        return {str(r[0]) for r in rows}

    def ports(self, cid: str | None = None) -> list[types_pb2.PortMapping]:
        """Published ports of ``cid`` (of everyone if None)."""
        sql = "SELECT host_ip, host_port, container_port, protocol FROM ports"
        rows = self.store.query(sql + " WHERE container_id = ? ORDER BY host_port", (cid,)) if cid else self.store.query(sql)
        return [types_pb2.PortMapping(host_ip=h, host_port=hp, container_port=cp, protocol=pr) for h, hp, cp, pr in rows]

    def forwards(self) -> list[tuple[types_pb2.PortMapping, IPv4Address]]:
        """Every published port with the address of its container."""
        rows = self.store.query(
            "SELECT p.host_ip, p.host_port, p.container_port, p.protocol, a.address FROM ports p "
            "JOIN attachments a ON a.container_id = p.container_id WHERE a.address IS NOT NULL ORDER BY p.host_port"
        )
        return [(types_pb2.PortMapping(host_ip=h, host_port=hp, container_port=cp, protocol=pr), IPv4Address(a))
                for h, hp, cp, pr, a in rows]  # fmt: skip

    def members(self, nid: str) -> dict[str, str]:
        """Containers on network ``nid`` (started on it or connected to it): id → address."""
        rows = self.store.query(
            "SELECT container_id, address FROM attachments WHERE network = ? "
            "UNION SELECT container_id, address FROM connections WHERE network = ?",
            (nid, nid),
        )
        return {str(c): str(a) for c, a in rows}

    def lookup(self, nid: str, name: str) -> IPv4Address | None:
        """The address on network ``nid`` of the container named ``name`` (or with that short id, or
        that network alias)."""
        want = name.lower().rstrip(".")
        rows = self.store.query(
            "SELECT a.address, c.name, c.id, c.spec, '' FROM attachments a JOIN containers c ON c.id = a.container_id "
            "WHERE a.network = ? AND a.address IS NOT NULL "
            "UNION ALL SELECT k.address, c.name, c.id, NULL, k.aliases FROM connections k "
            "JOIN containers c ON c.id = k.container_id WHERE k.network = ?",
            (nid, nid),
        )
        for address, cname, cid, _, _ in rows:
            if str(cname).lower() == want or str(cid)[:12] == want:
                return IPv4Address(address)
        for address, _, _, spec, connected in rows:
            aliases = (
                runtime_pb2.ContainerSpec.FromString(spec).network_aliases if spec is not None else str(connected).split(",")
            )
            if want in (a.lower() for a in aliases if a):
                return IPv4Address(address)
        return None

    def nameservers_of(self, nid: str, address: str) -> list[str]:
        """The --dns servers of the container at ``address`` on network ``nid`` (none: the engine's)."""
        rows = self.store.query(
            "SELECT c.spec FROM attachments a JOIN containers c ON c.id = a.container_id WHERE a.network = ? AND a.address = ? "
            "UNION ALL SELECT c.spec FROM connections k JOIN containers c ON c.id = k.container_id "
            "WHERE k.network = ? AND k.address = ?",
            (nid, address, nid, address),
        )
        return list(runtime_pb2.ContainerSpec.FromString(rows[0][0]).dns) if rows else []
