"""The runtime's SQLite database: containers, their exec sessions, and the networks they join.

Schema (``spec`` is the serialized teu.runtime.v1.ContainerSpec the container was created with, so
it can grow without migrations):

    containers
    ├── id            TEXT PRIMARY KEY   64 hex chars
    ├── name          TEXT UNIQUE
    ├── spec          BLOB
    ├── state         INTEGER            teu.types.v1.ContainerState
    ├── pid, monitor_pid, exit_code, oom_killed, restart_count, oom_kills   INTEGER
    ├── last_oom      BLOB               serialized teu.types.v1.OomKill (the kernel's report)
    ├── created_at, started_at, finished_at                     INTEGER (Unix ns)
    └── error         TEXT

    networks          bridge networks: the default "bridge" and user-defined ones
    ├── id            TEXT PRIMARY KEY   64 hex chars
    ├── name          TEXT UNIQUE
    ├── subnet, gateway, bridge          TEXT (bridge UNIQUE)
    ├── dns           INTEGER            containers resolve each other by name
    └── created_at    INTEGER

    attachments       one per starting/running container: where it is plugged in (IPAM lives here)
    ├── container_id  TEXT PRIMARY KEY
    ├── network       TEXT               a networks.id, or "none" / "host"
    ├── address       TEXT               NULL for none/host; UNIQUE per network
    └── mac, host_interface              TEXT

    ports             published ports of attached containers
    ├── host_ip, host_port, protocol     PRIMARY KEY ("" host_ip = every address)
    └── container_port, container_id

    execs             exec sessions, shown by inspect
    ├── id            TEXT PRIMARY KEY   64 hex chars
    ├── container_id  TEXT
    ├── created_at    INTEGER
    └── record        BLOB               serialized teu.runtime.v1.ExecSession

    marks             how far the runtime has read a source (name → value), e.g. the kernel's log

    events            the journal (teu_common.journal): each event is written in the transaction of
                      the change it tells of
"""

from __future__ import annotations

import builtins
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from teu_api.errors import AlreadyExists, InvalidArgument, NotFound
from teu_api.runtime.v1 import runtime_pb2
from teu_api.types.v1 import types_pb2
from teu_common.journal import Event, Journal, Retention

_SCHEMA = """
CREATE TABLE IF NOT EXISTS containers (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    spec BLOB NOT NULL,
    state INTEGER NOT NULL,
    pid INTEGER NOT NULL DEFAULT 0,
    monitor_pid INTEGER NOT NULL DEFAULT 0,
    exit_code INTEGER NOT NULL DEFAULT 0,
    oom_killed INTEGER NOT NULL DEFAULT 0,
    restart_count INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    started_at INTEGER NOT NULL DEFAULT 0,
    finished_at INTEGER NOT NULL DEFAULT 0,
    error TEXT NOT NULL DEFAULT '',
    stopped_by_user INTEGER NOT NULL DEFAULT 0,
    rootfs BLOB NOT NULL DEFAULT x'',
    paused INTEGER NOT NULL DEFAULT 0,
    oom_kills INTEGER NOT NULL DEFAULT 0,
    last_oom BLOB NOT NULL DEFAULT x'',
    health BLOB NOT NULL DEFAULT x''
);
CREATE TABLE IF NOT EXISTS networks (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    subnet TEXT NOT NULL,
    gateway TEXT NOT NULL,
    bridge TEXT NOT NULL UNIQUE,
    dns INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    extra TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS attachments (
    container_id TEXT PRIMARY KEY,
    network TEXT NOT NULL,
    address TEXT,
    mac TEXT NOT NULL DEFAULT '',
    host_interface TEXT NOT NULL DEFAULT '',
    UNIQUE (network, address)
);
CREATE TABLE IF NOT EXISTS connections (
    container_id TEXT NOT NULL,
    network TEXT NOT NULL,
    address TEXT NOT NULL,
    mac TEXT NOT NULL,
    host_interface TEXT NOT NULL,
    ifname TEXT NOT NULL,
    aliases TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (container_id, network),
    UNIQUE (network, address)
);
CREATE TABLE IF NOT EXISTS ports (
    host_ip TEXT NOT NULL,
    host_port INTEGER NOT NULL,
    protocol TEXT NOT NULL,
    container_port INTEGER NOT NULL,
    container_id TEXT NOT NULL,
    PRIMARY KEY (host_ip, host_port, protocol)
);
CREATE TABLE IF NOT EXISTS marks (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS execs (
    id TEXT PRIMARY KEY,
    container_id TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    record BLOB NOT NULL
);
"""
_STATE_FIELDS = (
    "state", "pid", "monitor_pid", "exit_code", "oom_killed", "restart_count",
    "started_at", "finished_at", "error", "stopped_by_user", "paused",
)  # fmt: skip
Container = runtime_pb2.Container


