"""Snapshot directories and the overlay mount that assembles a container's root filesystem.

Layout: ``snapshots/<key>/upper`` (the container's writes), ``snapshots/<key>/work`` (overlayfs
scratch space, same filesystem as upper) and ``snapshots/<key>/init``: the mount points the runtime
binds over (/etc/hosts, /etc/hostname, /etc/resolv.conf, /dev, /proc, /sys), as the lowest-but-one
layer, so the OCI runtime never has to create them in upper, where diff and commit would see them
(Docker's "-init" layer). Nothing here mounts anything: the runtime does that.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from teu_api.errors import Internal, InvalidArgument

__all__ = ["Mount", "check_key", "create", "overlay_mount"]

_KEY = re.compile(r"[a-f0-9]{64}", re.ASCII)
INIT_DIRS = ("etc", "dev", "proc", "sys")
INIT_FILES = ("etc/hosts", "etc/hostname", "etc/resolv.conf")


@dataclass(frozen=True)
class Mount:
    """A mount in OCI runtime-spec terms."""

    type: str
    source: str
    destination: str
    options: tuple[str, ...]


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
