"""Mounting and unmounting a container's root filesystem from the specs storage returns."""

from __future__ import annotations

import ctypes
import os
from collections.abc import Sequence
from contextlib import nullcontext
from pathlib import Path

from teu_api.errors import FailedPrecondition, Internal, InvalidArgument
from teu_api.types.v1 import types_pb2
from teu_common.idmap import IdMap
from teu_runtime import idmapped

_libc = ctypes.CDLL(None, use_errno=True)
_MNT_DETACH = 2
_EINVAL = 22


def is_mounted(path: Path) -> bool:
    """Whether something is mounted exactly at ``path``."""
    target = os.fsencode(os.path.realpath(path))
    with open("/proc/self/mountinfo", "rb") as f:
        return any(line.split(b" ")[4] == target for line in f)


def mount_rootfs(mounts: Sequence[types_pb2.Mount], target: Path, mapping: IdMap | None = None) -> None:
    """Performs the root filesystem mount(s) at ``target`` (idempotent); with ``mapping``, an
    overlay's layers are seen through idmapped mounts (a remapped container's own ids)."""
    roots = [m for m in mounts if m.destination == "/"]
    if len(roots) != 1:
        raise InvalidArgument("exactly one root filesystem mount is required")
    m = roots[0]
    if m.type not in ("overlay", "bind"):
        raise InvalidArgument(f"unsupported root filesystem mount type {m.type!r}")
    target.mkdir(parents=True, exist_ok=True)
    if is_mounted(target):
        return
    flags = 4096 if m.type == "bind" else 0  # MS_BIND
    if mapping is not None and m.type != "overlay":
        raise FailedPrecondition("user namespace remapping needs an overlay root filesystem")
    with (
        idmapped.overlay_options(list(m.options), mapping)
        if mapping
        else nullcontext(",".join(o for o in m.options if o not in ("rbind", "bind"))) as data
    ):
        rc = _libc.mount(m.source.encode(), os.fsencode(target), m.type.encode(), flags, data.encode())
        if rc != 0:
            err = ctypes.get_errno()
            raise Internal(f"mounting the root filesystem failed: {os.strerror(err)}")


def mount_shm(target: Path, size: int) -> None:
    """A tmpfs for /dev/shm at ``target`` (idempotent): nosuid, nodev, noexec, mode 1777, ``size`` bytes."""
    target.mkdir(exist_ok=True)
    if is_mounted(target):
        return
    flags = 2 | 4 | 8  # MS_NOSUID | MS_NODEV | MS_NOEXEC
    if _libc.mount(b"shm", os.fsencode(target), b"tmpfs", flags, f"mode=1777,size={size}".encode()) != 0:
        err = ctypes.get_errno()
        raise Internal(f"mounting the shared /dev/shm failed: {os.strerror(err)}")


def unmount(target: Path) -> None:
    """Unmounts ``target`` if it is mounted (lazily, so a stray open file cannot block removal)."""
    while is_mounted(target):
        if _libc.umount2(os.fsencode(target), _MNT_DETACH) != 0:
            err = ctypes.get_errno()
            if err == _EINVAL:
                return
            raise Internal(f"unmounting {target} failed: {os.strerror(err)}")
