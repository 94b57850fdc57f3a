"""SQLite metadata of the store: images, their layers, tags and snapshots.

Schema (meta.db, WAL mode, foreign keys on)::

    layers(diff_id PK, size)               one row per unpacked layer dir layers/<hex>
       ▲
    image_layers(image_id, position, diff_id)   position 0 = bottom layer
       │
    images(id PK, config BLOB, created_at)  config = the exact bytes whose sha256 is id
       ▲                   ▲
    tags(ref PK, image_id)    snapshots(key PK, image_id, created_at)

A tag names exactly one image; re-tagging moves it. Every write is one transaction, so readers never
see an image without its layers or tag. Safe to call from several threads (one lock, one connection).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from teu.errors import AlreadyExists, NotFound
from teu.storage.oci import ImageConfig, parse_config

__all__ = ["Image", "Store"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS layers (
    diff_id TEXT PRIMARY KEY,
    size INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS images (
    id TEXT PRIMARY KEY,
    config BLOB NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS image_layers (
    image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    diff_id TEXT NOT NULL REFERENCES layers(diff_id),
    PRIMARY KEY (image_id, position)
);
CREATE TABLE IF NOT EXISTS tags (
    ref TEXT PRIMARY KEY,
    image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE
);
CREATE TABLE IF NOT EXISTS snapshots (
    key TEXT PRIMARY KEY,
    image_id TEXT NOT NULL REFERENCES images(id),
    created_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS tags_by_image ON tags(image_id);
"""


@dataclass(frozen=True)
class Image:
    """An image as recorded: ``layers`` are diff ids bottom first, ``size`` is their unpacked total."""

    id: str
    repo_tags: tuple[str, ...]
    created_at: int
    size: int
    config: ImageConfig
    layers: tuple[str, ...]


