"""Snapshots: a container's writable layer over an image, and the overlay mount that assembles its root.

Layout: ``snapshots/<key>/upper`` (the container's writes), ``snapshots/<key>/work`` (overlayfs
scratch space, same filesystem as upper) and ``snapshots/<key>/init``: the mount points the runtime
binds over (/etc/hosts, /etc/hostname, /etc/resolv.conf, /dev, /proc, /sys), as the lowest-but-one
layer, so the OCI runtime never has to create them in upper, where diff and commit would see them
(Docker's "-init" layer). Nothing here mounts anything: the runtime does that.

What a caller may rely on: a snapshot's row and directory appear together (the row is committed
only once the directory is made) and its row goes first on removal, so a crash leaves at most an
orphan directory, which the start-up sweep (gc.py) removes; an image a snapshot uses is not deleted.
Keys are 64 lowercase hex (InvalidArgument otherwise).
"""

from __future__ import annotations

import os
import re
import shutil
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import structlog

from teu_api.errors import FailedPrecondition, Internal, InvalidArgument, NotFound
from teu_storage.images import Images
from teu_storage.layers import LayerDirs
from teu_storage.metadata import Image, Store

__all__ = ["Mount", "Snapshot", "Snapshots", "check_key", "create", "overlay_mount"]

log = structlog.get_logger()

_KEY = re.compile(r"[a-f0-9]{64}", re.ASCII)
INIT_DIRS = ("etc", "dev", "proc", "sys")
INIT_FILES = ("etc/hosts", "etc/hostname", "etc/resolv.conf")
# The kernel copies mount options into one page; the runtime adds nothing to the overlay's.
MAX_MOUNT_OPTIONS = 4096 - 1


@dataclass(frozen=True)
class Mount:
    """A mount in OCI runtime-spec terms."""

    type: str
    source: str
    destination: str
    options: tuple[str, ...]


@dataclass(frozen=True)
class Snapshot:
    """A recorded snapshot: its image, its upper dir, and the image's layer dirs top-most first."""

    image: Image
    upper: Path
    lowers: tuple[str, ...]


class Snapshots:
    """The snapshots under directory ``root``, recorded in ``store``, over ``images`` whose layers are in ``layers``.

    ``tmp`` (same filesystem) is where a removed snapshot's files are renamed before they are deleted.
    """

    def __init__(self, root: Path, tmp: Path, store: Store, images: Images, layers: LayerDirs) -> None:
        self.dir = root
        self._tmp = tmp
        self._store = store
        self._images = images
        self._layers = layers

    def prepare(self, key: str, image_id: str) -> list[Mount]:
        """Creates writable snapshot ``key`` over image ``image_id`` (a full id) and returns its mounts.

        InvalidArgument for a malformed key, NotFound for an unknown image, AlreadyExists for a used key,
        FailedPrecondition for an image with too many layers to describe in one mount.
        """
        check_key(key)
        image = self._store.image(image_id)
        if image is None:
            raise NotFound(f"No such image: {image_id}")
        snapshot_dir = self.dir / key
        mount = self._mount(image, snapshot_dir, with_init=True)  # checks the option length before anything is made
        self._store.add_snapshot(key, image_id, time.time_ns(), lambda: create(snapshot_dir))
        log.info("snapshot_prepared", key=key, image_id=image_id, layers=len(image.layers))
        return [mount]

    def mounts(self, key: str) -> list[Mount]:
        """The mounts of existing snapshot ``key``; NotFound if there is none."""
        image = self.get(key).image
        snapshot_dir = self.dir / key
        # snapshots made before the init layer existed have none
        return [self._mount(image, snapshot_dir, with_init=(snapshot_dir / "init").is_dir())]

    def remove(self, key: str) -> bool:
        """Deletes snapshot ``key`` and its files; False (not an error) if it did not exist.

        The row goes first, so a failure part-way leaves only an orphan directory, which the next
        start-up (or a new snapshot with the same key) removes.
        """
        check_key(key)
        removed = self._store.remove_snapshot(key)
        snapshot_dir = self.dir / key
        if snapshot_dir.exists():
            # Renaming first makes the removal atomic for anyone looking at snapshots/.
            trash = self._tmp / f"rm-{key}-{uuid.uuid4().hex}"
            os.rename(snapshot_dir, trash)
            shutil.rmtree(trash)
        if removed:
            log.info("snapshot_removed", key=key)
        return removed

    def get(self, key: str) -> Snapshot:
        """Snapshot ``key``: InvalidArgument for a malformed key, NotFound if there is none."""
        check_key(key)
        image_id = self._store.snapshot_image(key)
        if image_id is None:
            raise NotFound(f"No such snapshot: {key}")
        image = self._images.by_id(image_id)
        lowers = tuple(str(self._layers.path(d)) for d in reversed(image.layers))
        return Snapshot(image, self.dir / key / "upper", lowers)

    def _mount(self, image: Image, snapshot_dir: Path, with_init: bool) -> Mount:
        lower = [self._layers.link(diff_id) for diff_id in reversed(image.layers)]
        if with_init:
            lower.insert(0, snapshot_dir / "init")
        mount = overlay_mount(lower, snapshot_dir)
        length = len(",".join(mount.options))
        if length > MAX_MOUNT_OPTIONS:
            raise FailedPrecondition(
                f"image has too many layers ({len(image.layers)}) for one overlay mount "
                f"({length} bytes of options, the kernel takes {MAX_MOUNT_OPTIONS})"
            )
        return mount


