"""The chrooted child of ``cp`` into a running container (see :mod:`teu_runtime.copyin`):
``python -m teu_runtime.untar ROOTFS DEST UID_OFFSET GID_OFFSET SIZE`` reads a tar on stdin, chroots into
ROOTFS, and extracts it into DEST as resolved there; prints the number of members, or an error on
stderr. Standard library only, imported before the chroot (nothing can be imported after it).

Members keep their modes and owners (``docker cp`` keeps them; the API is root-equivalent anyway),
shifted into the container's range when it runs remapped (SIZE ids; 0 when not remapped); device
nodes, and names or links that lead out of the destination, are refused. This process is host root
outside the container's cgroup, so it never writes through anything already in place: every file is
created anew, replacing what the container put there.
"""

from __future__ import annotations

import os
import stat
import sys
import tarfile
import zlib  # noqa: F401 - tarfile imports it lazily for gzip streams, which the chroot would prevent
from collections.abc import Callable

__all__ = ["NOT_FOUND", "main", "member_filter"]

NOT_FOUND = 3


def member_filter(uid_offset: int, gid_offset: int, size: int = 0) -> Callable[[tarfile.TarInfo, str], tarfile.TarInfo]:
    """tarfile's "tar" extraction filter (no absolute names, nothing out of the destination), but
    keeping modes as they are, refusing devices, and shifting owners by the container's offsets;
    with ``size`` (a remapped container's range), owners outside the range are refused."""

    def check(member: tarfile.TarInfo, dest: str) -> tarfile.TarInfo:
        if member.ischr() or member.isblk():
            raise tarfile.FilterError(f"{member.name}: device nodes are not copied into containers")
        if member.issparse():
            raise tarfile.FilterError(f"{member.name}: sparse files are not copied into containers")
        if size and not (0 <= member.uid < size and 0 <= member.gid < size):
            raise tarfile.FilterError(f"{member.name}: owner {member.uid}:{member.gid} is outside the container's ids")
        checked = tarfile.tar_filter(member, dest)
        return checked.replace(mode=member.mode, uid=member.uid + uid_offset, gid=member.gid + gid_offset,
                               uname="", gname="", deep=False)  # fmt: skip

    return check


_Path = str | bytes | os.PathLike[str] | os.PathLike[bytes]
_CHUNK = 1 << 20


def _clear(path: _Path, keep_dir: bool) -> None:
    """Removes what the container put at ``path`` (a device node, a FIFO, a file, a link), so what is
    extracted there is made anew and never opened through it; a directory stays if ``keep_dir``."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        if keep_dir:
            return
        raise tarfile.ExtractError(f"{os.fsdecode(path)}: cannot replace a directory with a non-directory")
    os.unlink(path)


class _Untar(tarfile.TarFile):
    """Extraction that never writes through what is already there: every file is created anew
    (O_EXCL|O_NOFOLLOW), so a device node or a FIFO the container planted is replaced, not written to
    (this process is host root, outside the container's device cgroup)."""

    def makefile(self, tarinfo: tarfile.TarInfo, targetpath: _Path) -> None:
        """Creates ``targetpath`` exclusively and copies the member's data into it."""
        _clear(targetpath, keep_dir=False)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_NOCTTY | os.O_CLOEXEC
        fd = os.open(targetpath, flags, 0o600)
        assert self.fileobj is not None
        self.fileobj.seek(tarinfo.offset_data)
        with os.fdopen(fd, "wb") as target:
            left = tarinfo.size
            while left:
                data = self.fileobj.read(min(left, _CHUNK))
                if not data:
                    raise tarfile.ReadError("unexpected end of data")
                target.write(data)
                left -= len(data)

    def makefifo(self, tarinfo: tarfile.TarInfo, targetpath: _Path) -> None:
        """Makes a FIFO where the member says, replacing what is there."""
        _clear(targetpath, keep_dir=False)
        super().makefifo(tarinfo, targetpath)

    def makedir(self, tarinfo: tarfile.TarInfo, targetpath: _Path) -> None:
        """Makes a directory, keeping one that exists and replacing anything else."""
        _clear(targetpath, keep_dir=True)
        super().makedir(tarinfo, targetpath)


def _extract(rootfs: str, dest: str, uid_offset: int, gid_offset: int, size: int) -> int:
    """In the child: chroot, resolve ``dest`` inside, extract stdin's tar there."""
    os.chroot(rootfs)
    os.chdir("/")
    if not os.path.isdir(dest):
        print(f"Could not find the directory {dest} in the container", file=sys.stderr)
        sys.exit(NOT_FOUND)
    count = 0
    with _Untar.open(fileobj=sys.stdin.buffer, mode="r|*") as tar:
        tar.errorlevel = 2  # a failed chown or chmod is an error, not a silently different file
        check = member_filter(uid_offset, gid_offset, size)
        for member in tar:
            tar.extract(member, dest, filter=check)
            count += 1
    return count


def main() -> None:
    """Entry point of the chrooted child: ``python -m teu_runtime.untar ROOTFS DEST UIDOFF GIDOFF SIZE``."""
    rootfs, dest, uid_offset, gid_offset, size = sys.argv[1:6]
    try:
        count = _extract(rootfs, dest, int(uid_offset), int(gid_offset), int(size))
    except FileNotFoundError as exc:  # the destination went away meanwhile
        print(f"Could not find {exc.filename} in the container", file=sys.stderr)
        sys.exit(NOT_FOUND)
    except (tarfile.TarError, OSError) as exc:
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        sys.exit(1)
    print(count)


if __name__ == "__main__":
    main()
