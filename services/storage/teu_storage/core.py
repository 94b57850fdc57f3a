"""The storage engine: images made of shared unpacked layers, and overlay snapshots over them.

State directory layout::

    layers/<hex>/           one unpacked layer per diff id (sha256 of its tar), shared by images,
                            in overlay form (whiteouts are 0:0 char devices); see layers.py
    l/<short>               short links to layer dirs, named in overlay mount options
    tarsplit/<hex>.gz       what rebuilds each layer's exact tar for save (tarsplit.py)
    snapshots/<key>/{upper,work}
    tmp/                    uploads and half-made layers; emptied at start-up
    meta.db                 SQLite metadata, see metadata.py

Crash safety: a layer is unpacked in tmp/ and renamed into layers/ whole; an image row appears in
one transaction with all its layers and tags. Garbage collection (gc.py) then removes layers no image
reaches, at start-up and after RemoveImage/Prune, so a crash at any point leaves no half image and,
after the next start, no orphan data. Operations in flight pin the layers they have unpacked but not
yet recorded, and GC runs under the same lock, so it never removes a layer about to be recorded.

Every method is blocking; the gRPC adapter runs them in threads. ``import_image`` is the one async
entry point, because it consumes the client's stream.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import stat
import tempfile
import time
import uuid
from collections.abc import AsyncIterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import structlog

from teu_api.errors import FailedPrecondition, Internal, InvalidArgument, NotFound
from teu_storage import archive, diff, fetch, gc, imagearchive, imagespec, refs, snapshots, tarwriter, uploads
from teu_storage.imagespec import HistoryItem, ImageConfig, build_config
from teu_storage.layerstore import LayerStore
from teu_storage.merged import View
from teu_storage.metadata import Image, NewImage, Store
from teu_storage.safefs import Dir
from teu_storage.snapshots import Mount

__all__ = ["HistoryEntry", "Storage", "StorageInfo", "import_image"]

log = structlog.get_logger()

# The kernel copies mount options into one page; the runtime adds nothing to the overlay's.
MAX_MOUNT_OPTIONS = 4096 - 1


@dataclass(frozen=True)
class StorageInfo:
    """What GetStorageInfo reports."""

    driver: str
    images: int
    snapshots: int
    root: str


@dataclass(frozen=True)
class HistoryEntry:
    """One step of an image's history (newest first in :meth:`Storage.history`)."""

    id: str
    created_at: int
    created_by: str
    size: int
    comment: str


