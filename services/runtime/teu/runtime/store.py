"""The runtime's SQLite database: one row per container.

Schema (one table; ``spec`` is the serialized teu.runtime.v1.ContainerSpec the container was
created with, so it can grow without migrations):

    containers
    ├── id            TEXT PRIMARY KEY   64 hex chars
    ├── name          TEXT UNIQUE
    ├── spec          BLOB
    ├── state         INTEGER            teu.types.v1.ContainerState
    ├── pid, monitor_pid, exit_code, oom_killed, restart_count   INTEGER
    ├── created_at, started_at, finished_at                     INTEGER (Unix ns)
    └── error         TEXT
"""

from __future__ import annotations

import builtins
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from teu.errors import AlreadyExists, InvalidArgument, NotFound
from teu.runtime.v1 import runtime_pb2

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
    error TEXT NOT NULL DEFAULT ''
)
"""
_STATE_FIELDS = (
    "state", "pid", "monitor_pid", "exit_code", "oom_killed", "restart_count",
    "started_at", "finished_at", "error",
)  # fmt: skip
Container = runtime_pb2.Container


class Store:
    """Container records. Every write is one transaction."""

    def __init__(self, path: Path) -> None:
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(_SCHEMA)

    def close(self) -> None:
        """Closes the database."""
        self._db.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def insert(self, c: Container) -> None:
        """Adds a new container; AlreadyExists if its id or name is taken."""
        try:
            with self._tx() as db:
                db.execute(
                    "INSERT INTO containers (id, name, spec, state, created_at) VALUES (?, ?, ?, ?, ?)",
                    (c.id, c.name, c.spec.SerializeToString(), c.state, c.created_at),
                )
        except sqlite3.IntegrityError as exc:
            if "name" in str(exc):
                raise AlreadyExists(f'the container name "{c.name}" is already in use') from exc
            raise AlreadyExists(f"container id {c.id} already exists") from exc

    def update(self, c: Container) -> None:
        """Saves the state fields of ``c``."""
        with self._tx() as db:
            db.execute(
                f"UPDATE containers SET {', '.join(f'{f} = ?' for f in _STATE_FIELDS)} WHERE id = ?",
                (*(getattr(c, f) for f in _STATE_FIELDS), c.id),
            )

    def delete(self, cid: str) -> None:
        """Forgets a container."""
        with self._tx() as db:
            db.execute("DELETE FROM containers WHERE id = ?", (cid,))

    def get(self, cid: str) -> Container:
        """The container with full id ``cid``."""
        rows = self._select("WHERE id = ?", (cid,))
        if not rows:
            raise NotFound(f"No such container: {cid}")
        return rows[0]

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
        """Every container, newest first."""
        return self._select("ORDER BY created_at DESC", ())

    def _select(self, where: str, args: tuple[str, ...]) -> builtins.list[Container]:
        cur = self._db.execute(f"SELECT id, name, spec, created_at, {', '.join(_STATE_FIELDS)} FROM containers {where}", args)
        out = []
        for row in cur.fetchall():
            c = Container(id=row[0], name=row[1], created_at=row[3])
            c.spec.ParseFromString(row[2])
            for field, value in zip(_STATE_FIELDS, row[4:], strict=True):
                setattr(c, field, bool(value) if field == "oom_killed" else value)
            out.append(c)
        return out
