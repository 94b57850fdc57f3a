"""The event journal of a back end: what happened to the objects it owns, on disk, in order.

Each back end (runtime, storage) keeps its own journal in its own SQLite database, written in the
same transaction as the change it tells of, so an event exists exactly when its change does: a
service killed at any moment loses none and invents none. Every event gets ``seq``, a number that
only grows and is never reused (SQLite's AUTOINCREMENT); a reader that remembers the last ``seq``
it saw gets every later event exactly once, across restarts. The gateway merges the journals of
the back ends into one stream whose cursor is the list of those positions (see the gateway's
``events`` module).

The journal is bounded by count and age (``TEU_EVENTS_MAX``, ``TEU_EVENTS_MAX_AGE``): the oldest
events go first, a few at a time, as new ones are written.

Schema::

    events
    ├── seq         INTEGER PRIMARY KEY AUTOINCREMENT
    ├── time        INTEGER   Unix ns
    ├── type        TEXT      container, image, network, volume
    ├── action      TEXT      Docker's spelling: create, start, die, "health_status: healthy", ...
    ├── actor       TEXT      the object's id (or name, for volumes)
    └── attributes  TEXT      JSON object of strings: name, image, exitCode, the labels, ...
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from teu_api.times import duration_ns
from teu_api.types.v1 import types_pb2

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    time INTEGER NOT NULL,
    type TEXT NOT NULL,
    action TEXT NOT NULL,
    actor TEXT NOT NULL,
    attributes TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_time ON events(time);
"""
DEFAULT_MAX = 100_000
DEFAULT_MAX_AGE_NS = 7 * 24 * 3600 * 10**9
_PRUNE_EVERY = 256  # writes between two retention passes
_BATCH = 512  # events per read
_SAFETY_WAKE = 5.0  # seconds a follower sleeps at most without a notification


@dataclass(frozen=True)
class Event:
    """One event to record; ``time`` 0 means now."""

    type: str
    action: str
    actor: str
    attributes: Mapping[str, str] = field(default_factory=dict)
    time: int = 0


@dataclass(frozen=True)
class Retention:
    """How many events a journal keeps at most, and for how long."""

    max_events: int = DEFAULT_MAX
    max_age_ns: int = DEFAULT_MAX_AGE_NS

    @classmethod
    def from_env(cls) -> Retention:
        """``TEU_EVENTS_MAX`` (a count) and ``TEU_EVENTS_MAX_AGE`` (a duration such as ``24h``)."""
        count, age = os.environ.get("TEU_EVENTS_MAX", ""), os.environ.get("TEU_EVENTS_MAX_AGE", "")
        return cls(
            max_events=int(count) if count.isdigit() and int(count) > 0 else DEFAULT_MAX,
            max_age_ns=duration_ns(age) if age else DEFAULT_MAX_AGE_NS,
        )


class Journal:
    """The ``events`` table of a service's database.

    Writers call :meth:`write` inside their own transaction on their own connection and
    :meth:`committed` after it commits; readers use a connection of their own (WAL mode lets them
    read while a writer writes), so reading never waits for the service's lock.
    """

    def __init__(self, path: Path, writer: sqlite3.Connection, retention: Retention) -> None:
        writer.executescript(SCHEMA)
        self._reader = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._read_lock = threading.Lock()
        self._retention = retention
        self._writes = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._next: asyncio.Event | None = None  # set (and replaced) at the next commit of events

    def close(self) -> None:
        """Closes the reading connection."""
        with self._read_lock:
            self._reader.close()

    # -- writing --------------------------------------------------------------------------------

    def write(self, db: sqlite3.Connection, events: Iterable[Event]) -> int:
        """Appends ``events`` inside the caller's open transaction on ``db``; returns how many."""
        now = time.time_ns()
        rows = [(e.time or now, e.type, e.action, e.actor, json.dumps(dict(e.attributes), sort_keys=True)) for e in events]
        if not rows:
            return 0
        db.executemany("INSERT INTO events (time, type, action, actor, attributes) VALUES (?, ?, ?, ?, ?)", rows)
        self._writes += len(rows)
        if self._writes >= _PRUNE_EVERY:
            self._writes = 0
            self._prune(db, now)
        return len(rows)

    def _prune(self, db: sqlite3.Connection, now: int) -> None:
        head = db.execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()[0]
        db.execute("DELETE FROM events WHERE seq <= ?", (head - self._retention.max_events,))
        db.execute("DELETE FROM events WHERE time < ?", (now - self._retention.max_age_ns,))

    def committed(self) -> None:
        """Wakes the followers (from any thread), once a transaction that wrote events has committed."""
        if self._loop is None:
            return
        try:
            self._loop.call_soon_threadsafe(self._wake)
        except RuntimeError:  # the loop is closed: the service is stopping
            pass

    def _wake(self) -> None:
        if self._next is not None:
            woken, self._next = self._next, asyncio.Event()
            woken.set()

    # -- reading --------------------------------------------------------------------------------

    def head(self) -> int:
        """The ``seq`` of the newest event (0 for none yet)."""
        with self._read_lock:
            return int(self._reader.execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()[0])

    def before(self, time_ns: int) -> int:
        """The ``seq`` of the newest event older than ``time_ns`` (0 for none)."""
        with self._read_lock:
            return int(self._reader.execute("SELECT COALESCE(MAX(seq), 0) FROM events WHERE time < ?", (time_ns,)).fetchone()[0])

    def read(self, after: int, since_ns: int = 0, limit: int = _BATCH) -> list[types_pb2.Event]:
        """Up to ``limit`` events after ``seq`` ``after`` and not older than ``since_ns``, oldest first."""
        with self._read_lock:
            rows = self._reader.execute(
                "SELECT seq, time, type, action, actor, attributes FROM events WHERE seq > ? AND time >= ? ORDER BY seq LIMIT ?",
                (after, since_ns, limit),
            ).fetchall()
        return [
            types_pb2.Event(seq=r[0], time_unix_nano=r[1], type=r[2], action=r[3], actor_id=r[4], attributes=json.loads(r[5]))
            for r in rows
        ]

    async def serve(self, query: types_pb2.JournalQuery) -> AsyncIterator[types_pb2.JournalBatch]:
        """The back ends' Events stream: the batches ``query`` asks for, each with the position reached."""
        after = query.after_seq
        if query.from_now:
            after = await asyncio.to_thread(self.head)
            yield types_pb2.JournalBatch(position=after)
        elif query.since_unix_nano:  # where the events of that time start: every earlier one is passed
            after = max(after, await asyncio.to_thread(self.before, query.since_unix_nano))
            yield types_pb2.JournalBatch(position=after)
        async for batch in self.follow(after, 0, query.follow):
            yield types_pb2.JournalBatch(events=batch, position=batch[-1].seq)

    async def follow(self, after: int, since_ns: int, follow: bool) -> AsyncIterator[list[types_pb2.Event]]:
        """Batches of events after ``after`` (not older than ``since_ns``); with ``follow``, then each
        new batch as it is written, until the caller stops."""
        if self._next is None:
            self._loop, self._next = asyncio.get_running_loop(), asyncio.Event()
        while True:
            woken = self._next  # taken before reading: a commit during the read sets it
            assert woken is not None
            batch = await asyncio.to_thread(self.read, after, since_ns)
            if batch:
                after = batch[-1].seq
                yield batch
                if len(batch) == _BATCH:
                    continue
            if not follow:
                return
            try:
                await asyncio.wait_for(woken.wait(), _SAFETY_WAKE)
            except TimeoutError:
                pass
