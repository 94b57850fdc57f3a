"""Unpacked layers on disk, their short links for overlay, and their tar-splits.

Layout under the state root::

    layers/<hex>/        the layer's tree as overlayfs reads a lower dir (whiteouts as 0:0 devices)
    l/<short>            -> ../layers/<hex>: what mount options name (see below)
    tarsplit/<hex>.gz    what rebuilds the layer's exact tar (tarsplit.py)

Why short links: the whole option string of an overlay mount must fit in one page (4 KiB), and the
runtime mounts it, so relative lowerdir paths (Docker's chdir trick) are not possible. A 64-hex
path under /var/lib/teu/storage/layers costs ~100 bytes per layer (~40 layers); ``l/<12 chars>``
costs ~36 (over 100 layers, Docker's limit is 128). The short name is derived from the diff id
(base32 of its first 60 bits), so it needs no bookkeeping and is the same after any restart.

Crash safety: a layer is complete once ``layers/<hex>`` exists; it is renamed in from tmp/ after its
tar-split, and its link is made after it. GC (gc.py) removes what no image reaches, so a crash
anywhere leaves, at worst, files the next start-up sweeps.
"""

from __future__ import annotations

import base64
import os
import shutil
import uuid
from pathlib import Path

from teu_api.errors import InvalidArgument

__all__ = ["LayerDirs", "remove_tree", "short_name"]


def short_name(diff_id: str) -> str:
    """The 12-character name of ``diff_id``'s link: base32 (lowercase) of its first 60 bits."""
    raw = bytes.fromhex(diff_id.removeprefix("sha256:")[:16])
    return base64.b32encode(raw).decode()[:12].lower()


class LayerDirs:
    """The on-disk side of layers; the database side is metadata.py. Not locked: layerstore.py serialises."""

    def __init__(self, root: Path, tmp: Path) -> None:
        self.dir = root / "layers"
        self.links = root / "l"
        self.splits = root / "tarsplit"
        self.tmp = tmp
        for d in (self.dir, self.links, self.splits):
            d.mkdir(mode=0o700, exist_ok=True)

    def path(self, diff_id: str) -> Path:
        """The unpacked tree of ``diff_id``."""
        return self.dir / diff_id.removeprefix("sha256:")

    def link(self, diff_id: str) -> Path:
        """The short path overlay mount options use for ``diff_id``."""
        return self.links / short_name(diff_id)

    def split(self, diff_id: str) -> Path:
        """The tar-split file of ``diff_id`` (may be missing for layers of older stores)."""
        return self.splits / (diff_id.removeprefix("sha256:") + ".gz")

    def exists(self, diff_id: str) -> bool:
        """Whether the complete tree of ``diff_id`` is in place."""
        return self.path(diff_id).is_dir()

    def install(self, diff_id: str, staging: Path, split: Path | None) -> bool:
        """Moves an unpacked ``staging`` dir (and its tar-split) in; False if the layer was already there."""
        if self.exists(diff_id):
            return False
        self._refuse_collision(diff_id)
        if split is not None:
            os.replace(split, self.split(diff_id))
        os.rename(staging, self.path(diff_id))
        self.ensure_link(diff_id)
        return True

    def _refuse_collision(self, diff_id: str) -> None:
        """A layer whose short name is a stored layer's is refused: repointing the link would swap that
        layer's content under every image and container using it (a 60-bit name can be collided)."""
        try:
            current = os.readlink(self.link(diff_id))
        except OSError:
            return
        if current != self._target(diff_id) and (self.links / current).is_dir():
            raise InvalidArgument(f"layer {diff_id} has the short name of another stored layer; refused")

    @staticmethod
    def _target(diff_id: str) -> str:
        return f"../layers/{diff_id.removeprefix('sha256:')}"

    def ensure_link(self, diff_id: str) -> None:
        """Creates (atomically, by rename) the short link of ``diff_id`` unless it is right already."""
        link = self.link(diff_id)
        target = self._target(diff_id)
        try:
            if os.readlink(link) == target:
                return
        except OSError:
            pass
        tmp_link = self.links / f".tmp-{uuid.uuid4().hex}"
        os.symlink(target, tmp_link)
        os.replace(tmp_link, link)

    def on_disk(self) -> set[str]:
        """Diff ids whose tree is present."""
        return {"sha256:" + e.name for e in os.scandir(self.dir) if e.is_dir(follow_symlinks=False)}

    def take_out(self, diff_id: str) -> Path | None:
        """Removes ``diff_id`` from view (link, split, then tree renamed into tmp/); returns what to rmtree."""
        self.link(diff_id).unlink(missing_ok=True)
        self.split(diff_id).unlink(missing_ok=True)
        path = self.path(diff_id)
        if not path.exists():
            return None
        trash = self.tmp / f"gc-{uuid.uuid4().hex}"
        os.rename(path, trash)
        return trash

    def tidy(self, live: set[str]) -> None:
        """Removes links and tar-splits that belong to no live layer, and recreates missing links."""
        wanted = {short_name(d): d for d in live}
        for entry in os.scandir(self.links):
            if entry.name not in wanted:
                os.unlink(entry.path)
        for diff_id in live:
            self.ensure_link(diff_id)
        for entry in os.scandir(self.splits):
            if "sha256:" + entry.name.removesuffix(".gz") not in live:
                os.unlink(entry.path)


def remove_tree(path: Path | None) -> None:
    """Deletes a tree taken out by :meth:`LayerDirs.take_out`."""
    if path is not None:
        shutil.rmtree(path, ignore_errors=True)
