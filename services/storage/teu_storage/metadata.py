"""SQLite metadata of the store: images, their layers, tags and snapshots.

Schema (meta.db, WAL mode, foreign keys on)::

    layers(diff_id PK, size)               one row per unpacked layer dir layers/<hex>
       ▲
    image_layers(image_id, position, diff_id)   position 0 = bottom layer
       │
    images(id PK, config BLOB, created_at, parent, comment, build_key)
                                            config = the exact bytes whose sha256 is id
       ▲                   ▲
    tags(ref PK, image_id)    snapshots(key PK, image_id, created_at)

    blobs(digest PK, diff_id, size, media_type)   registry blobs (compressed) known to hold a layer
    blob_repos(registry, repository, digest)      where such a blob was pulled from or pushed to

    events                                  the journal (teu_common.journal)

``blobs`` lets a push reuse the very blob a pull fetched or an earlier push uploaded (compression is
not reproducible across tools and zlib versions); ``blob_repos`` names repositories to mount it from.
Both are caches of verified facts: they go with their layer, and are never needed for correctness.

A tag names exactly one image; re-tagging moves it. ``parent`` (the image a commit started from)
is informational: deleting a parent leaves its children intact, since each lists all its layers.
``build_key`` is the build cache key a build step made the image for (empty for other images): the
cache goes with its images, so a prune of untagged images is also a prune of the build cache.
Every write is one transaction, so readers never
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

from teu_api.errors import AlreadyExists, FailedPrecondition, NotFound
from teu_common.journal import Event, Journal, Retention
from teu_storage.imagespec import ImageConfig, parse_config, platform_string

__all__ = ["Blob", "Image", "NewImage", "Store"]

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
CREATE TABLE IF NOT EXISTS blobs (
    digest TEXT PRIMARY KEY,
    diff_id TEXT NOT NULL,
    size INTEGER NOT NULL,
    media_type TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS blob_repos (
    registry TEXT NOT NULL,
    repository TEXT NOT NULL,
    digest TEXT NOT NULL,
    PRIMARY KEY (registry, digest, repository)
);
CREATE INDEX IF NOT EXISTS blobs_by_diff_id ON blobs(diff_id);
CREATE INDEX IF NOT EXISTS tags_by_image ON tags(image_id);
CREATE INDEX IF NOT EXISTS snapshots_by_image ON snapshots(image_id);
"""
# Columns added after the first schema; added to older databases at open.
_ADDED_COLUMNS = {
    "images": (
        ("parent", "TEXT NOT NULL DEFAULT ''"),
        ("comment", "TEXT NOT NULL DEFAULT ''"),
        ("build_key", "TEXT NOT NULL DEFAULT ''"),
    ),
}
_ADDED_INDEXES = "CREATE INDEX IF NOT EXISTS images_by_build_key ON images(build_key) WHERE build_key != '';"


@dataclass(frozen=True)
class Image:
    """An image as recorded: ``layers`` are diff ids bottom first, ``size`` is their unpacked total."""

    id: str
    repo_tags: tuple[str, ...]
    created_at: int
    size: int
    config: ImageConfig
    layers: tuple[str, ...]
    parent: str = ""
    comment: str = ""
    #: "os/architecture[/variant]" of its config.
    platform: str = ""


@dataclass(frozen=True)
class NewImage:
    """An image to record: ``layers`` are ``(diff_id, unpacked size)`` bottom first."""

    id: str
    config: bytes
    created_at: int
    layers: Sequence[tuple[str, int]]
    refs: Sequence[str] = ()
    parent: str = ""
    comment: str = ""
    build_key: str = ""


@dataclass(frozen=True)
class Blob:
    """A registry blob holding layer ``diff_id``: its digest, size and (OCI) media type."""

    digest: str
    diff_id: str
    size: int
    media_type: str


