"""The storage engine: images made of shared unpacked layers, and overlay snapshots over them.

State directory layout::

    layers/<hex>/           one unpacked layer per diff id (sha256 of its tar), shared by images,
                            in overlay form (whiteouts are 0:0 char devices); see layers.py
    l/<short>               short links to layer dirs, named in overlay mount options
    tarsplit/<hex>.gz       what rebuilds each layer's exact tar for save (tarsplit.py)
    snapshots/<key>/{upper,work,init}   see snapshots.py
    volumes/<name>/{volume.json,_data}  see volumes.py
    tmp/                    uploads and half-made layers; emptied at start-up
    meta.db                 SQLite metadata, see metadata.py

:class:`Storage` opens that directory and composes the parts, each with one job: the layer store
(layerstore.py), the garbage collector (gc.py), image records (images.py), imports, loads and
commits (imports.py), snapshots (snapshots.py), the container filesystem they hold (containerfs.py),
registry pulls (pull.py) and pushes (push.py), and volumes (volumes.py). Its methods are what the gRPC adapter (service.py)
calls; each says which part does the work.

Crash safety: a layer is unpacked in tmp/ and renamed into layers/ whole; an image row appears in
one transaction with all its layers and tags. Garbage collection then removes layers no image
reaches, at start-up and after RemoveImage/Prune, so a crash at any point leaves no half image and,
after the next start, no orphan data. Operations in flight pin the layers they have unpacked but not
yet recorded, and GC decides while holding the layer store still, so it never removes a layer about
to be recorded.

Every method is blocking; the gRPC adapter runs them in threads. ``import_image`` is the one async
entry point, because it consumes the client's stream.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from teu_api.errors import InvalidArgument, NotFound
from teu_common.journal import Event, Retention
from teu_storage import diff, imports, refs
from teu_storage.containerfs import ContainerFS
from teu_storage.credentials import Credentials
from teu_storage.gc import Collector
from teu_storage.images import HistoryEntry, Images
from teu_storage.imagespec import ImageConfig
from teu_storage.imports import BuildStep, Importer
from teu_storage.layerstore import LayerStore
from teu_storage.metadata import Image, Store
from teu_storage.pull import Puller
from teu_storage.push import Pusher
from teu_storage.remote import Emit
from teu_storage.snapshots import Mount, Snapshots
from teu_storage.volumes import Volume, Volumes

__all__ = ["Storage", "StorageInfo"]


@dataclass(frozen=True)
class StorageInfo:
    """What GetStorageInfo reports."""

    driver: str
    images: int
    snapshots: int
    root: str


class Storage:
    """An open store rooted at one state directory: its parts, and the calls the gRPC adapter makes."""

    def __init__(self, root: Path, store: Store) -> None:
        self.root = root
        self.tmp = root / "tmp"
        self.store = store
        self.layers = LayerStore(root, self.tmp, store)
        self.gc = Collector(store, self.layers, root / "snapshots")
        self.images = Images(store, self.layers, self.gc)
        self.snapshots = Snapshots(root / "snapshots", self.tmp, store, self.images, self.layers.dirs)
        self.importer = Importer(self.layers, self.images, self.snapshots, self.gc)
        self.fs = ContainerFS(self.snapshots)
        self.puller = Puller(self.layers, self.images, self.gc)
        self.pusher = Pusher(self.layers, self.images)
        self.volumes = Volumes(root / "volumes", self.tmp)

    @classmethod
    def open(cls, root: Path) -> Storage:
        """Opens the store at ``root``, creating it if needed and clearing what a crash left behind."""
        root.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(root / "tmp", ignore_errors=True)
        for sub in ("layers", "snapshots", "tmp", "volumes"):
            (root / sub).mkdir(mode=0o700, exist_ok=True)
        storage = cls(root, Store.open(root / "meta.db", Retention.from_env()))
        storage.gc.sweep_snapshots()
        storage.gc.collect()
        return storage

    def close(self) -> None:
        """Closes the metadata database."""
        self.store.close()

    def info(self) -> StorageInfo:
        """Driver, counts and root of the store."""
        images, snaps = self.store.counts()
        return StorageInfo(driver="overlay", images=images, snapshots=snaps, root=str(self.root))

    # --- images (images.py, imports.py) -----------------------------------------------------

    # Each change is told in the journal (image and volume events, Docker's spelling) by a transaction
    # of its own right after the change's (see docs/architecture.md, Events, for that gap).

    async def import_image(self, ref: str, config: ImageConfig, chunks: AsyncIterable[bytes], url: str = "") -> Image:
        """See :func:`imports.import_image`."""
        image = await imports.import_image(self.importer, ref, config, chunks, url)
        self.store.record(Event("image", "import", image.id, {"name": ref or image.id}))
        return image

    def commit(self, key: str, ref: str, config: ImageConfig, message: str, author: str, step: BuildStep | None = None) -> Image:
        """See :meth:`Importer.commit`."""
        image = self.importer.commit(key, ref, config, message, author, step)
        self.store.record(Event("container", "commit", key, {"imageID": image.id, "imageRef": ref, "comment": message}))
        return image

    def configure(self, image_id: str, config: ImageConfig, step: BuildStep) -> Image:
        """See :meth:`Importer.configure`."""
        return self.importer.configure(image_id, config, step)

    def built_for(self, key: str) -> Image:
        """The newest image a build recorded for cache ``key``; NotFound if none."""
        image = self.store.built_for(key)
        if image is None:
            raise NotFound(f"no cached build step {key[:19]}")
        return image

    def load(self, tar_path: Path) -> list[Image]:
        """See :meth:`Importer.load`."""
        images = self.importer.load(tar_path)
        self.store.record(*(Event("image", "load", i.id, {"name": (i.repo_tags or (i.id,))[0]}) for i in images))
        return images

    def get_image(self, ref: str) -> Image:
        """See :meth:`Images.get`."""
        return self.images.get(ref)

    def list_images(self) -> list[Image]:
        """See :meth:`Images.all`."""
        return self.images.all()

    def tag(self, source: str, target: str) -> Image:
        """See :meth:`Images.tag`."""
        image = self.images.tag(source, target)
        self.store.record(Event("image", "tag", image.id, {"name": str(refs.parse(target))}))
        return image

    def remove_image(self, ref: str, force: bool) -> tuple[list[str], list[str]]:
        """See :meth:`Images.remove`."""
        image_id = self.images.get(ref).id
        untagged, deleted = self.images.remove(ref, force)
        told = [Event("image", "untag", image_id, {"name": r}) for r in untagged]
        self.store.record(*told, *(Event("image", "delete", i, {"name": i}) for i in deleted))
        return untagged, deleted

    def prune(self, everything: bool, filters: Sequence[str] = ()) -> tuple[list[str], int]:
        """See :meth:`Images.prune`."""
        deleted, reclaimed = self.images.prune(everything, filters)
        self.store.record(*(Event("image", "delete", i, {"name": i}) for i in deleted))
        return deleted, reclaimed

    def history(self, ref: str) -> list[HistoryEntry]:
        """See :meth:`Images.history`."""
        return self.images.history(ref)

    def save(self, names: Sequence[str], fmt: str, out: IO[bytes]) -> None:
        """See :meth:`Images.save`."""
        self.images.save(names, fmt, out)
        self.store.record(*(Event("image", "save", self.images.get(n).id, {"name": n}) for n in names))

    # --- snapshots (snapshots.py, containerfs.py) -------------------------------------------

    def prepare_snapshot(self, key: str, image_id: str) -> list[Mount]:
        """See :meth:`Snapshots.prepare`."""
        return self.snapshots.prepare(key, image_id)

    def snapshot_mounts(self, key: str) -> list[Mount]:
        """See :meth:`Snapshots.mounts`."""
        return self.snapshots.mounts(key)

    def remove_snapshot(self, key: str) -> bool:
        """See :meth:`Snapshots.remove`."""
        return self.snapshots.remove(key)

    def diff(self, key: str) -> list[diff.Change]:
        """See :meth:`ContainerFS.diff`."""
        return self.fs.diff(key)

    def export(self, key: str, out: IO[bytes]) -> None:
        """See :meth:`ContainerFS.export`."""
        self.fs.export(key, out)

    def copy_from(self, key: str, path: str, out: IO[bytes]) -> None:
        """See :meth:`ContainerFS.copy_from`."""
        self.fs.copy_from(key, path, out)

    def copy_to(self, key: str, path: str, tar_path: Path, make_parents: bool = False) -> int:
        """See :meth:`ContainerFS.copy_to`."""
        return self.fs.copy_to(key, path, tar_path, make_parents)

    # --- registries (pull.py, push.py) --------------------------------------------------------

    def pull(self, ref: str, insecure: bool, emit: Emit, *, credentials: Credentials | None = None) -> Image:
        """See :meth:`Puller.pull`."""
        image = self.puller.pull(ref, insecure, emit, credentials=credentials)
        name = _event_name(ref)
        self.store.record(Event("image", "pull", name, {"name": name, "imageID": image.id}))
        return image

    def push(self, ref: str, insecure: bool, emit: Emit, *, credentials: Credentials | None = None) -> str:
        """See :meth:`Pusher.push`."""
        digest = self.pusher.push(ref, insecure, emit, credentials=credentials)
        name = _event_name(ref)
        self.store.record(Event("image", "push", name, {"name": name, "digest": digest}))
        return digest

    def create_volume(
        self, name: str, labels: Mapping[str, str], options: Mapping[str, str], anonymous: bool
    ) -> tuple[Volume, bool]:
        """volumes.py: the volume, made unless it exists; whether it was made now."""
        volume, made = self.volumes.create(name, labels, options, anonymous)
        if made:
            self.store.record(Event("volume", "create", volume.name, {**volume.labels, "driver": "local"}))
        return volume, made

    def get_volume(self, name: str) -> Volume:
        """volumes.py."""
        return self.volumes.get(name)

    def list_volumes(self) -> list[Volume]:
        """volumes.py."""
        return self.volumes.list()

    def remove_volume(self, name: str) -> bool:
        """volumes.py."""
        removed = self.volumes.remove(name)
        if removed:
            self.store.record(Event("volume", "destroy", name, {"driver": "local"}))
        return removed

    def fill_volume(self, name: str, key: str, path: str) -> bool:
        """containerfs.py: a plain volume that holds nothing gets what snapshot ``key`` holds at
        ``path``; False if it was not empty, not plain, or the path is no directory there."""
        volume = self.volumes.get(name)
        if not self.volumes.is_empty(volume):
            return False
        return self.fs.fill(key, path, volume.data, self.tmp)

    def snapshot_sizes(self, keys: Sequence[str]) -> dict[str, int]:
        """Bytes each snapshot's upper dir takes (disk blocks, as du counts), for those that exist."""
        out = {}
        for key in keys:
            try:
                upper = self.snapshots.get(key).upper
            except NotFound:
                continue
            total = 0
            for top, _dirs, files in os.walk(upper):
                for name in files:
                    try:
                        total += os.lstat(os.path.join(top, name)).st_blocks * 512
                    except FileNotFoundError:
                        continue
            out[key] = total
        return out


def _event_name(ref: str) -> str:
    """How an image event names ``ref``: as stored ("busybox:latest"), or as given (a digest reference)."""
    try:
        return str(refs.parse(ref))
    except InvalidArgument:
        return ref