class Store:
    """Container records. Every write is one transaction."""

    def __init__(self, path: Path, retention: Retention | None = None) -> None:
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._migrate()
        self.journal = Journal(path, self._db, retention or Retention())

    def _migrate(self) -> None:
        """Brings a database made by an earlier version up to the schema (columns added since)."""
        added = {
            "networks": {"extra": "TEXT NOT NULL DEFAULT '{}'"},  # internal, ip_range, labels of a network (JSON)
            "containers": {
                "stopped_by_user": "INTEGER NOT NULL DEFAULT 0",
                "rootfs": "BLOB NOT NULL DEFAULT x''",
                "paused": "INTEGER NOT NULL DEFAULT 0",
                "oom_kills": "INTEGER NOT NULL DEFAULT 0",
                "last_oom": "BLOB NOT NULL DEFAULT x''",
                "health": "BLOB NOT NULL DEFAULT x''",
            },
        }
        for table, columns in added.items():
            have = {row[1] for row in self._db.execute(f"PRAGMA table_info({table})")}
            for column, kind in columns.items():
                if column not in have:
                    self._db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")

    def close(self) -> None:
        """Closes the database."""
        self.journal.close()
        self._db.close()

    @contextmanager
    def tx(self, events: Sequence[Event] = ()) -> Iterator[sqlite3.Connection]:
        """One write transaction (BEGIN IMMEDIATE: it holds the write lock from its first statement,
        so a read-then-write inside it, such as an address allocation, cannot race another), which
        also records ``events``: they exist exactly when the change does."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
            self.journal.write(self._db, events)
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")
        if events:
            self.journal.committed()

    def record(self, *events: Event) -> None:
        """Records events that change no record (a signal sent, a health status)."""
        with self.tx(events):
            pass

    def insert(self, c: Container, *events: Event) -> None:
        """Adds a new container; AlreadyExists if its id or name is taken."""
        try:
            with self.tx(events) as db:
                db.execute(
                    "INSERT INTO containers (id, name, spec, state, created_at) VALUES (?, ?, ?, ?, ?)",
                    (c.id, c.name, c.spec.SerializeToString(), c.state, c.created_at),
                )
        except sqlite3.IntegrityError as exc:
            if "name" in str(exc):
                raise AlreadyExists(f'the container name "{c.name}" is already in use') from exc
            raise AlreadyExists(f"container id {c.id} already exists") from exc

    def update(self, c: Container, *events: Event) -> None:
        """Saves the state fields of ``c``."""
        with self.tx(events) as db:
            db.execute(
                f"UPDATE containers SET {', '.join(f'{f} = ?' for f in _STATE_FIELDS)} WHERE id = ?",
                (*(getattr(c, f) for f in _STATE_FIELDS), c.id),
            )

    def delete(self, cid: str, *events: Event) -> None:
        """Forgets a container."""
        with self.tx(events) as db:
            db.execute("DELETE FROM containers WHERE id = ?", (cid,))

    def get(self, cid: str) -> Container:
        """The container with full id ``cid``."""
        rows = self._select("WHERE id = ?", (cid,))
        if not rows:
            raise NotFound(f"No such container: {cid}")
        return rows[0]

    def state(self, cid: str) -> tuple[int, bool]:
        """Container ``cid``'s state and whether it is paused, without reading its whole record."""
        row = self._db.execute("SELECT state, paused FROM containers WHERE id = ?", (cid,)).fetchone()
        if row is None:
            raise NotFound(f"No such container: {cid}")
        return row[0], bool(row[1])

    def find(self, ref: str) -> Container:
        """The container named ``ref``, with id ``ref``, or whose id starts with ``ref``."""
        if not ref:
            raise InvalidArgument("a container id or name is required")
        rows = self._select("WHERE id = ? OR name = ?", (ref, ref))
        if rows:
            return next((r for r in rows if r.id == ref), rows[0])
        if all(ch in "0123456789abcdef" for ch in ref):
            rows = self._select("WHERE id >= ? AND id < ?", (ref, ref + "g"))
            if len(rows) > 1:
                raise InvalidArgument(f"multiple containers match the id prefix {ref!r}; give more characters")
            if rows:
                return rows[0]
        raise NotFound(f"No such container: {ref}")

    def list(self) -> list[Container]:
        """Every container, newest first, without the mounts of its last start (only a restart reads
        them, through get: a list of 500 containers was a third heavier with them)."""
        return self._select("ORDER BY created_at DESC", (), rootfs=False)

    def query(self, sql: str, args: tuple[object, ...] = ()) -> builtins.list[tuple[Any, ...]]:
        """Rows of a read-only statement (outside any transaction: SQLite reads are consistent)."""
        return self._db.execute(sql, args).fetchall()

    def _select(self, where: str, args: tuple[str, ...], rootfs: bool = True) -> builtins.list[Container]:
        cur = self._db.execute(
            f"SELECT id, name, spec, created_at, {'rootfs' if rootfs else 'NULL'}, oom_kills, last_oom, health, "
            f"{', '.join(_STATE_FIELDS)} FROM containers {where}",
            args,
        )
        out = []
        for row in cur.fetchall():
            c = Container(id=row[0], name=row[1], created_at=row[3], oom_kills=row[5])
            c.spec.ParseFromString(row[2])
            if row[4]:
                c.last_rootfs.extend(runtime_pb2.MountList.FromString(row[4]).mounts)
            if row[6]:
                c.last_oom.ParseFromString(row[6])
            if row[7]:
                c.health.ParseFromString(row[7])
            for field, value in zip(_STATE_FIELDS, row[8:], strict=True):
                setattr(c, field, bool(value) if field in ("oom_killed", "stopped_by_user", "paused") else value)
            out.append(c)
        return out

    def record_health(self, cid: str, health: types_pb2.Health, *events: Event) -> None:
        """Keeps container ``cid``'s health (at each change of status: it outlives a restart of this service)."""
        with self.tx(events) as db:
            db.execute("UPDATE containers SET health = ? WHERE id = ?", (health.SerializeToString(), cid))

    def update_spec(self, cid: str, spec: runtime_pb2.ContainerSpec, *events: Event) -> None:
        """Saves a changed spec (update of limits or restart policy)."""
        with self.tx(events) as db:
            db.execute("UPDATE containers SET spec = ? WHERE id = ?", (spec.SerializeToString(), cid))

    def rename(self, cid: str, name: str, *events: Event) -> None:
        """Gives container ``cid`` another name; AlreadyExists if it is taken."""
        try:
            with self.tx(events) as db:
                db.execute("UPDATE containers SET name = ? WHERE id = ?", (name, cid))
        except sqlite3.IntegrityError as exc:
            raise AlreadyExists(f'the container name "{name}" is already in use') from exc

    def set_rootfs(self, cid: str, mounts: Sequence[types_pb2.Mount]) -> None:
        """Keeps the root filesystem mounts of a start, for a restart of the runtime's own."""
        with self.tx() as db:
            db.execute(
                "UPDATE containers SET rootfs = ? WHERE id = ?", (runtime_pb2.MountList(mounts=mounts).SerializeToString(), cid)
            )

    def record_oom(self, cid: str, report: types_pb2.OomKill, mark: tuple[str, str], *events: Event) -> None:
        """Counts an OOM kill of container ``cid`` and keeps its report, with how far the kernel's log
        was read (``mark``: name, value)."""
        with self.tx(events) as db:
            db.execute(
                "INSERT INTO marks (name, value) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET value = excluded.value", mark
            )
            db.execute(
                "UPDATE containers SET oom_kills = oom_kills + 1, last_oom = ? WHERE id = ?", (report.SerializeToString(), cid)
            )

    def mark(self, name: str) -> str:
        """How far source ``name`` was read ("" if never)."""
        rows = self._db.execute("SELECT value FROM marks WHERE name = ?", (name,)).fetchall()
        return str(rows[0][0]) if rows else ""

    def save_exec(self, cid: str, record: runtime_pb2.ExecSession, *events: Event) -> None:
        """Adds or updates an exec session of container ``cid``."""
        with self.tx(events) as db:
            db.execute(
                "INSERT INTO execs (id, container_id, created_at, record) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(id) DO UPDATE SET record = excluded.record",
                (record.id, cid, time.time_ns(), record.SerializeToString()),
            )

    def execs_of(self, cid: str) -> builtins.list[runtime_pb2.ExecSession]:
        """The exec sessions of container ``cid``, oldest first."""
        rows = self._db.execute("SELECT record FROM execs WHERE container_id = ? ORDER BY created_at", (cid,))
        return [runtime_pb2.ExecSession.FromString(r[0]) for r in rows.fetchall()]

    def all_execs(self) -> dict[str, builtins.list[runtime_pb2.ExecSession]]:
        """Every container's exec sessions in one query (for listings), oldest first."""
        out: dict[str, builtins.list[runtime_pb2.ExecSession]] = {}
        for cid, record in self._db.execute("SELECT container_id, record FROM execs ORDER BY created_at").fetchall():
            out.setdefault(cid, []).append(runtime_pb2.ExecSession.FromString(record))
        return out

    def delete_execs(self, cid: str) -> None:
        """Forgets the exec sessions of container ``cid``."""
        with self.tx() as db:
            db.execute("DELETE FROM execs WHERE container_id = ?", (cid,))