def check_key(key: str) -> str:
    """Returns ``key`` if it is a valid snapshot key (64 lowercase hex), else raises InvalidArgument."""
    if not _KEY.fullmatch(key):
        raise InvalidArgument(f"invalid snapshot key {key!r}: want 64 lowercase hex characters")
    return key


def create(snapshot_dir: Path) -> None:
    """Creates ``snapshot_dir`` with empty upper and work dirs, replacing a leftover of a crash."""
    if snapshot_dir.exists():
        # Only reachable after a crash between mkdir and commit: no recorded snapshot owns it.
        shutil.rmtree(snapshot_dir)
    snapshot_dir.mkdir(mode=0o700)
    # What the container sees gets its modes explicitly (the engine's umask is 077): upper becomes
    # its "/", 0755 like any root directory, and the init layer's dirs and files are the usual ones.
    _public(snapshot_dir / "upper", 0o755)
    (snapshot_dir / "work").mkdir(mode=0o700)
    init = snapshot_dir / "init"
    _public(init, 0o755)
    for d in INIT_DIRS:
        _public(init / d, 0o755)
    for f in INIT_FILES:
        (init / f).touch()
        os.chmod(init / f, 0o644)


def _public(directory: Path, mode: int) -> None:
    directory.mkdir()
    os.chmod(directory, mode)


def overlay_mount(lower_dirs: Sequence[Path], snapshot_dir: Path) -> Mount:
    """The overlay mount of ``snapshot_dir`` over ``lower_dirs``, given top-most first."""
    if not lower_dirs:
        raise Internal("an overlay needs at least one lower layer")
    paths = [str(p) for p in (*lower_dirs, snapshot_dir)]
    # overlayfs splits options on ',' and lowerdir on ':'; such a state dir cannot be described.
    if any("," in p or ":" in p for p in paths):
        raise Internal(f"storage root {snapshot_dir.parent.parent} contains ',' or ':' which overlayfs cannot take")
    return Mount(
        type="overlay",
        source="overlay",
        destination="/",
        options=(
            "lowerdir=" + ":".join(str(p) for p in lower_dirs),
            f"upperdir={snapshot_dir / 'upper'}",
            f"workdir={snapshot_dir / 'work'}",
        ),
    )
