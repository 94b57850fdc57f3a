"""Making images from local bytes: a tar stream or URL (import), an image archive (load), a
container's changes (commit).

What a caller may rely on: every layer is verified against its digest and unpacked through the same
safe extraction before anything is recorded; the images of one call are recorded in one
transaction; on any failure nothing is recorded, and the layers unpacked for it are reclaimed
(right away for a load, by the next collection otherwise). InvalidArgument for a bad tar or archive.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from collections.abc import AsyncIterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import structlog

from teu_api.errors import InvalidArgument
from teu_common import fetch
from teu_storage import imagearchive, imagespec, ocispec, refs, uploads
from teu_storage.gc import Collector
from teu_storage.images import Images
from teu_storage.imagespec import HistoryItem, ImageConfig, build_config
from teu_storage.layerstore import LayerStore
from teu_storage.metadata import Image, NewImage
from teu_storage.snapshots import Snapshots

__all__ = ["BuildStep", "Importer", "import_image"]

log = structlog.get_logger()


class Importer:
    """Adds images to ``images``, their layers to ``layers``; commits read ``snapshots``; ``gc`` reclaims refused loads."""

    def __init__(self, layers: LayerStore, images: Images, snapshots: Snapshots, gc: Collector) -> None:
        self._layers = layers
        self._images = images
        self._snapshots = snapshots
        self._gc = gc

    def begin_import(self) -> uploads.Upload:
        """Starts receiving a tar stream; pass the upload to :meth:`commit_import` or discard it."""
        return uploads.Upload(self._layers.tmp)

    def commit_import(self, upload: uploads.Upload, ref: refs.Reference | None, config: ImageConfig, comment: str = "") -> Image:
        """Unpacks the received tar as a layer and records a one-layer image, tagged ``ref`` if given.

        Consumes ``upload`` whatever happens. InvalidArgument for a bad tar, after which no layer,
        temp file or database row is left.
        """
        with self._layers.pinning() as pins:
            try:
                diff_id = upload.finish()
                size = self._layers.add(upload.path, diff_id, pins)
            finally:
                upload.discard()
            created = time.time_ns()
            raw = build_config(config, [diff_id], created)
            new = NewImage(ocispec.digest(raw), raw, created, [(diff_id, size)], (str(ref),) if ref else (), comment=comment)
            [image] = self._images.record([new])
        log.info("image_imported", image_id=image.id, ref=str(ref) if ref else None, layer=diff_id, size=size)
        return image

    def import_url(self, url: str, ref: refs.Reference | None, config: ImageConfig) -> Image:
        """Downloads the tar at http(s) ``url`` and imports it as :meth:`commit_import` does."""
        upload = self.begin_import()
        try:
            fetch.download(url, upload.write)
        except BaseException:
            upload.discard()
            raise
        return self.commit_import(upload, ref, config, comment=f"Imported from {url}")

    def commit(self, key: str, ref: str, config: ImageConfig, message: str, author: str, step: BuildStep | None = None) -> Image:
        """Makes a new image: snapshot ``key``'s image plus one layer of its writable layer's changes.

        The layer tar is written from the upper dir (whiteouts as OCI ``.wh.`` entries), then unpacked
        like any imported layer, so the layer dir is exactly what its tar-split rebuilds. ``step``: the
        build step the layer is, with the history of the steps before it that added none.
        """
        step = step or BuildStep()
        reference = refs.parse(ref) if ref else None
        snapshot = self._snapshots.get(key)
        parent = snapshot.image
        if step.created_by and _empty_dir(snapshot.upper):
            # a build step that changed no file adds no layer, as Docker's builders
            nothing = BuildStep("", (*step.empty_steps, step.created_by), step.key)
            return self.configure(parent.id, config, nothing)
        with self._layers.pinning() as pins:
            self._layers.pin_existing(parent.layers, pins)
            tar_path, diff_id = self._layers.write_tar(snapshot.upper, "commit-")
            try:
                size = self._layers.add(tar_path, diff_id, pins, trusted=True)
            finally:
                tar_path.unlink(missing_ok=True)
            created = time.time_ns()
            raw = self._commit_config(parent, diff_id, config, created, message, author, step)
            sizes = self._layers.sizes()
            layers = [(d, sizes.get(d, 0)) for d in parent.layers] + [(diff_id, size)]
            named = (str(reference),) if reference else ()
            new = NewImage(
                ocispec.digest(raw), raw, created, layers, named, parent=parent.id, comment=message, build_key=step.key
            )
            [image] = self._images.record([new])
        log.info("image_committed", image_id=image.id, key=key, parent=parent.id, layer=diff_id, size=size)
        return image

    def configure(self, image_id: str, config: ImageConfig, step: BuildStep) -> Image:
        """Makes a new image of image ``image_id``'s layers under ``config``, its history longer by
        ``step.empty_steps`` (steps that added no layer); ``image_id`` is recorded as its parent.
        An empty ``image_id`` is Docker's ``scratch``: an image of no layer."""
        parent = self._images.get(image_id) if image_id else None
        layer_ids = parent.layers if parent else ()
        with self._layers.pinning() as pins:
            self._layers.pin_existing(layer_ids, pins)
            created = time.time_ns()
            parent_raw = self._images.config(parent.id) if parent else None
            earlier = imagespec.history(parent_raw, len(layer_ids)) if parent_raw else []
            steps = [*earlier, *_empty(step, created)]
            platform = imagespec.platform_of(parent_raw) if parent_raw else None
            raw = build_config(config, layer_ids, created, steps=steps, base_platform=platform)
            sizes = self._layers.sizes()
            layers = [(d, sizes.get(d, 0)) for d in layer_ids]
            new = NewImage(ocispec.digest(raw), raw, created, layers, parent=image_id, build_key=step.key)
            [image] = self._images.record([new])
        log.info("image_configured", image_id=image.id, parent=image_id)
        return image

    def _commit_config(
        self, parent: Image, diff_id: str, config: ImageConfig, created: int, message: str, author: str, step: BuildStep
    ) -> bytes:
        """The config of ``parent`` plus layer ``diff_id``: its history longer by the step's empty
        steps and the layer's own, its platform kept."""
        parent_raw = self._images.config(parent.id)
        steps = [
            *imagespec.history(parent_raw, len(parent.layers)),
            *_empty(step, created),
            HistoryItem(
                created=imagespec.rfc3339(created),
                created_by=step.created_by or (f"commit: {message}" if message else "commit"),
                comment=message,
                author=author,
            ),
        ]
        return build_config(
            config,
            [*parent.layers, diff_id],
            created,
            steps=steps,
            base_platform=imagespec.platform_of(parent_raw),
            author=author,
        )

    def load(self, tar_path: Path) -> list[Image]:
        """Loads every image of a docker-archive or OCI-layout tar (already spooled to ``tar_path``).

        All images are recorded in one transaction once every layer has been verified and unpacked;
        on any error nothing is recorded and the layers unpacked so far are collected. An OCI
        multi-platform index loads this host's platform (ocispec.pick_platform), else NotFound.
        """
        try:
            with self._layers.pinning() as pins:
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
                loaded = [
                    NewImage(
                        item.image_id,
                        item.config,
                        imagespec.parse_created(imagespec.created_field(item.config)) or now,
                        [(layer.diff_id, sizes[layer.diff_id]) for layer in item.layers],
                        tuple(item.refs),
                    )
                    for item in items
                ]
                images = self._images.record(loaded)
        except BaseException:
            self._gc.collect()  # layers of a refused archive go right away
            raise
        log.info("images_loaded", images=[i.id for i in images])
        return images

    def _load_layer(self, source: imagearchive.Archive, layer: imagearchive.LayerRef, pins: list[str]) -> int:
        fd, name = tempfile.mkstemp(prefix="load-", suffix=".tar", dir=self._layers.tmp)
        tar_path = Path(name)
        try:
            with os.fdopen(fd, "wb") as out, source.open(layer.member) as src:
                blob, diff_id = imagearchive.spool_layer(src, out, uploads.MAX_UPLOAD)
            if layer.blob_digest is not None and blob != layer.blob_digest:
                raise InvalidArgument(f"invalid archive: digest mismatch for layer blob {layer.blob_digest}")
            if diff_id != layer.diff_id:
                raise InvalidArgument(f"invalid archive: layer {layer.member} has digest {diff_id}, not {layer.diff_id}")
            return self._layers.add(tar_path, diff_id, pins)
        finally:
            tar_path.unlink(missing_ok=True)


@dataclass(frozen=True)
class BuildStep:
    """What a build says of the image a commit or configure makes: the history line of its layer
    (``created_by``), those of the steps before it that added no layer, and its cache ``key``."""

    created_by: str = ""
    empty_steps: Sequence[str] = ()
    key: str = ""


def _empty_dir(path: Path) -> bool:
    with os.scandir(path) as entries:
        return next(entries, None) is None


def _empty(step: BuildStep, created: int) -> list[HistoryItem]:
    """History entries, adding no layer, of ``step``'s empty steps."""
    return [HistoryItem(created=imagespec.rfc3339(created), created_by=line, empty_layer=True) for line in step.empty_steps]


async def import_image(importer: Importer, ref: str, config: ImageConfig, chunks: AsyncIterable[bytes], url: str = "") -> Image:
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
        return await asyncio.to_thread(importer.import_url, url, reference, config)
    upload = await asyncio.to_thread(importer.begin_import)
    await uploads.fill(upload, chunks)
    return await asyncio.to_thread(importer.commit_import, upload, reference, config)
