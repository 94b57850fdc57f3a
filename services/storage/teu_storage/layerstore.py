"""The layer store: adding layers from tars, pinning them while in use, and reading their tars back.

A layer is known by its diff id (the sha256 of its uncompressed tar) and lives unpacked under
layers/ (layers.py: the on-disk side), with its row in the metadata database. What a caller may
rely on:

- :meth:`LayerStore.add` unpacks a verified tar safely (a hostile tar is InvalidArgument and leaves
  nothing); a layer already stored is not unpacked again.
- A layer added or pinned inside :meth:`LayerStore.pinning` stays on disk until the block ends,
  whatever the garbage collector (gc.py) runs meanwhile: it takes :meth:`LayerStore.exclusive` to
  see the pins, and nothing is installed or pinned while it holds it.
- :meth:`LayerStore.tar` gives a layer's exact original bytes (rebuilt from its tar-split) and
  checks them as they are read.
- Registry blobs known to hold a layer (a cache for push) are recorded here, beside their layer.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import threading
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, cast

from teu_api.errors import FailedPrecondition, Internal
from teu_storage import archive, tarsplit, tarwriter
from teu_storage.imagearchive import LayerSource
from teu_storage.layers import LayerDirs
from teu_storage.metadata import Blob, Store
from teu_storage.threadio import CHUNK, HashingFile

__all__ = ["LayerStore"]


class LayerStore:
    """Layers of the store rooted at ``root``, recorded in ``store``; temporary files go to ``tmp``."""

    def __init__(self, root: Path, tmp: Path, store: Store) -> None:
        self.dirs = LayerDirs(root, tmp)
        self.tmp = tmp
        self._store = store
        # Guards the layer dirs and the pins: install, pin/unpin and the GC mark+sweep.
        self._lock = threading.Lock()
        self._pins: Counter[str] = Counter()

    @contextmanager
    def pinning(self) -> Iterator[list[str]]:
        """Layers pinned in the body (by add, pin_present, pin_existing into the list) are released at its end."""
        pins: list[str] = []
        try:
            yield pins
        finally:
            with self._lock:
                self._pins.subtract(pins)
                self._pins = +self._pins  # drops the zero counts

    @contextmanager
    def exclusive(self) -> Iterator[frozenset[str]]:
        """Holds the layers still: nothing is installed or pinned in the body; yields the pinned diff ids."""
        with self._lock:
            yield frozenset(self._pins)

    def pin_present(self, diff_id: str, pins: list[str]) -> int | None:
        """Pins layer ``diff_id`` if it is already unpacked and recorded; its size, or None if it is not."""
        with self._lock:
            size = self._store.layer_size(diff_id)
            if size is None or not self.dirs.exists(diff_id):
                return None
            self._pin(diff_id, pins)
            return size

    def pin_existing(self, diff_ids: Sequence[str], pins: list[str]) -> None:
        """Pins layers that must be present (Internal if one is missing)."""
        with self._lock:
            missing = [d for d in diff_ids if not self.dirs.exists(d)]
            if missing:
                raise Internal(f"layers {missing} are missing from the store")
            for diff_id in diff_ids:
                self._pin(diff_id, pins)

    def add(self, tar_path: Path, diff_id: str, pins: list[str], trusted: bool = False) -> int:
        """Makes sure layers/<hex> holds the unpacked tar at ``tar_path`` (whose digest is ``diff_id``),
        pinned in ``pins``; returns its unpacked size.

        The tar is extracted safely (a hostile one is InvalidArgument, leaving nothing); device
        nodes are kept only if ``trusted`` (Teu wrote the tar itself).
        """
        present = self.pin_present(diff_id, pins)
        if present is not None:
            return present  # same bytes as a tar already checked and unpacked
        staging = Path(tempfile.mkdtemp(prefix="layer-", dir=self.tmp))
        split = staging.with_suffix(".split")
        try:
            options = archive.Options(whiteouts=True, devices=trusted, record=True)
            stats = archive.extract(tar_path, staging, options)
            tarsplit.write(tar_path, stats.segments, split)
            with self._lock:
                self.dirs.install(diff_id, staging, split)
                self._pin(diff_id, pins)
            return stats.size
        finally:
            split.unlink(missing_ok=True)
            if staging.exists():
                shutil.rmtree(staging)

    def write_tar(self, directory: Path, prefix: str) -> tuple[Path, str]:
        """Writes Teu's canonical layer tar of ``directory`` to a new file in tmp/; (its path, its diff id).

        The caller deletes the file. ``prefix`` names it, for whoever finds one after a crash.
        """
        fd, name = tempfile.mkstemp(prefix=prefix, suffix=".tar", dir=self.tmp)
        hasher = hashlib.sha256()
        try:
            with os.fdopen(fd, "wb") as out:
                tarwriter.write_layer(str(directory), cast(IO[bytes], HashingFile(out, hasher)))
        except BaseException:
            Path(name).unlink(missing_ok=True)
            raise
        return Path(name), "sha256:" + hasher.hexdigest()

    def tar(self, diff_id: str) -> LayerSource:
        """The exact tar of layer ``diff_id``, which must be pinned; finish() checks what was read.

        FailedPrecondition for a layer stored before tar-splits whose tar Teu cannot rebuild.
        """
        split = self.dirs.split(diff_id)
        layer_dir = self.dirs.path(diff_id)
        if split.exists():
            return _SplitSource(split, layer_dir, diff_id)
        # A layer stored before tar-splits: Teu's own canonical tar may still match (commits do).
        path, rebuilt = self.write_tar(layer_dir, "save-")
        if rebuilt != diff_id:
            path.unlink()
            raise FailedPrecondition(f"layer {diff_id} cannot be rebuilt byte for byte; import or load the image again")
        return _FileSource(path)

    def sizes(self) -> dict[str, int]:
        """Every recorded layer with its unpacked size."""
        return self._store.layer_sizes()

    def blobs_of(self, diff_id: str) -> list[Blob]:
        """Registry blobs known to hold layer ``diff_id``, oldest first."""
        return self._store.blobs_of(diff_id)

    def record_blobs(self, blobs: Sequence[Blob], registry: str = "", repository: str = "") -> None:
        """Records that ``blobs`` hold their layers (and, if given, were seen in ``registry``/``repository``)."""
        self._store.record_blobs(blobs, registry, repository)

    def repositories_with(self, registry: str, digest: str) -> list[str]:
        """Repositories of ``registry`` where blob ``digest`` was seen."""
        return self._store.repositories_with(registry, digest)

    def _pin(self, diff_id: str, pins: list[str]) -> None:
        """Pins ``diff_id`` for the block whose list is ``pins``; the caller holds the lock."""
        self._pins[diff_id] += 1
        pins.append(diff_id)


class _FileSource:
    """A layer tar regenerated into a temp file (layers stored before tar-splits existed)."""

    def __init__(self, path: Path) -> None:
        self.size = path.stat().st_size
        self._file = open(path, "rb")  # noqa: SIM115 - closed by finish()
        path.unlink()  # the open file keeps the data; nothing to clean up after a crash

    def chunks(self) -> Iterator[bytes]:
        """The bytes."""
        while chunk := self._file.read(CHUNK):
            yield chunk

    def finish(self) -> None:
        """Closes the file (its digest was checked when it was made)."""
        self._file.close()


class _SplitSource:
    """A layer tar rebuilt from its tar-split; its digest is checked as its last chunk goes."""

    def __init__(self, split: Path, layer_dir: Path, diff_id: str) -> None:
        self.size = tarsplit.tar_size(split)
        self._split, self._layer_dir, self._diff_id = split, layer_dir, diff_id
        self._done = False

    def chunks(self) -> Iterator[bytes]:
        """The rebuilt bytes; Internal after the last if they are not the layer's."""
        yield from tarsplit.rebuilt(self._split, self._layer_dir, self._diff_id)
        self._done = True

    def finish(self) -> None:
        """Internal unless every chunk was read (and so checked)."""
        if not self._done:
            raise Internal(f"layer {self._diff_id} was not read to its end")
