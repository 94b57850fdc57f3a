"""Writing directory trees as tar streams: a commit's layer, an export, a ``cp`` from a container.

TarInfo is built from one lstat per entry (tarfile's gettarinfo also looks up user and group names,
which costs more than the rest and which Docker's layers do not need). PAX format: long names, big
ids and xattrs fit. Hard links become link entries within one tar; sockets are skipped as in Docker.
An entry that needs no PAX record (most of them) gets its header from :func:`ustar_header`, the very
bytes tarfile writes for it at a fraction of tarfile's cost (half of an export's time went there);
the others go through tarfile.

The tree may be a running container's upper dir: everything is read through :mod:`teu_storage.safefs`
(relative to open directories, never through a symlink), files are read only if they are still
regular files once opened, and an entry removed while the tree is read is left out.
"""

from __future__ import annotations

import os
import stat
import tarfile
from typing import IO, Protocol

from teu_api.errors import FailedPrecondition
from teu_api.tarheader import ustar_header
from teu_storage.archive import is_whiteout
from teu_storage.merged import Node, View
from teu_storage.safefs import Dir, xattrs

__all__ = ["TreeWriter", "write_layer", "write_view"]

_PAX_XATTR = "SCHILY.xattr."
_WH = ".wh."
_WH_OPAQUE = ".wh..wh..opq"


class TreeWriter:
    """A tar stream being written to ``out``; :meth:`close` writes the end blocks."""

    def __init__(self, out: IO[bytes]) -> None:
        self._tar = tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT)  # noqa: SIM115 - close()
        self._links: dict[tuple[int, int], str] = {}

    def _addfile(self, info: tarfile.TarInfo, data: _Reader | None = None) -> None:
        """tarfile's addfile, its header written by :func:`ustar_header` when that can."""
        header = ustar_header(info)
        if header is None:
            self._tar.addfile(info, data)
            return
        tar, out = self._tar, self._tar.fileobj
        assert out is not None
        out.write(header)
        tar.offset += len(header)
        if data is not None:
            _copy(data, out, info.size)
            blocks, remainder = divmod(info.size, tarfile.BLOCKSIZE)
            if remainder:
                out.write(tarfile.NUL * (tarfile.BLOCKSIZE - remainder))
                blocks += 1
            tar.offset += blocks * tarfile.BLOCKSIZE

    def add(self, name: str, st: os.stat_result, at: Dir, base: str, own: Dir | None = None) -> None:
        """Adds entry ``base`` of directory ``at`` (described by its lstat ``st``) as member ``name``.

        For a directory, ``own`` is that directory (opened from ``at`` if not given). An entry that
        is gone by now is left out; one that changed type raises FailedPrecondition.
        """
        mode = st.st_mode
        info = tarfile.TarInfo(name)
        info.mode = stat.S_IMODE(mode)
        info.uid, info.gid = st.st_uid, st.st_gid
        info.mtime = int(st.st_mtime)
        info.uname = info.gname = ""
        if stat.S_ISREG(mode):
            key = (st.st_dev, st.st_ino)
            first = self._links.get(key) if st.st_nlink > 1 else None
            if first is not None:
                info.type, info.linkname = tarfile.LNKTYPE, first
                self._addfile(info)
                return
            try:
                fd, _ = at.open_file(base)
            except FileNotFoundError:
                return
            try:
                if st.st_nlink > 1:
                    self._links[key] = name
                info.size = st.st_size
                self._xattrs(info, fd)
                try:
                    self._addfile(info, _Reader(fd))
                except OSError as exc:
                    if "unexpected end of data" not in str(exc):
                        raise
                    raise FailedPrecondition(f"{name} shrank while being read; stop the container first") from exc
            finally:
                os.close(fd)
            return
        try:
            if stat.S_ISDIR(mode):
                info.type = tarfile.DIRTYPE
                d = own if own is not None else at.child(base)
                try:
                    self._xattrs(info, d.fd)
                finally:
                    if own is None:
                        d.close()
            elif stat.S_ISLNK(mode):
                info.type, info.linkname = tarfile.SYMTYPE, at.readlink(base)
            elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
                info.type = tarfile.CHRTYPE if stat.S_ISCHR(mode) else tarfile.BLKTYPE
                info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
            elif stat.S_ISFIFO(mode):
                info.type = tarfile.FIFOTYPE
            else:
                return  # sockets and unknown types do not belong in an image
        except FileNotFoundError:
            return
        self._addfile(info)

    def add_marker(self, name: str, st: os.stat_result) -> None:
        """Adds an empty regular file ``name`` (an OCI whiteout) with the owner and mtime of ``st``."""
        info = tarfile.TarInfo(name)
        info.mode, info.uid, info.gid, info.mtime = 0o600, st.st_uid, st.st_gid, int(st.st_mtime)
        info.uname = info.gname = ""
        self._addfile(info)

    def close(self) -> None:
        """Writes the end-of-archive blocks and flushes."""
        self._tar.close()

    def abort(self) -> None:
        """Gives up after an error: nothing more is written, not even when tarfile's stream is
        garbage-collected (which would otherwise flush and end the archive)."""
        stream = self._tar.fileobj
        if stream is not None and hasattr(stream, "closed"):
            stream.closed = True

    @staticmethod
    def _xattrs(info: tarfile.TarInfo, fd: int) -> None:
        # overlay's bookkeeping is left out: whiteouts are written the OCI way instead
        found = xattrs(fd, skip="trusted.overlay.")
        if found:
            headers = dict(info.pax_headers)
            for name, value in found.items():
                headers[_PAX_XATTR + name] = value.decode("utf-8", "surrogateescape")
            info.pax_headers = headers


