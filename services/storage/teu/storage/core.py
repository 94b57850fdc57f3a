"""The storage engine: images made of shared unpacked layers, and overlay snapshots over them.

State directory layout::

    layers/<hex>/           one unpacked layer per diff id (sha256 of its tar), shared by images;
                            only complete layers are here: they are unpacked in tmp/ and renamed in
    snapshots/<key>/{upper,work}
    tmp/                    uploads and half-made layers; emptied at start-up
    meta.db                 SQLite metadata, see store.py

Every method is blocking; the gRPC adapter runs them in threads. ``import_image`` is the one async
entry point, because it consumes the client's stream.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import AsyncIterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import structlog

from teu.errors import Internal, InvalidArgument, NotFound
from teu.storage import archive, refs, snapshots
from teu.storage.oci import ImageConfig, build_config
from teu.storage.snapshots import Mount
from teu.storage.store import Image, Store

__all__ = ["Storage", "StorageInfo", "Upload", "import_image"]

log = structlog.get_logger()

# The spooled tar may carry headers and padding on top of the content archive.MAX_TOTAL_SIZE caps.
MAX_UPLOAD = archive.MAX_TOTAL_SIZE + (1 << 30)


@dataclass(frozen=True)
class StorageInfo:
    """What GetStorageInfo reports."""

    driver: str
    images: int
    snapshots: int
    root: str


class Upload:
    """A tar stream being received: spooled to a file in tmp/ and hashed as it arrives."""

    def __init__(self, tmp: Path) -> None:
        fd, name = tempfile.mkstemp(prefix="upload-", suffix=".tar", dir=tmp)
        self.path = Path(name)
        self._file: BinaryIO = os.fdopen(fd, "wb")
        self._hash = hashlib.sha256()
        self._size = 0

    def write(self, chunk: bytes) -> None:
        """Appends ``chunk``; InvalidArgument once the stream exceeds the size cap."""
        self._size += len(chunk)
        if self._size > MAX_UPLOAD:
            raise InvalidArgument(f"image tar exceeds {MAX_UPLOAD} bytes")
        self._file.write(chunk)
        self._hash.update(chunk)

    def finish(self) -> str:
        """Closes the spool file and returns the diff id, "sha256:<hex>" of every byte received."""
        self._file.close()
        return "sha256:" + self._hash.hexdigest()

    def discard(self) -> None:
        """Deletes the spool file; safe to call more than once."""
        self._file.close()
        self.path.unlink(missing_ok=True)


class Storage:
    """An open store rooted at one state directory."""

    def __init__(self, root: Path, store: Store) -> None:
        self.root = root
        self.layers = root / "layers"
        self.snapshots = root / "snapshots"
        self.tmp = root / "tmp"
        self._store = store
        # Serialises "is the layer there? rename it in" between concurrent imports of one layer.
        self._layer_lock = threading.Lock()

    @classmethod
    def open(cls, root: Path) -> Storage:
        """Opens the store at ``root``, creating it if needed and clearing what a crash left behind."""
        root.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(root / "tmp", ignore_errors=True)
        for sub in ("layers", "snapshots", "tmp"):
            (root / sub).mkdir(mode=0o700, exist_ok=True)
        storage = cls(root, Store.open(root / "meta.db"))
        storage._sweep_snapshot_dirs()
        return storage

    def close(self) -> None:
        """Closes the metadata database."""
        self._store.close()

    def begin_import(self) -> Upload:
        """Starts receiving a tar stream; pass the upload to :meth:`commit_import` or discard it."""
        return Upload(self.tmp)

    def commit_import(self, upload: Upload, ref: refs.Reference | None, config: ImageConfig) -> Image:
        """Unpacks the received tar as a layer and records a one-layer image, tagged ``ref`` if given.

        Consumes ``upload`` whatever happens. InvalidArgument for a bad tar, after which no layer,
        temp file or database row is left.
        """
        try:
            diff_id = upload.finish()
            size = self._ensure_layer(upload.path, diff_id)
        finally:
            upload.discard()
        created = time.time_ns()
        raw = build_config(config, [diff_id], created)
        image_id = "sha256:" + hashlib.sha256(raw).hexdigest()
        self._store.add_image(image_id, raw, created, [(diff_id, size)], str(ref) if ref else None)
        log.info("image_imported", image_id=image_id, ref=str(ref) if ref else None, layer=diff_id, size=size)
        return self._image(image_id)

    def get_image(self, ref: str) -> Image:
        """Finds an image by "name[:tag]", full id or unique id prefix (with or without "sha256:").

        A name wins over an id prefix, as in Docker. NotFound if nothing matches, InvalidArgument
        for an empty ref or an ambiguous prefix.
        """
        if not ref:
            raise InvalidArgument("empty image reference")
        try:
            image_id = self._store.tagged(str(refs.parse(ref)))
        except InvalidArgument:
            image_id = None
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

    def prepare_snapshot(self, key: str, image_id: str) -> list[Mount]:
        """Creates writable snapshot ``key`` over image ``image_id`` (a full id) and returns its mounts.

        InvalidArgument for a malformed key, NotFound for an unknown image, AlreadyExists for a used key.
        """
        snapshots.check_key(key)
        image = self._store.image(image_id)
        if image is None:
            raise NotFound(f"No such image: {image_id}")
        snapshot_dir = self.snapshots / key
        self._store.add_snapshot(key, image_id, time.time_ns(), lambda: snapshots.create(snapshot_dir))
        log.info("snapshot_prepared", key=key, image_id=image_id)
        return [self._mount(image, snapshot_dir)]

    def snapshot_mounts(self, key: str) -> list[Mount]:
        """The mounts of existing snapshot ``key``; NotFound if there is none."""
        snapshots.check_key(key)
        image_id = self._store.snapshot_image(key)
        if image_id is None:
            raise NotFound(f"No such snapshot: {key}")
        return [self._mount(self._image(image_id), self.snapshots / key)]

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

    def info(self) -> StorageInfo:
        """Driver, counts and root of the store."""
        images, snaps = self._store.counts()
        return StorageInfo(driver="overlay", images=images, snapshots=snaps, root=str(self.root))

    def _ensure_layer(self, tar_path: Path, diff_id: str) -> int:
        """Makes sure layers/<hex> holds the unpacked tar and returns its size."""
        layer_dir = self.layers / diff_id.removeprefix("sha256:")
        size = self._store.layer_size(diff_id)
        if size is not None and layer_dir.is_dir():
            return size  # same bytes as a tar already checked and unpacked
        staging = Path(tempfile.mkdtemp(prefix="layer-", dir=self.tmp))
        try:
            stats = archive.extract(tar_path, staging)
            with self._layer_lock:
                if not layer_dir.exists():
                    os.rename(staging, layer_dir)
            return stats.size
        finally:
            if staging.exists():
                shutil.rmtree(staging)

    def _image(self, image_id: str) -> Image:
        image = self._store.image(image_id)
        if image is None:
            raise Internal(f"image {image_id} vanished from the store")
        return image

    def _mount(self, image: Image, snapshot_dir: Path) -> Mount:
        lower = [self.layers / diff_id.removeprefix("sha256:") for diff_id in reversed(image.layers)]
        return snapshots.overlay_mount(lower, snapshot_dir)

    def _sweep_snapshot_dirs(self) -> None:
        """Removes snapshot dirs no row owns (a crash in the middle of a create or remove)."""
        keys = self._store.snapshot_keys()
        for entry in self.snapshots.iterdir():
            if entry.name not in keys:
                log.warning("orphan_snapshot_removed", path=str(entry))
                shutil.rmtree(entry)


async def import_image(
    storage: Storage, ref: str, config: ImageConfig, chunks: AsyncIterable[bytes]
) -> Image:
    """Receives a tar stream from ``chunks`` and imports it as a one-layer image tagged ``ref``.

    An empty ``ref`` leaves the image untagged; a malformed one is refused before any byte is read.
    Blocking work runs in threads, so the event loop keeps serving other calls.
    """
    reference = refs.parse(ref) if ref else None
    upload = await asyncio.to_thread(storage.begin_import)
    try:
        async for chunk in chunks:
            await asyncio.to_thread(upload.write, chunk)
    except BaseException:
        upload.discard()  # directly: the task may be cancelled, and this is quick
        raise
    return await asyncio.to_thread(storage.commit_import, upload, reference, config)
