"""Safe extraction of an uncompressed layer tar into a fresh directory.

Guarantee: whatever the tar contains, nothing is created, written, chowned or chmodded outside
``dest``. A hostile or broken tar raises InvalidArgument (the caller deletes ``dest``).

How: every member name is relative, without "..", and its parent directory is resolved with
realpath() against what is already on disk, so a symlink extracted earlier (``a -> /etc``) cannot be
written through (``a/passwd``). The final component is then created with O_EXCL/O_NOFOLLOW or after
unlinking whatever non-directory was there, so it is never followed either. Symlink *targets* are not
resolved on the host: an absolute target (``bin/sh -> /bin/busybox``) is only ever resolved inside the
container, and is fine; a relative one that climbs above the root is refused, as tarfile's
``data_filter`` does. Unlike that filter, this keeps what a root filesystem needs: numeric uid/gid,
all mode bits (setuid, sticky: /tmp is 1777), mtimes, hard links and fifos. Device nodes, sparse
files and absurd sizes are refused. Extraction must run as root to set ownership.
"""

from __future__ import annotations

import errno
import os
import posixpath
import stat
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from teu.errors import Internal, InvalidArgument

__all__ = ["MAX_TOTAL_SIZE", "LayerStats", "extract"]

MAX_TOTAL_SIZE = 64 << 30
# pax and GNU long-name headers are read into memory whole by tarfile; real ones are tiny.
_MAX_META_HEADER = 1 << 20
_COPY_CHUNK = 1 << 20
# errnos a conflicting tar provokes (file where a directory is expected, ...): the client's fault.
_TAR_FAULTS = {
    errno.EEXIST,
    errno.ENOTDIR,
    errno.EISDIR,
    errno.ENOTEMPTY,
    errno.ELOOP,
    errno.ENAMETOOLONG,
    errno.EINVAL,
    errno.ENOENT,
}


@dataclass(frozen=True)
class LayerStats:
    """What an extraction produced."""

    size: int  # bytes of regular files (hard links counted once)


class _BoundedTarInfo(tarfile.TarInfo):
    """Refuses oversized pax / GNU long-name headers before tarfile reads them into memory."""

    def _proc_member(self, tarfile_: tarfile.TarFile) -> Any:
        meta = (
            tarfile.GNUTYPE_LONGNAME,
            tarfile.GNUTYPE_LONGLINK,
            tarfile.XHDTYPE,
            tarfile.XGLTYPE,
            tarfile.SOLARIS_XHDTYPE,
        )
        if self.type in meta and self.size > _MAX_META_HEADER:
            raise tarfile.ReadError(f"metadata header of {self.size} bytes is too large")
        return super()._proc_member(tarfile_)  # type: ignore[misc]


def extract(tar_path: Path, dest: Path) -> LayerStats:
    """Extracts the tar at ``tar_path`` into the existing, empty directory ``dest``.

    Raises InvalidArgument for a hostile, truncated or non-tar input and Internal for host failures
    (disk full, I/O error). On error ``dest`` may hold a partial tree; the caller removes it.
    """
    _refuse_compressed(tar_path)
    try:
        with tarfile.open(tar_path, mode="r:", tarinfo=_BoundedTarInfo) as tar:
            stats = _Extractor(tar, dest).run()
            _check_end_marker(tar_path, tar.offset)
            return stats
    except (tarfile.TarError, EOFError, ValueError, OverflowError) as exc:
        # ValueError/OverflowError: NUL bytes in names, out-of-range ids or times in headers.
        raise InvalidArgument(f"invalid tar: {exc}") from exc
    except OSError as exc:
        raise Internal(f"extracting layer: {exc}") from exc


def _refuse_compressed(tar_path: Path) -> None:
    """A clear message for compressed input: diff ids are digests of the uncompressed tar."""
    with open(tar_path, "rb") as f:
        magic = f.read(10)
    # A tar starts with a member name, which these byte sequences are not, in practice.
    bzip2 = magic[:3] == b"BZh" and magic[4:10] == b"1AY&SY"
    if bzip2 or magic.startswith((b"\x1f\x8b", b"\xfd7zXZ\x00", b"\x28\xb5\x2f\xfd")):
        raise InvalidArgument("invalid tar: compressed archives are not supported, send a plain tar")


def _check_end_marker(tar_path: Path, offset: int) -> None:
    """tarfile stops silently at a garbled header or a truncation between members; a zero block proves the end."""
    with open(tar_path, "rb") as f:
        f.seek(offset)
        block = f.read(tarfile.BLOCKSIZE)
    if len(block) != tarfile.BLOCKSIZE or block.count(0) != tarfile.BLOCKSIZE:
        raise InvalidArgument(f"invalid tar: truncated or garbled at offset {offset}")