class _Sink(Protocol):
    def write(self, data: bytes, /) -> object: ...


def _copy(src: _Reader, out: _Sink, size: int) -> None:
    """Exactly ``size`` bytes of ``src`` to ``out`` (OSError as tarfile's if the file is shorter now)."""
    while size > 0:
        chunk = src.read(min(size, 1 << 20))
        if not chunk:
            raise OSError("unexpected end of data")
        out.write(chunk)
        size -= len(chunk)


class _Reader:
    """An open regular file as tarfile reads it: plain read(2)s (full ones but at the end), without
    the fstat, ioctl and lseek an io.FileIO costs to set up."""

    __slots__ = ("_fd",)

    def __init__(self, fd: int) -> None:
        self._fd = fd

    def read(self, size: int = -1, /) -> bytes:
        """Up to ``size`` bytes (all the rest if negative)."""
        if size >= 0:
            return os.read(self._fd, size)
        parts = []
        while chunk := os.read(self._fd, 1 << 20):
            parts.append(chunk)
        return b"".join(parts)


def write_layer(top: str, out: IO[bytes]) -> None:
    """Writes upper (or layer) dir ``top`` as an OCI layer tar: overlay whiteouts (0:0 char devices)
    become ``.wh.`` entries, opaque dirs get a ``.wh..wh..opq`` entry.

    Order: a directory's entries sorted by name, then the subdirectories' contents in that order.
    A subdirectory is opened to read its attributes, closed, and opened again when its turn comes;
    its parent is closed once its last subdirectory is open, so the fds held follow the depth.
    """
    writer = TreeWriter(out)
    try:
        _write_layer(top, writer)
    except BaseException:
        writer.abort()
        raise
    writer.close()


def _write_layer(top: str, writer: TreeWriter) -> None:
    with Dir.root(top) as root:
        # (name in the tar, directory, its parent when this is the parent's last subdirectory)
        stack: list[tuple[str, Dir, Dir | None]] = [("", root, None)]
        while stack:
            rel, d, finished = stack.pop()
            try:
                entries = sorted(d.entries(), key=_name)
            except FileNotFoundError:
                entries = []  # removed since its parent was listed
            finally:
                if finished is not None:
                    finished.close()
            subdirs: list[tuple[str, Dir]] = []
            for entry in entries:
                name = f"{rel}/{entry.name}" if rel else entry.name
                try:
                    st = entry.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue
                if is_whiteout(st):
                    writer.add_marker(f"{rel}/{_WH}{entry.name}" if rel else _WH + entry.name, st)
                elif not stat.S_ISDIR(st.st_mode):
                    writer.add(name, st, d, entry.name)
                else:
                    sub = d.child(entry.name)
                    try:
                        opaque = sub.opaque()  # opens it
                    except FileNotFoundError:
                        continue
                    writer.add(name, st, d, entry.name, own=sub)
                    sub.close()
                    if opaque:
                        writer.add_marker(f"{name}/{_WH_OPAQUE}", st)
                    subdirs.append((name, sub))
            if subdirs:
                stack.append((*subdirs[-1], d))  # popped last: then d is done with
                stack.extend((n, sub, None) for n, sub in reversed(subdirs[:-1]))
            else:
                d.close()


def _name(entry: os.DirEntry[str]) -> str:
    return entry.name


def write_view(view: View, node: Node, name: str, out: IO[bytes]) -> None:
    """Writes ``node`` of a merged view and everything below it, the top entry named ``name``."""
    writer = TreeWriter(out)
    try:
        for rel, child in view.walk(node, name):
            if rel and child.at is not None:
                writer.add(rel, child.st, child.at, child.name, own=child.dirs[0] if child.dirs else None)
    except BaseException:
        writer.abort()
        raise
    writer.close()