class Store:
    """The metadata database; see the module docstring for the schema."""

    def __init__(self, conn: sqlite3.Connection, journal: Journal) -> None:
        self._conn = conn
        self._lock = threading.Lock()
        self.journal = journal

    @classmethod
    def open(cls, path: Path, retention: Retention | None = None) -> Store:
        """Opens (creating if needed) the database at ``path``, with its event journal."""
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.executescript(_SCHEMA)
        for table, columns in _ADDED_COLUMNS.items():
            have = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
            for name, decl in columns:
                if name not in have:
                    conn.execute(f"ALTER TABLE {table} ADD COLUMN {name} {decl}")
        conn.executescript(_ADDED_INDEXES)
        return cls(conn, Journal(path, conn, retention or Retention()))

    def close(self) -> None:
        """Closes the database; the store is unusable afterwards."""
        with self._lock:
            self.journal.close()
            self._conn.close()

    def record(self, *events: Event) -> None:
        """Appends ``events`` to the journal, in a transaction of their own."""
        if not events:
            return
        with self._tx() as db:
            self.journal.write(db, events)
        self.journal.committed()

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
        *,
        parent: str = "",
        comment: str = "",
    ) -> None:
        """Records an image with its ``(diff_id, size)`` layers, bottom first, and tags it ``ref``.

        Importing identical content again is not an error: the existing image keeps its creation
        time. A ``ref`` naming another image is moved to this one.
        """
        refs = (ref,) if ref is not None else ()
        self.add_images([NewImage(image_id, config, created_at, layers, refs, parent, comment)])

    def add_images(self, images: Sequence[NewImage]) -> None:
        """Records several images in one transaction: all of them or none (see :meth:`add_image`)."""
        with self._tx() as db:
            for image in images:
                db.executemany("INSERT OR IGNORE INTO layers (diff_id, size) VALUES (?, ?)", image.layers)
                db.execute(
                    "INSERT OR IGNORE INTO images (id, config, created_at, parent, comment, build_key) VALUES (?, ?, ?, ?, ?, ?)",
                    (image.id, image.config, image.created_at, image.parent, image.comment, image.build_key),
                )
                db.executemany(
                    "INSERT OR IGNORE INTO image_layers (image_id, position, diff_id) VALUES (?, ?, ?)",
                    [(image.id, pos, diff_id) for pos, (diff_id, _) in enumerate(image.layers)],
                )
                db.executemany(
                    "INSERT INTO tags (ref, image_id) VALUES (?, ?) ON CONFLICT (ref) DO UPDATE SET image_id = excluded.image_id",
                    [(ref, image.id) for ref in image.refs],
                )

    def tag(self, ref: str, image_id: str) -> None:
        """Points ``ref`` at ``image_id`` (moving it from any other image)."""
        with self._tx() as db:
            db.execute(
                "INSERT INTO tags (ref, image_id) VALUES (?, ?) ON CONFLICT (ref) DO UPDATE SET image_id = excluded.image_id",
                (ref, image_id),
            )

    def remove_image(self, image_id: str, refs: Sequence[str] | None, force: bool) -> tuple[list[str], bool]:
        """Untags ``refs`` (all tags if None) of ``image_id`` and deletes it once untagged and unused.

        Returns (refs untagged, whether the image was deleted). FailedPrecondition, with nothing
        changed, if that would leave a snapshot's image without a name and ``force`` is not set;
        with ``force`` the refs go and the image stays until its snapshots are gone. One
        transaction, so a snapshot cannot be prepared over the image half-way through.
        """
        with self._tx() as db:
            tags = [str(r[0]) for r in db.execute("SELECT ref FROM tags WHERE image_id = ?", (image_id,))]
            untag = tags if refs is None else [r for r in refs if r in tags]
            remaining = [t for t in tags if t not in untag]
            users = [str(r[0]) for r in db.execute("SELECT key FROM snapshots WHERE image_id = ? ORDER BY key", (image_id,))]
            if not remaining and users and not force:
                raise FailedPrecondition(f"unable to remove image {image_id}: image is being used by container {users[0]}")
            db.executemany("DELETE FROM tags WHERE ref = ?", [(r,) for r in untag])
            deleted = not remaining and not users
            if deleted:
                db.execute("DELETE FROM images WHERE id = ?", (image_id,))
            return untag, deleted

    def prune(self, everything: bool, chosen: Callable[[int, bytes], bool] | None = None) -> list[str]:
        """Deletes images no snapshot uses: untagged ones (all of them with ``everything``), and of
        those only the ones ``chosen(created_at, config)`` picks when it is given.

        Parents of images that stay are kept, so their history keeps its ids. Returns deleted ids.
        """
        with self._tx() as db:
            rows = db.execute(
                "SELECT i.id, i.parent, EXISTS (SELECT 1 FROM tags t WHERE t.image_id = i.id), "
                "EXISTS (SELECT 1 FROM snapshots s WHERE s.image_id = i.id), i.created_at, i.config FROM images i"
            ).fetchall()
            keep = {str(r[0]) for r in rows if r[3] or (r[2] and not everything)}
            if chosen is not None:
                keep |= {str(r[0]) for r in rows if str(r[0]) not in keep and not chosen(int(r[4]), bytes(r[5]))}
            parents = {str(r[0]): str(r[1]) for r in rows}
            for image_id in list(keep):
                parent = parents.get(image_id, "")
                while parent and parent in parents and parent not in keep:
                    keep.add(parent)
                    parent = parents[parent]
            doomed = sorted(set(parents) - keep)
            db.executemany("DELETE FROM images WHERE id = ?", [(i,) for i in doomed])
            return doomed

    def layer_lists(self) -> list[list[str]]:
        """The layer list of every image (for garbage collection)."""
        lists: dict[str, list[str]] = {}
        for image_id, diff_id in self._query("SELECT image_id, diff_id FROM image_layers ORDER BY image_id, position", ()):
            lists.setdefault(str(image_id), []).append(str(diff_id))
        return list(lists.values())

    def layer_sizes(self) -> dict[str, int]:
        """Every recorded layer with its unpacked size."""
        return {str(r[0]): int(r[1]) for r in self._query("SELECT diff_id, size FROM layers", ())}

    def delete_layers(self, diff_ids: Sequence[str]) -> None:
        """Forgets layers no image lists any more (rows still referenced are kept)."""
        with self._tx() as db:
            db.executemany(
                "DELETE FROM layers WHERE diff_id = ? AND NOT EXISTS "
                "(SELECT 1 FROM image_layers WHERE image_layers.diff_id = layers.diff_id)",
                [(d,) for d in diff_ids],
            )
            # The blob records of layers that are gone can no longer be pushed; they go too.
            db.execute("DELETE FROM blobs WHERE diff_id NOT IN (SELECT diff_id FROM layers)")
            db.execute("DELETE FROM blob_repos WHERE digest NOT IN (SELECT digest FROM blobs)")

    def record_blobs(self, blobs: Sequence[Blob], registry: str = "", repository: str = "") -> None:
        """Remembers that ``blobs`` hold their layers and, with a registry, that ``repository`` has them."""
        with self._tx() as db:
            db.executemany(
                "INSERT OR IGNORE INTO blobs (digest, diff_id, size, media_type) VALUES (?, ?, ?, ?)",
                [(b.digest, b.diff_id, b.size, b.media_type) for b in blobs],
            )
            if registry:
                db.executemany(
                    "INSERT OR IGNORE INTO blob_repos (registry, repository, digest) VALUES (?, ?, ?)",
                    [(registry, repository, b.digest) for b in blobs],
                )

    def blobs_of(self, diff_id: str) -> list[Blob]:
        """Known blobs of layer ``diff_id``, oldest record first."""
        rows = self._query("SELECT digest, diff_id, size, media_type FROM blobs WHERE diff_id = ? ORDER BY rowid", (diff_id,))
        return [Blob(str(r[0]), str(r[1]), int(r[2]), str(r[3])) for r in rows]

    def repositories_with(self, registry: str, digest: str) -> list[str]:
        """Repositories of ``registry`` known to hold blob ``digest``."""
        rows = self._query(
            "SELECT repository FROM blob_repos WHERE registry = ? AND digest = ? ORDER BY repository",
            (registry, digest),
        )
        return [str(r[0]) for r in rows]

    def config(self, image_id: str) -> bytes | None:
        """The stored config bytes of ``image_id``."""
        row = self._query("SELECT config FROM images WHERE id = ?", (image_id,))
        return bytes(row[0][0]) if row else None

    def layer_size(self, diff_id: str) -> int | None:
        """Unpacked size of a recorded layer, None if the layer is not recorded."""
        row = self._query("SELECT size FROM layers WHERE diff_id = ?", (diff_id,))
        return int(row[0][0]) if row else None

    def image(self, image_id: str) -> Image | None:
        """The image with full id ``image_id``, or None."""
        found = self._images("WHERE i.id = ?", (image_id,))
        return found[0] if found else None

    def built_for(self, key: str) -> Image | None:
        """The newest image recorded for build cache ``key``, if any."""
        found = self._images("WHERE i.build_key = ?", (key,)) if key else []
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
                "SELECT i.id, i.config, i.created_at, i.parent, i.comment FROM images i "
                f"{where} ORDER BY i.created_at DESC, i.id",
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
                parent=parent,
                comment=comment,
                platform=platform_string(config),
            )
            for image_id, config, created_at, parent, comment in rows
        ]