class _Extractor:
    """One extraction; directories get their attributes last, once nothing more is written into them."""

    def __init__(self, tar: tarfile.TarFile, dest: Path) -> None:
        self.tar = tar
        self.root = os.path.realpath(dest)
        self.dirs: list[tuple[str, tarfile.TarInfo]] = []
        self.as_root = os.geteuid() == 0
        self.size = 0
        self.declared = 0

    def run(self) -> LayerStats:
        os.chmod(self.root, 0o755)  # the image root, unless the tar has a "./" entry saying otherwise
        for member in self.tar:
            try:
                self._extract(member)
            except OSError as exc:
                if exc.errno not in _TAR_FAULTS:
                    raise
                # Name the member, not the host path, which is none of the client's business.
                raise InvalidArgument(f"invalid tar: cannot extract {member.name!r}: {exc.strerror}") from exc
        # Deepest first, so setting a parent's mtime is not undone by touching a child.
        for path, member in sorted(self.dirs, key=lambda item: item[0], reverse=True):
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
            try:
                self._set_attrs(fd, member)
            finally:
                os.close(fd)
        return LayerStats(size=self.size)

    def _extract(self, member: tarfile.TarInfo) -> None:
        name = _relative_name(member.name)
        self._check_size(member)
        if name == ".":
            if not member.isdir():
                raise InvalidArgument("invalid tar: the root entry is not a directory")
            self.dirs.append((self.root, member))
            return
        parent = self._resolve_dir(posixpath.dirname(name), create=True)
        path = os.path.join(parent, posixpath.basename(name))
        existing = _lstat(path)
        if member.isdir():
            if existing is None:
                os.mkdir(path, 0o700)
            elif not stat.S_ISDIR(existing.st_mode):
                raise InvalidArgument(f"invalid tar: directory {member.name!r} replaces a non-directory")
            self.dirs.append((path, member))
            return
        if existing is not None:
            if stat.S_ISDIR(existing.st_mode):
                raise InvalidArgument(f"invalid tar: {member.name!r} replaces a directory")
            os.unlink(path)  # a later entry wins, as with tar(1); never write through what was there
        if member.isreg():
            self._write_file(path, member)
        elif member.issym():
            _check_symlink(name, member.linkname)
            os.symlink(member.linkname, path)
            if self.as_root:
                os.lchown(path, member.uid, member.gid)
            os.utime(path, (member.mtime, member.mtime), follow_symlinks=False)
        elif member.islnk():
            os.link(self._hardlink_source(member), path, follow_symlinks=False)
        elif member.isfifo():
            os.mkfifo(path, 0o600)
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW)
            try:
                self._set_attrs(fd, member)
            finally:
                os.close(fd)
        elif member.ischr() or member.isblk():
            raise InvalidArgument(f"invalid tar: device node {member.name!r} is not allowed")
        else:
            raise InvalidArgument(f"invalid tar: unsupported entry type {member.type!r} for {member.name!r}")

    def _check_size(self, member: tarfile.TarInfo) -> None:
        if member.sparse is not None:
            raise InvalidArgument(f"invalid tar: sparse file {member.name!r} is not supported")
        if member.size < 0 or member.size > MAX_TOTAL_SIZE:
            raise InvalidArgument(f"invalid tar: absurd size {member.size} for {member.name!r}")
        self.declared += member.size
        if self.declared > MAX_TOTAL_SIZE:
            raise InvalidArgument(f"invalid tar: content exceeds {MAX_TOTAL_SIZE} bytes")

    def _resolve_dir(self, rel: str, *, create: bool) -> str:
        """Real path of directory ``rel``, refused if existing symlinks lead it outside the root."""
        real = os.path.realpath(os.path.join(self.root, rel))
        if os.path.commonpath([real, self.root]) != self.root:
            raise InvalidArgument(f"invalid tar: path {rel!r} leads outside the image")
        if create and not os.path.isdir(real):
            # Parents the tar does not list get conventional attributes.
            os.makedirs(real, 0o755)
        return real

    def _hardlink_source(self, member: tarfile.TarInfo) -> str:
        target = _relative_name(member.linkname)
        if target == ".":
            raise InvalidArgument(f"invalid tar: hard link {member.name!r} to the root")
        source = os.path.join(
            self._resolve_dir(posixpath.dirname(target), create=False), posixpath.basename(target)
        )
        found = _lstat(source)
        # Only regular files already extracted: tarfile's fallback of re-reading the target is not needed.
        if found is None or not stat.S_ISREG(found.st_mode):
            raise InvalidArgument(
                f"invalid tar: hard link {member.name!r} to missing or non-file {member.linkname!r}"
            )
        return source

    def _write_file(self, path: str, member: tarfile.TarInfo) -> None:
        data = self.tar.extractfile(member)
        if data is None:
            raise InvalidArgument(f"invalid tar: no data for {member.name!r}")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        try:
            with os.fdopen(fd, "wb", closefd=False) as out:
                _copy(data, out)
            self._set_attrs(fd, member)
        finally:
            os.close(fd)
        self.size += member.size

    def _set_attrs(self, fd: int, member: tarfile.TarInfo) -> None:
        # chown first: it clears setuid/setgid, which chmod then sets again.
        if self.as_root:
            os.fchown(fd, member.uid, member.gid)
        os.fchmod(fd, stat.S_IMODE(member.mode))
        os.utime(fd, (member.mtime, member.mtime))


def _relative_name(name: str) -> str:
    """The member name as a normalised relative path; absolute names and any ".." are refused."""
    if name.startswith("/"):
        raise InvalidArgument(f"invalid tar: absolute path {name!r}")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise InvalidArgument(f"invalid tar: path {name!r} contains '..'")
    return "/".join(parts) or "."


def _check_symlink(name: str, target: str) -> None:
    if not target:
        raise InvalidArgument(f"invalid tar: symlink {name!r} has an empty target")
    if posixpath.isabs(target):
        return  # resolved against the container's root, never the host's
    resolved = posixpath.normpath(posixpath.join(posixpath.dirname(name), target))
    if resolved == ".." or resolved.startswith("../"):
        raise InvalidArgument(f"invalid tar: symlink {name!r} -> {target!r} points outside the image")


def _lstat(path: str) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except FileNotFoundError:
        return None


def _copy(src: IO[bytes], dst: IO[bytes]) -> None:
    while chunk := src.read(_COPY_CHUNK):
        dst.write(chunk)
