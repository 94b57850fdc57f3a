"""Resolves "user[:group]" against the image's /etc/passwd and /etc/group, safely.

Files are opened with openat2(RESOLVE_IN_ROOT), so a symlink in the image (say /etc/passwd ->
/etc/shadow of the host, or ../../..) is resolved inside the container's root, never the host's;
and without blocking, so a FIFO there is refused instead of stalling the runtime.
"""

from __future__ import annotations

import ctypes
import dataclasses
import os
import stat
import struct
from collections.abc import Sequence
from pathlib import Path

from teu_api.errors import InvalidArgument
from teu_runtime.spec import User

_SYS_OPENAT2 = 437
_RESOLVE_NO_MAGICLINKS = 0x02
_RESOLVE_IN_ROOT = 0x10
_libc = ctypes.CDLL(None, use_errno=True)


def read_in_root(root: Path, path: str, limit: int = 4 << 20) -> bytes | None:
    """Contents of ``path`` resolved inside ``root``; None if it does not exist."""
    root_fd = os.open(root, os.O_PATH | os.O_DIRECTORY)
    try:
        # O_NONBLOCK: a FIFO planted there must not stall this thread (it is refused just below)
        how = struct.pack("QQQ", os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK, 0, _RESOLVE_IN_ROOT | _RESOLVE_NO_MAGICLINKS)
        fd = _libc.syscall(_SYS_OPENAT2, root_fd, path.encode(), how, len(how))
        if fd < 0:
            err = ctypes.get_errno()
            if err in (2, 20):  # ENOENT, ENOTDIR
                return None
            raise OSError(err, os.strerror(err), path)
        with os.fdopen(fd, "rb") as f:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise InvalidArgument(f"{path} in the container is not a regular file")
            return f.read(limit)
    finally:
        os.close(root_fd)


def _table(data: bytes | None) -> list[list[str]]:
    if not data:
        return []
    rows = [line.split(":") for line in data.decode(errors="replace").splitlines()]
    return [r for r in rows if len(r) >= 3 and not r[0].startswith("#")]


def resolve(spec: str, passwd: bytes | None, group: bytes | None) -> User:
    """Resolves ``spec`` ("", "name", "uid", "name:group", "uid:gid") against the two files."""
    user_part, _, group_part = spec.partition(":")
    users, groups = _table(passwd), _table(group)
    uid, gid, home, name = 0, 0, "/", "root"
    if user_part:
        row = next((r for r in users if r[0] == user_part or (user_part.isdigit() and r[2] == user_part)), None)
        if row is None and not user_part.isdigit():
            raise InvalidArgument(f"unable to find user {user_part}: no matching entries in passwd file")
        if row is None:
            uid, name = int(user_part), ""
        else:
            uid, gid, name = int(row[2]), int(row[3]) if len(row) > 3 and row[3].isdigit() else 0, row[0]
            home = row[5] if len(row) > 5 and row[5] else "/"
    elif users:
        root_row = next((r for r in users if r[2] == "0"), None)
        home = root_row[5] if root_row and len(root_row) > 5 and root_row[5] else "/root"
    else:
        home = "/root"
    if group_part:
        grow = next((r for r in groups if r[0] == group_part or (group_part.isdigit() and r[2] == group_part)), None)
        if grow is None and not group_part.isdigit():
            raise InvalidArgument(f"unable to find group {group_part}: no matching entries in group file")
        gid = int(grow[2]) if grow else int(group_part)
    extra = tuple(
        sorted({int(r[2]) for r in groups if len(r) > 3 and name and name in r[3].split(",") and r[2].isdigit()} - {gid})
    )
    return User(uid=uid, gid=gid, additional_gids=extra, home=home)


def group_ids(names: Sequence[str], group: bytes | None) -> tuple[int, ...]:
    """--group-add: each name's gid from the group file, or the number given."""
    groups = _table(group)
    out = []
    for name in names:
        row = next((r for r in groups if r[0] == name), None)
        if row is not None and row[2].isdigit():
            out.append(int(row[2]))
        elif name.isdigit():
            out.append(int(name))
        else:
            raise InvalidArgument(f"unable to find group {name}: no matching entries in group file")
    return tuple(out)


def resolve_in_rootfs(spec: str, rootfs: Path, group_add: Sequence[str] = ()) -> User:
    """Resolves ``spec`` against the passwd and group files of a mounted root filesystem, with the
    groups of ``group_add`` added."""
    if spec.replace(":", "").isdigit() and ":" in spec and not group_add:
        uid, gid = spec.split(":", 1)
        return User(uid=int(uid), gid=int(gid))
    group = read_in_root(rootfs, "/etc/group")
    user = resolve(spec, read_in_root(rootfs, "/etc/passwd"), group)
    added = tuple(g for g in group_ids(group_add, group) if g != user.gid and g not in user.additional_gids)
    return dataclasses.replace(user, additional_gids=user.additional_gids + added)