class Storage:
    """An open store rooted at one state directory."""

    def __init__(self, root: Path, store: Store) -> None:
        self.root = root
        self.snapshots = root / "snapshots"
        self.tmp = root / "tmp"
        self.layers = LayerStore(root, self.tmp, store)
        self.gc = gc.Collector(store, self.layers, self.snapshots)
        self._store = store

    @classmethod
    def open(cls, root: Path) -> Storage:
        """Opens the store at ``root``, creating it if needed and clearing what a crash left behind."""
        root.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(root / "tmp", ignore_errors=True)
        for sub in ("layers", "snapshots", "tmp"):
            (root / sub).mkdir(mode=0o700, exist_ok=True)
        storage = cls(root, Store.open(root / "meta.db"))
        storage.gc.sweep_snapshots()
        storage.gc.collect()
        return storage

    def close(self) -> None:
        """Closes the metadata database."""
        self._store.close()

    # --- images in ---------------------------------------------------------------------------

    def begin_import(self) -> uploads.Upload:
        """Starts receiving a tar stream; pass the upload to :meth:`commit_import` or discard it."""
        return uploads.Upload(self.tmp)

    def commit_import(self, upload: uploads.Upload, ref: refs.Reference | None, config: ImageConfig, comment: str = "") -> Image:
        """Unpacks the received tar as a layer and records a one-layer image, tagged ``ref`` if given.

        Consumes ``upload`` whatever happens. InvalidArgument for a bad tar, after which no layer,
        temp file or database row is left.
        """
        with self.layers.pinning() as pins:
            try:
                diff_id = upload.finish()
                size = self.layers.add(upload.path, diff_id, pins)
            finally:
                upload.discard()
            created = time.time_ns()
            raw = build_config(config, [diff_id], created)
            image_id = "sha256:" + hashlib.sha256(raw).hexdigest()
            self._store.add_image(image_id, raw, created, [(diff_id, size)], str(ref) if ref else None, comment=comment)
        log.info("image_imported", image_id=image_id, ref=str(ref) if ref else None, layer=diff_id, size=size)
        return self._image(image_id)

    def import_url(self, url: str, ref: refs.Reference | None, config: ImageConfig) -> Image:
        """Downloads the tar at http(s) ``url`` and imports it as :meth:`commit_import` does."""
        upload = self.begin_import()
        try:
            fetch.download(url, upload.write)
        except BaseException:
            upload.discard()
            raise
        return self.commit_import(upload, ref, config, comment=f"Imported from {url}")

    def commit(self, key: str, ref: str, config: ImageConfig, message: str, author: str) -> Image:
        """Makes a new image: snapshot ``key``'s image plus one layer of its writable layer's changes.

        The layer tar is written from the upper dir (whiteouts as OCI ``.wh.`` entries), then unpacked
        like any imported layer, so the layer dir is exactly what its tar-split rebuilds.
        """
        reference = refs.parse(ref) if ref else None
        parent, upper, _ = self._snapshot(key)
        with self.layers.pinning() as pins:
            self.layers.pin_existing(parent.layers, pins)
            tar_path, diff_id = self.layers.write_tar(upper, "commit-")
            try:
                size = self.layers.add(tar_path, diff_id, pins, trusted=True)
            finally:
                tar_path.unlink(missing_ok=True)
            created = time.time_ns()
            parent_raw = self._config(parent.id)
            steps = [
                *imagespec.history(parent_raw, len(parent.layers)),
                HistoryItem(
                    created=imagespec.rfc3339(created),
                    created_by=f"commit: {message}" if message else "commit",
                    comment=message,
                    author=author,
                ),
            ]
            raw = build_config(
                config,
                [*parent.layers, diff_id],
                created,
                steps=steps,
                base_platform=imagespec.platform_of(parent_raw),
                author=author,
            )
            image_id = "sha256:" + hashlib.sha256(raw).hexdigest()
            sizes = self._store.layer_sizes()
            layers = [(d, sizes.get(d, 0)) for d in parent.layers] + [(diff_id, size)]
            self._store.add_image(
                image_id,
                raw,
                created,
                layers,
                str(reference) if reference else None,
                parent=parent.id,
                comment=message,
            )
        log.info("image_committed", image_id=image_id, key=key, parent=parent.id, layer=diff_id, size=size)
        return self._image(image_id)

    def load(self, tar_path: Path) -> list[Image]:
        """Loads every image of a docker-archive or OCI-layout tar (already spooled to ``tar_path``).

        All images are recorded in one transaction once every layer has been verified and unpacked;
        on any error nothing is recorded and the layers unpacked so far are collected.
        """
        loaded: list[NewImage] = []
        try:
            with self.layers.pinning() as pins:
                source = imagearchive.Archive(tar_path)
                try:
                    items = source.items()
                    sizes: dict[str, int] = {}
                    for item in items:
                        for layer in item.layers:
                            if layer.diff_id not in sizes:
                                sizes[layer.diff_id] = self._load_layer(source, layer, pins)
                finally:
                    source.close()
                now = time.time_ns()
                for item in items:
                    created = imagespec.parse_created(imagespec.created_field(item.config)) or now
                    layers = [(layer.diff_id, sizes[layer.diff_id]) for layer in item.layers]
                    loaded.append(NewImage(item.image_id, item.config, created, layers, tuple(item.refs)))
                self._store.add_images(loaded)
        except BaseException:
            self.gc.collect()  # layers of a refused archive go right away
            raise
        log.info("images_loaded", images=[i.id for i in loaded])
        return [self._image(i.id) for i in loaded]

    def _load_layer(self, source: imagearchive.Archive, layer: imagearchive.LayerRef, pins: list[str]) -> int:
        fd, name = tempfile.mkstemp(prefix="load-", suffix=".tar", dir=self.tmp)
        tar_path = Path(name)
        try:
            with os.fdopen(fd, "wb") as out, source.open(layer.member) as src:
                blob, diff_id = imagearchive.spool_layer(src, out, uploads.MAX_UPLOAD)
            if layer.blob_digest is not None and blob != layer.blob_digest:
                raise InvalidArgument(f"invalid archive: digest mismatch for layer blob {layer.blob_digest}")
            if diff_id != layer.diff_id:
                raise InvalidArgument(f"invalid archive: layer {layer.member} has digest {diff_id}, not {layer.diff_id}")
            return self.layers.add(tar_path, diff_id, pins)
        finally:
            tar_path.unlink(missing_ok=True)

    # --- images out and lookups -------------------------------------------------------------

    def get_image(self, ref: str) -> Image:
        """Finds an image by "name[:tag]", full id or unique id prefix (with or without "sha256:").

        A name wins over an id prefix, as in Docker. NotFound if nothing matches, InvalidArgument
        for an empty ref or an ambiguous prefix.
        """
        if not ref:
            raise InvalidArgument("empty image reference")
        image_id = self._tagged(ref)
        if image_id is None and refs.is_id_prefix(ref):
            prefix = ref if ref.startswith("sha256:") else "sha256:" + ref
            matches = self._store.ids_with_prefix(prefix)
            if len(matches) > 1:
                raise InvalidArgument(f"ambiguous image id prefix: {ref}")
            image_id = matches[0] if matches else None
        image = self._store.image(image_id) if image_id else None
        if image is None:
            raise NotFound(f"No such image: {ref}")
        return image

    def list_images(self) -> list[Image]:
        """Every image, newest first."""
        return self._store.images()

    def tag(self, source: str, target: str) -> Image:
        """Adds reference ``target`` to image ``source``; NotFound / InvalidArgument as GetImage and parse."""
        reference = refs.parse(target)
        image = self.get_image(source)
        self._store.tag(str(reference), image.id)
        log.info("image_tagged", image_id=image.id, ref=str(reference))
        return self._image(image.id)

    def remove_image(self, ref: str, force: bool) -> tuple[list[str], list[str]]:
        """Untags ``ref`` (every tag when ``ref`` is an id) and deletes the image once nothing names it.

        Returns (refs untagged, image ids deleted). FailedPrecondition if a snapshot uses the image
        and it would lose its last name, unless ``force`` (then only the names go).
        """
        image = self.get_image(ref)
        named = str(refs.parse(ref)) if self._tagged(ref) == image.id else None
        untagged, deleted = self._store.remove_image(image.id, [named] if named else None, force)
        if deleted:
            self.gc.collect()
        log.info("image_removed", image_id=image.id, untagged=untagged, deleted=deleted)
        return untagged, [image.id] if deleted else []

    def prune(self, everything: bool) -> tuple[list[str], int]:
        """Deletes unused images (untagged ones, or all with ``everything``) and then unreachable layers.

        Returns (image ids deleted, bytes reclaimed).
        """
        deleted = self._store.prune(everything)
        reclaimed = self.gc.collect()
        log.info("images_pruned", deleted=len(deleted), reclaimed=reclaimed)
        return deleted, reclaimed

    def history(self, ref: str) -> list[HistoryEntry]:
        """The history of image ``ref``, newest first; steps of images still stored carry their ids."""
        image = self.get_image(ref)
        steps = imagespec.history(self._config(image.id), len(image.layers))
        ids = [""] * len(steps)
        current: Image | None = image
        seen: set[str] = set()
        while current is not None and current.id not in seen:
            seen.add(current.id)
            own = len(imagespec.history(self._config(current.id), len(current.layers)))
            if 0 < own <= len(ids) and not ids[own - 1]:
                ids[own - 1] = current.id
            current = self._store.image(current.parent) if current.parent else None
        sizes = self._store.layer_sizes()
        layer_iter = iter(image.layers)
        entries = []
        for step, step_id in zip(steps, ids, strict=True):
            size = 0 if step.empty_layer else sizes.get(next(layer_iter, ""), 0)
            entries.append(
                HistoryEntry(
                    id=step_id,
                    created_at=imagespec.parse_created(step.created) or 0,
                    created_by=step.created_by,
                    size=size,
                    comment=step.comment,
                )
            )
        return entries[::-1]

    def save(self, names: Sequence[str], fmt: str, out: IO[bytes]) -> None:
        """Writes images ``names`` as one archive ("docker-archive" or "oci-archive") to ``out``."""
        fmt = fmt or "docker-archive"
        if fmt not in imagearchive.FORMATS:
            raise InvalidArgument(f"unknown archive format {fmt!r}: want one of {', '.join(imagearchive.FORMATS)}")
        if not names:
            raise InvalidArgument("save: no images named")
        items = []
        for name in names:
            image = self.get_image(name)
            tagged = self._tagged(name) == image.id
            items.append(
                imagearchive.SaveItem(
                    image_id=image.id,
                    config=self._config(image.id),
                    layers=image.layers,
                    refs=(str(refs.parse(name)),) if tagged else (),
                    mtime=image.created_at // 1_000_000_000,
                )
            )
        with self.layers.pinning() as pins:
            for item in items:
                self.layers.pin_existing(item.layers, pins)
            imagearchive.write_archive(items, fmt, self.layers.tar, out)

    # --- snapshots ---------------------------------------------------------------------------

    def prepare_snapshot(self, key: str, image_id: str) -> list[Mount]:
        """Creates writable snapshot ``key`` over image ``image_id`` (a full id) and returns its mounts.

        InvalidArgument for a malformed key, NotFound for an unknown image, AlreadyExists for a used key,
        FailedPrecondition for an image with too many layers to describe in one mount.
        """
        snapshots.check_key(key)
        image = self._store.image(image_id)
        if image is None:
            raise NotFound(f"No such image: {image_id}")
        snapshot_dir = self.snapshots / key
        mount = self._mount(image, snapshot_dir, with_init=True)  # checks the option length before anything is made
        self._store.add_snapshot(key, image_id, time.time_ns(), lambda: snapshots.create(snapshot_dir))
        log.info("snapshot_prepared", key=key, image_id=image_id, layers=len(image.layers))
        return [mount]

    def snapshot_mounts(self, key: str) -> list[Mount]:
        """The mounts of existing snapshot ``key``; NotFound if there is none."""
        image, _, _ = self._snapshot(key)
        snapshot_dir = self.snapshots / key
        # snapshots made before the init layer existed have none
        return [self._mount(image, snapshot_dir, with_init=(snapshot_dir / "init").is_dir())]

    def remove_snapshot(self, key: str) -> bool:
        """Deletes snapshot ``key`` and its files; False (not an error) if it did not exist.

        The row goes first, so a failure part-way leaves only an orphan directory, which the next
        start-up (or a new snapshot with the same key) removes.
        """
        snapshots.check_key(key)
        removed = self._store.remove_snapshot(key)
        snapshot_dir = self.snapshots / key
        if snapshot_dir.exists():
            # Renaming first makes the removal atomic for anyone looking at snapshots/.
            trash = self.tmp / f"rm-{key}-{uuid.uuid4().hex}"
            os.rename(snapshot_dir, trash)
            shutil.rmtree(trash)
        if removed:
            log.info("snapshot_removed", key=key)
        return removed

    def diff(self, key: str) -> list[diff.Change]:
        """Changes of snapshot ``key`` relative to its image (Docker's A/C/D), sorted by path."""
        _, upper, lowers = self._snapshot(key)
        return diff.changes(str(upper), lowers)

    def export(self, key: str, out: IO[bytes]) -> None:
        """Writes snapshot ``key``'s merged filesystem to ``out`` as a tar.

        The container may be running: its upper dir is read without following anything it can swap
        (see safefs.py); FailedPrecondition if an entry changes type while being read.
        """
        with self._view(key) as view:
            tarwriter.write_view(view, view.root, "", out)

    def copy_from(self, key: str, path: str, out: IO[bytes]) -> None:
        """Writes ``path`` (file or tree) of snapshot ``key``'s merged filesystem as a tar.

        Symlinks on the way are resolved inside the container's root; a symlink at the end is copied
        as a link, as ``docker cp`` does. NotFound for a missing path. Each step of the resolution
        and of the walk looks up one name in a directory already open, so a running container cannot
        redirect it (see safefs.py).
        """
        if not path.startswith("/"):
            raise InvalidArgument(f"copy path must be absolute: {path!r}")
        with self._view(key) as view:
            rel, node = view.resolve(path, follow_last=False)
            if node is None:
                raise NotFound(f"Could not find the file {path} in container {key[:12]}")
            tarwriter.write_view(view, node, rel.rpartition("/")[2], out)

    def copy_to(self, key: str, path: str, tar_path: Path) -> int:
        """Extracts the tar at ``tar_path`` into directory ``path`` of snapshot ``key``; returns members.

        The directory is resolved in the merged view (symlinks inside the container's root only),
        then made in the upper dir as overlayfs would copy it up, and the tar is extracted there with
        the same checks as an import: nothing lands outside it. Meant for a container that is not
        running: overlayfs does not expect its upper dir to change under a mount, and a running
        container could race the checks (the gateway has the runtime copy into a running one).
        """
        if not path.startswith("/"):
            raise InvalidArgument(f"copy destination must be absolute: {path!r}")
        _, upper, lowers = self._snapshot(key)
        with View([str(upper), *lowers]) as view:
            rel, node = view.resolve(path, follow_last=True)
            if node is None:
                raise NotFound(f"Could not find the file {path} in container {key[:12]}")
            if not node.is_dir:
                raise InvalidArgument(f"copy destination {path} is not a directory")
            dest = _copy_up_dirs(view, upper, rel)
        stats = archive.extract(tar_path, dest, archive.Options(into_existing=True))
        log.info("copied_to_snapshot", key=key, path=path, files=stats.files)
        return stats.files

    def info(self) -> StorageInfo:
        """Driver, counts and root of the store."""
        images, snaps = self._store.counts()
        return StorageInfo(driver="overlay", images=images, snapshots=snaps, root=str(self.root))

    # --- for registry pulls and pushes (registry.py) ---------------------------------------

    @property
    def store(self) -> Store:
        """The metadata database (registry.py records and looks up blobs in it)."""
        return self._store

    def pinning(self) -> AbstractContextManager[list[str]]:
        """Layers pinned in the body (pin_present, add_layer, pin_existing) are safe from GC until its end."""
        return self.layers.pinning()

    def pin_present(self, diff_id: str, pins: list[str]) -> int | None:
        """Pins layer ``diff_id`` if it is already unpacked and recorded; its size, or None if it is not."""
        return self.layers.pin_present(diff_id, pins)

    def add_layer(self, tar_path: Path, diff_id: str, pins: list[str]) -> int:
        """Unpacks the verified layer tar at ``tar_path`` (safely: hostile tars raise InvalidArgument),
        pinned in ``pins``; returns its unpacked size."""
        return self.layers.add(tar_path, diff_id, pins)

    def pin_existing(self, diff_ids: Sequence[str], pins: list[str]) -> None:
        """Pins layers that must be present (Internal if one is missing)."""
        self.layers.pin_existing(diff_ids, pins)

    def layer_tar(self, diff_id: str) -> imagearchive.LayerSource:
        """The exact tar of layer ``diff_id`` (rebuilt from its tar-split; finish() checks it)."""
        return self.layers.tar(diff_id)

    def image_config(self, image_id: str) -> bytes:
        """The stored config bytes of ``image_id`` (whose sha256 is the id)."""
        return self._config(image_id)

    def record_image(self, image: NewImage) -> Image:
        """Records ``image`` (its layers pinned and unpacked) with its refs, in one transaction."""
        self._store.add_images([image])
        return self._image(image.id)

    # --- helpers -------------------------------------------------------------------------------

    def _tagged(self, ref: str) -> str | None:
        try:
            return self._store.tagged(str(refs.parse(ref)))
        except InvalidArgument:
            return None

    def _image(self, image_id: str) -> Image:
        image = self._store.image(image_id)
        if image is None:
            raise Internal(f"image {image_id} vanished from the store")
        return image

    def _config(self, image_id: str) -> bytes:
        raw = self._store.config(image_id)
        if raw is None:
            raise NotFound(f"No such image: {image_id}")
        return raw

    def _snapshot(self, key: str) -> tuple[Image, Path, list[str]]:
        """Image, upper dir and lower layer dirs (top-most first) of snapshot ``key``."""
        snapshots.check_key(key)
        image_id = self._store.snapshot_image(key)
        if image_id is None:
            raise NotFound(f"No such snapshot: {key}")
        image = self._image(image_id)
        lowers = [str(self.layers.dirs.path(d)) for d in reversed(image.layers)]
        return image, self.snapshots / key / "upper", lowers

    def _view(self, key: str) -> View:
        _, upper, lowers = self._snapshot(key)
        return View([str(upper), *lowers])

    def _mount(self, image: Image, snapshot_dir: Path, with_init: bool) -> Mount:
        lower = [self.layers.dirs.link(diff_id) for diff_id in reversed(image.layers)]
        if with_init:
            lower.insert(0, snapshot_dir / "init")
        mount = snapshots.overlay_mount(lower, snapshot_dir)
        length = len(",".join(mount.options))
        if length > MAX_MOUNT_OPTIONS:
            raise FailedPrecondition(
                f"image has too many layers ({len(image.layers)}) for one overlay mount "
                f"({length} bytes of options, the kernel takes {MAX_MOUNT_OPTIONS})"
            )
        return mount


