"""The event journal: written with the change it tells of, read from any position, followed, bounded."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

from teu_common.journal import Event, Journal, Retention


def open_journal(path: Path, retention: Retention | None = None) -> tuple[sqlite3.Connection, Journal]:
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    return db, Journal(path, db, retention or Retention())


def write(db: sqlite3.Connection, journal: Journal, *events: Event, commit: bool = True) -> None:
    db.execute("BEGIN IMMEDIATE")
    journal.write(db, events)
    db.execute("COMMIT" if commit else "ROLLBACK")
    journal.committed()


def test_events_exist_only_once_their_transaction_commits(tmp_path: Path) -> None:
    db, journal = open_journal(tmp_path / "db")
    write(db, journal, Event("container", "create", "a", {"name": "x"}), Event("container", "start", "a"))
    write(db, journal, Event("container", "die", "a"), commit=False)
    got = journal.read(0)
    assert [(e.seq, e.action, dict(e.attributes)) for e in got] == [(1, "create", {"name": "x"}), (2, "start", {})]
    assert [e.action for e in journal.read(1)] == ["start"]
    assert journal.head() == 2


def test_seq_is_never_reused_after_a_reopen(tmp_path: Path) -> None:
    db, journal = open_journal(tmp_path / "db")
    write(db, journal, Event("image", "tag", "i"))
    db.close()
    db, journal = open_journal(tmp_path / "db")
    write(db, journal, Event("image", "untag", "i"))
    assert [e.seq for e in journal.read(0)] == [1, 2]


def test_retention_keeps_the_newest_within_count_and_age(tmp_path: Path) -> None:
    db, journal = open_journal(tmp_path / "db", Retention(max_events=100, max_age_ns=3600 * 10**9))
    old = Event("container", "create", "old", time=1)
    write(db, journal, old, *(Event("container", "start", str(i)) for i in range(599)))
    kept = journal.read(0, limit=10_000)
    assert len(kept) < 600 and "old" not in {e.actor_id for e in kept}
    assert kept[-1].seq == 600 and len(kept) <= 100 + 256


def test_a_follower_wakes_for_commits_from_another_thread(tmp_path: Path) -> None:
    db, journal = open_journal(tmp_path / "db")

    async def main() -> list[str]:
        seen: list[str] = []

        async def follow() -> None:
            async for batch in journal.follow(0, 0, follow=True):
                seen.extend(e.actor_id for e in batch)
                if len(seen) == 20:
                    return

        task = asyncio.create_task(follow())
        await asyncio.sleep(0.05)

        def writer() -> None:
            for i in range(20):
                write(db, journal, Event("container", "start", str(i)))

        thread = threading.Thread(target=writer)
        thread.start()
        await asyncio.wait_for(task, 3)  # far below the follower's safety wake
        thread.join()
        return seen

    assert asyncio.run(main()) == [str(i) for i in range(20)]
