"""The chrooted child of ``cp`` into a running container (see :mod:`teu.runtime.copyin`):
``python -m teu.runtime.untar ROOTFS DEST UID_OFFSET GID_OFFSET`` reads a tar on stdin, chroots into
ROOTFS, and extracts it into DEST as resolved there; prints the number of members, or an error on
stderr. Standard library only, imported before the chroot (nothing can be imported after it).

Members keep their modes and owners (``docker cp`` keeps them; the API is root-equivalent anyway),
shifted into the container's range when it runs remapped; device nodes, and names or links that
lead out of the destination, are refused.
"""

from __future__ import annotations

import os
import sys
import tarfile
import zlib  # noqa: F401 - tarfile imports it lazily for gzip streams, which the chroot would prevent
from collections.abc import Callable

__all__ = ["NOT_FOUND", "main", "member_filter"]

NOT_FOUND = 3


def member_filter(uid_offset: int, gid_offset: int) -> Callable[[tarfile.TarInfo, str], tarfile.TarInfo]:
    """tarfile's "tar" extraction filter (no absolute names, nothing out of the destination), but
    keeping modes as they are, refusing devices, and shifting owners by the container's offsets."""

    def check(member: tarfile.TarInfo, dest: str) -> tarfile.TarInfo:
        if member.ischr() or member.isblk():
            raise tarfile.FilterError(f"{member.name}: device nodes are not copied into containers")
        checked = tarfile.tar_filter(member, dest)
        return checked.replace(mode=member.mode, uid=member.uid + uid_offset, gid=member.gid + gid_offset,
                               uname="", gname="", deep=False)  # fmt: skip

    return check


def _extract(rootfs: str, dest: str, uid_offset: int, gid_offset: int) -> int:
    """In the child: chroot, resolve ``dest`` inside, extract stdin's tar there."""
    os.chroot(rootfs)
    os.chdir("/")
    if not os.path.isdir(dest):
        print(f"Could not find the directory {dest} in the container", file=sys.stderr)
        sys.exit(NOT_FOUND)
    count = 0
    with tarfile.open(fileobj=sys.stdin.buffer, mode="r|*") as tar:
        check = member_filter(uid_offset, gid_offset)
        for member in tar:
            tar.extract(member, dest, filter=check)
            count += 1
    return count


def main() -> None:
    """Entry point of the chrooted child: ``python -m teu.runtime.untar ROOTFS DEST UIDOFF GIDOFF``."""
    rootfs, dest, uid_offset, gid_offset = sys.argv[1:5]
    try:
        count = _extract(rootfs, dest, int(uid_offset), int(gid_offset))
    except FileNotFoundError as exc:  # the destination went away meanwhile
        print(f"Could not find {exc.filename} in the container", file=sys.stderr)
        sys.exit(NOT_FOUND)
    except (tarfile.TarError, OSError) as exc:
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        sys.exit(1)
    print(count)


if __name__ == "__main__":
    main()