def _copy_up_dirs(view: View, upper: Path, rel: str) -> Path:
    """Makes directory ``rel`` (canonical, no symlinks) exist in ``upper``, copying attributes from
    what the merged view shows there, as overlayfs's copy-up does; returns its path.

    Each directory is made and set up relative to its open parent, never through a symlink. The
    path returned is then used by name, which is safe only while the container is not running (the
    gateway has the runtime copy into a running one, inside its mounted root).
    """
    node = view.root
    with Dir.root(str(upper)) as top:
        d = top
        for name in [p for p in rel.split("/") if p]:
            child = view.child(node, name)
            if child is None or not child.is_dir:
                raise NotFound(f"{rel} vanished from the container")
            node = child
            st = d.lstat(name)
            if st is None:
                os.mkdir(name, 0o700, dir_fd=d.fd)
            elif not stat.S_ISDIR(st.st_mode):
                raise FailedPrecondition(f"{rel} changed in the container while copying")
            d = d.child(name)
            fd = d.fd  # FailedPrecondition if it is no longer a directory
            if st is None:
                os.chown(fd, node.st.st_uid, node.st.st_gid)
                os.chmod(fd, stat.S_IMODE(node.st.st_mode))
                os.utime(fd, ns=(node.st.st_atime_ns, node.st.st_mtime_ns))
    return upper / rel


async def import_image(storage: Storage, ref: str, config: ImageConfig, chunks: AsyncIterable[bytes], url: str = "") -> Image:
    """Receives a tar stream from ``chunks`` (or ``url``) and imports it as a one-layer image tagged ``ref``.

    An empty ``ref`` leaves the image untagged; a malformed one is refused before any byte is read.
    With ``url`` the stream must carry no chunks. Blocking work runs in threads, so the event loop
    keeps serving other calls.
    """
    reference = refs.parse(ref) if ref else None
    if url:
        async for chunk in chunks:
            if chunk:
                raise InvalidArgument("ImportImage: an import from a URL carries no tar chunks")
        return await asyncio.to_thread(storage.import_url, url, reference, config)
    upload = await asyncio.to_thread(storage.begin_import)
    await uploads.fill(upload, chunks)
    return await asyncio.to_thread(storage.commit_import, upload, reference, config)
