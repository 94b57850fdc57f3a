"""Images as recorded: lookup by name or id, tags, removal, prune, history, and save as an archive.

What a caller may rely on: an image is recorded in one transaction with all its layers and tags
(:meth:`Images.record`), so no one sees half an image; :meth:`Images.get` resolves names the way
Docker does (a name wins over an id prefix); removing or pruning images reclaims their layers before
it returns. Errors: NotFound for an unknown image, InvalidArgument for a malformed or ambiguous
reference, FailedPrecondition for an image a snapshot still needs.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import IO

import structlog

from teu_api import prunefilter
from teu_api.errors import Internal, InvalidArgument, NotFound
from teu_storage import imagearchive, imagespec, refs
from teu_storage.gc import Collector
from teu_storage.layerstore import LayerStore
from teu_storage.metadata import Image, NewImage, Store

__all__ = ["HistoryEntry", "Images"]

log = structlog.get_logger()


@dataclass(frozen=True)
class HistoryEntry:
    """One step of an image's history (newest first in :meth:`Images.history`)."""

    id: str
    created_at: int
    created_by: str
    size: int
    comment: str


class Images:
    """The images of ``store``, whose layers are in ``layers`` and are reclaimed by ``gc``."""

    def __init__(self, store: Store, layers: LayerStore, gc: Collector) -> None:
        self._store = store
        self._layers = layers
        self._gc = gc

    def get(self, ref: str) -> Image:
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

    def by_id(self, image_id: str) -> Image:
        """The image with full id ``image_id``, which the caller knows is recorded (Internal if not)."""
        image = self._store.image(image_id)
        if image is None:
            raise Internal(f"image {image_id} vanished from the store")
        return image

    def config(self, image_id: str) -> bytes:
        """The stored config bytes of ``image_id`` (whose sha256 is the id); NotFound if there is none."""
        raw = self._store.config(image_id)
        if raw is None:
            raise NotFound(f"No such image: {image_id}")
        return raw

    def all(self) -> list[Image]:
        """Every image, newest first."""
        return self._store.images()

    def record(self, images: Sequence[NewImage]) -> list[Image]:
        """Records ``images`` (their layers added and pinned) with their refs, in one transaction."""
        self._store.add_images(images)
        return [self.by_id(i.id) for i in images]

    def tag(self, source: str, target: str) -> Image:
        """Adds reference ``target`` to image ``source``; NotFound / InvalidArgument as :meth:`get` and parse."""
        reference = refs.parse(target)
        image = self.get(source)
        self._store.tag(str(reference), image.id)
        log.info("image_tagged", image_id=image.id, ref=str(reference))
        return self.by_id(image.id)

    def remove(self, ref: str, force: bool) -> tuple[list[str], list[str]]:
        """Untags ``ref`` (every tag when ``ref`` is an id) and deletes the image once nothing names it.

        Returns (refs untagged, image ids deleted). FailedPrecondition if a snapshot uses the image
        and it would lose its last name, unless ``force`` (then only the names go).
        """
        image = self.get(ref)
        named = str(refs.parse(ref)) if self._tagged(ref) == image.id else None
        untagged, deleted = self._store.remove_image(image.id, [named] if named else None, force)
        if deleted:
            self._gc.collect()
        log.info("image_removed", image_id=image.id, untagged=untagged, deleted=deleted)
        return untagged, [image.id] if deleted else []

    def prune(self, everything: bool, filters: Sequence[str] = ()) -> tuple[list[str], int]:
        """Deletes unused images (untagged ones, or all with ``everything``; of those, the ones matching
        every Docker prune filter: until=, label=, label!=) and then unreachable layers.

        Returns (image ids deleted, bytes reclaimed).
        """
        kept = prunefilter.prune_filter(filters, time.time_ns())  # refuses a filter it does not know first
        chosen = (lambda created, config: kept(created, imagespec.parse_config(config).labels)) if filters else None
        deleted = self._store.prune(everything, chosen)
        reclaimed = self._gc.collect()
        log.info("images_pruned", deleted=len(deleted), reclaimed=reclaimed)
        return deleted, reclaimed

    def history(self, ref: str) -> list[HistoryEntry]:
        """The history of image ``ref``, newest first; steps of images still stored carry their ids."""
        image = self.get(ref)
        steps = imagespec.history(self.config(image.id), len(image.layers))
        ids = self._step_ids(image, len(steps))
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

    def _step_ids(self, image: Image, steps: int) -> list[str]:
        """The id of each history step (oldest first) that is where ``image`` or a stored ancestor ends."""
        ids = [""] * steps
        current: Image | None = image
        seen: set[str] = set()
        while current is not None and current.id not in seen:
            seen.add(current.id)
            own = len(imagespec.history(self.config(current.id), len(current.layers)))
            if 0 < own <= len(ids) and not ids[own - 1]:
                ids[own - 1] = current.id
            current = self._store.image(current.parent) if current.parent else None
        return ids

    def save(self, names: Sequence[str], fmt: str, out: IO[bytes]) -> None:
        """Writes images ``names`` as one archive ("docker-archive" or "oci-archive") to ``out``."""
        fmt = fmt or "docker-archive"
        if fmt not in imagearchive.FORMATS:
            raise InvalidArgument(f"unknown archive format {fmt!r}: want one of {', '.join(imagearchive.FORMATS)}")
        if not names:
            raise InvalidArgument("save: no images named")
        items = []
        for name in names:
            image = self.get(name)
            tagged = self._tagged(name) == image.id
            items.append(
                imagearchive.SaveItem(
                    image_id=image.id,
                    config=self.config(image.id),
                    layers=image.layers,
                    refs=(str(refs.parse(name)),) if tagged else (),
                    mtime=image.created_at // 1_000_000_000,
                )
            )
        with self._layers.pinning() as pins:
            for item in items:
                self._layers.pin_existing(item.layers, pins)
            imagearchive.write_archive(items, fmt, self._layers.tar, out)

    def _tagged(self, ref: str) -> str | None:
        try:
            return self._store.tagged(str(refs.parse(ref)))
        except InvalidArgument:
            return None
