"""Overlay root filesystems for remapped containers, through idmapped mounts (Linux 5.19+).

A remapped container's root is host uid N (say 100000). Its layers on disk belong to uid 0, as in
every image. Rather than a chowned copy of every layer per range (Docker's way), each layer dir,
and the snapshot dir holding upper and work, is cloned as a detached mount whose ids are shifted by
the range (``open_tree`` + ``mount_setattr(MOUNT_ATTR_IDMAP)``), and the overlay is built on those
clones. The container sees its files owned by its own root, and what it writes lands on disk with
the container's own ids (uid 0 stays uid 0): commit, diff, export and cp need no translation, and a
container may be started with or without remapping.

The idmapping comes from a user namespace made once per range, whose map is the container's plus
one entry that gives host root (the overlay's mounter, who creates its work files) an id outside
the container's range; without it the kernel refuses those creations (EOVERFLOW).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import struct
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from teu_api.errors import FailedPrecondition, Internal
from teu_common.idmap import IdMap

__all__ = ["overlay_options"]

_libc = ctypes.CDLL(None, use_errno=True)
_SYS_OPEN_TREE, _SYS_MOUNT_SETATTR = 428, 442
_OPEN_TREE_CLONE, _OPEN_TREE_CLOEXEC, _AT_EMPTY_PATH = 1, os.O_CLOEXEC, 0x1000
_MOUNT_ATTR_IDMAP = 0x00100000
_namespaces: dict[IdMap, int] = {}
_making = threading.Lock()  # starts run in worker threads: one namespace per mapping, made once


def _userns(mapping: IdMap) -> int:
    """An fd of a user namespace with ``mapping`` (made once per mapping, kept for reuse)."""
    with _making:
        if (fd := _namespaces.get(mapping)) is None:
            fd = _namespaces[mapping] = _make_userns(mapping)
        return fd


def _make_userns(mapping: IdMap) -> int:
    """A user namespace held by a short-lived process, given ``mapping`` plus host root; its fd."""
    own = os.readlink("/proc/self/ns/user")
    try:
        holder = subprocess.Popen(["unshare", "--user", "cat"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
    except FileNotFoundError:
        raise FailedPrecondition("user namespace remapping needs unshare(1) from util-linux") from None
    try:
        deadline = time.monotonic() + 5
        while os.readlink(f"/proc/{holder.pid}/ns/user") == own:
            if time.monotonic() > deadline or holder.poll() is not None:
                raise Internal("could not make a user namespace for idmapped mounts")
            time.sleep(0.001)
        outside = mapping.size  # host root's id in the idmapping: just past the container's range
        for table, start in (("uid_map", mapping.uid), ("gid_map", mapping.gid)):
            Path(f"/proc/{holder.pid}/{table}").write_text(f"0 {start} {mapping.size}\n{outside} 0 1\n")
        fd = os.open(f"/proc/{holder.pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait()
    return int(fd)


def _clone(path: str, userns: int) -> int:
    """A detached, idmapped clone of the mount at ``path``."""
    fd = _libc.syscall(_SYS_OPEN_TREE, -100, os.fsencode(path), _OPEN_TREE_CLONE | _OPEN_TREE_CLOEXEC)
    if fd < 0:
        raise FailedPrecondition(f"cannot clone {path} for an idmapped mount: {os.strerror(ctypes.get_errno())}")
    attr = struct.pack("QQQQ", _MOUNT_ATTR_IDMAP, 0, 0, userns)
    if _libc.syscall(_SYS_MOUNT_SETATTR, fd, b"", _AT_EMPTY_PATH, attr, len(attr)) < 0:
        err = ctypes.get_errno()
        os.close(fd)
        raise FailedPrecondition(
            f"user namespace remapping needs idmapped mounts (Linux 5.19+ on ext4, xfs or btrfs): {os.strerror(err)}"
        )
    return int(fd)


@contextlib.contextmanager
def overlay_options(options: list[str], mapping: IdMap) -> Iterator[str]:
    """The overlay mount data for ``options`` (lowerdir=, upperdir=, workdir=) with every layer and
    the upper/work dirs replaced by idmapped clones; the clones live until the context ends (the
    overlay holds its own references once mounted)."""
    userns = _userns(mapping)
    opts = dict(o.split("=", 1) for o in options if "=" in o)
    upper, work = opts.get("upperdir", ""), opts.get("workdir", "")
    if not upper or os.path.dirname(upper) != os.path.dirname(work):
        raise Internal("a remapped overlay needs upper and work dirs side by side")
    fds: list[int] = []
    try:
        lowers = []
        for lower in opts["lowerdir"].split(":"):
            fds.append(_clone(lower, userns))
            lowers.append(f"/proc/self/fd/{fds[-1]}")
        fds.append(_clone(os.path.dirname(upper), userns))
        snap = f"/proc/self/fd/{fds[-1]}"
        rest = [o for o in options if o.split("=", 1)[0] not in ("lowerdir", "upperdir", "workdir")]
        yield ",".join([f"lowerdir={':'.join(lowers)}", f"upperdir={snap}/{os.path.basename(upper)}",
                        f"workdir={snap}/{os.path.basename(work)}", *rest])  # fmt: skip
    finally:
        for fd in fds:
            os.close(fd)