class Store:
    """The metadata database; see the module docstring for the schema."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self._lock = threading.Lock()

    @classmethod
    def open(cls, path: Path) -> Store:
        """Opens (creating if needed) the database at ``path``."""
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.executescript(_SCHEMA)
        return cls(conn)

    def close(self) -> None:
        """Closes the database; the store is unusable afterwards."""
        with self._lock:
            self._conn.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; rolled back if the body raises."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def add_image(
        self,
        image_id: str,
        config: bytes,
        created_at: int,
        layers: Sequence[tuple[str, int]],
        ref: str | None,
    ) -> None:
        """Records an image with its ``(diff_id, size)`` layers, bottom first, and tags it ``ref``.

        Importing identical content again is not an error: the existing image keeps its creation
        time. A ``ref`` naming another image is moved to this one.
        """
        with self._tx() as db:
            db.executemany("INSERT OR IGNORE INTO layers (diff_id, size) VALUES (?, ?)", layers)
            db.execute(
                "INSERT OR IGNORE INTO images (id, config, created_at) VALUES (?, ?, ?)",
                (image_id, config, created_at),
            )
            db.executemany(
                "INSERT OR IGNORE INTO image_layers (image_id, position, diff_id) VALUES (?, ?, ?)",
                [(image_id, pos, diff_id) for pos, (diff_id, _) in enumerate(layers)],
            )
            if ref is not None:
                db.execute(
                    "INSERT INTO tags (ref, image_id) VALUES (?, ?) "
                    "ON CONFLICT (ref) DO UPDATE SET image_id = excluded.image_id",
                    (ref, image_id),
                )

    def layer_size(self, diff_id: str) -> int | None:
        """Unpacked size of a recorded layer, None if the layer is not recorded."""
        row = self._query("SELECT size FROM layers WHERE diff_id = ?", (diff_id,))
        return int(row[0][0]) if row else None

    def image(self, image_id: str) -> Image | None:
        """The image with full id ``image_id``, or None."""
        found = self._images("WHERE i.id = ?", (image_id,))
        return found[0] if found else None

    def images(self) -> list[Image]:
        """Every image, newest first."""
        return self._images("", ())

    def tagged(self, ref: str) -> str | None:
        """Id of the image tagged ``ref`` ("name:tag"), or None."""
        row = self._query("SELECT image_id FROM tags WHERE ref = ?", (ref,))
        return str(row[0][0]) if row else None

    def ids_with_prefix(self, prefix: str, limit: int = 2) -> list[str]:
        """Up to ``limit`` image ids starting with ``prefix`` ("sha256:" + lowercase hex)."""
        # GLOB is case-sensitive and the prefix is hex, so it needs no escaping.
        rows = self._query("SELECT id FROM images WHERE id GLOB ? ORDER BY id LIMIT ?", (prefix + "*", limit))
        return [str(r[0]) for r in rows]

    def add_snapshot(self, key: str, image_id: str, created_at: int, create: Callable[[], None]) -> None:
        """Records snapshot ``key`` over ``image_id``, running ``create`` (making its dirs) before commit.

        NotFound for an unknown image, AlreadyExists for a used key; in both cases ``create`` is not run.
        If ``create`` raises, nothing is recorded.
        """
        with self._tx() as db:
            if db.execute("SELECT 1 FROM images WHERE id = ?", (image_id,)).fetchone() is None:
                raise NotFound(f"No such image: {image_id}")
            if db.execute("SELECT 1 FROM snapshots WHERE key = ?", (key,)).fetchone() is not None:
                raise AlreadyExists(f"snapshot {key} already exists")
            db.execute(
                "INSERT INTO snapshots (key, image_id, created_at) VALUES (?, ?, ?)",
                (key, image_id, created_at),
            )
            create()

    def snapshot_image(self, key: str) -> str | None:
        """Image id of snapshot ``key``, or None if there is no such snapshot."""
        row = self._query("SELECT image_id FROM snapshots WHERE key = ?", (key,))
        return str(row[0][0]) if row else None

    def remove_snapshot(self, key: str) -> bool:
        """Forgets snapshot ``key``; False if it was not recorded."""
        with self._tx() as db:
            return db.execute("DELETE FROM snapshots WHERE key = ?", (key,)).rowcount > 0

    def snapshot_keys(self) -> set[str]:
        """Keys of every recorded snapshot."""
        return {str(r[0]) for r in self._query("SELECT key FROM snapshots", ())}

    def counts(self) -> tuple[int, int]:
        """Numbers of images and of snapshots."""
        row = self._query("SELECT (SELECT COUNT(*) FROM images), (SELECT COUNT(*) FROM snapshots)", ())
        return int(row[0][0]), int(row[0][1])

    def _query(self, sql: str, args: Sequence[object]) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._conn.execute(sql, args).fetchall()

    def _images(self, where: str, args: Sequence[object]) -> list[Image]:
        """Images matching ``where`` (on alias i), newest first, with their tags, layers and size."""
        with self._lock:
            rows = self._conn.execute(
                f"SELECT i.id, i.config, i.created_at FROM images i {where} ORDER BY i.created_at DESC, i.id",
                args,
            ).fetchall()
            ids = [r[0] for r in rows]
            marks = ",".join("?" * len(ids))
            tags: dict[str, list[str]] = {i: [] for i in ids}
            for image_id, ref in self._conn.execute(
                f"SELECT image_id, ref FROM tags WHERE image_id IN ({marks}) ORDER BY ref", ids
            ):
                tags[image_id].append(ref)
            layers: dict[str, list[tuple[str, int]]] = {i: [] for i in ids}
            for image_id, diff_id, size in self._conn.execute(
                "SELECT il.image_id, il.diff_id, l.size FROM image_layers il JOIN layers l USING (diff_id) "
                f"WHERE il.image_id IN ({marks}) ORDER BY il.image_id, il.position",
                ids,
            ):
                layers[image_id].append((diff_id, size))
        return [
            Image(
                id=image_id,
                repo_tags=tuple(tags[image_id]),
                created_at=created_at,
                size=sum(size for _, size in layers[image_id]),
                config=parse_config(config),
                layers=tuple(diff_id for diff_id, _ in layers[image_id]),
            )
            for image_id, config, created_at in rows
        ]
