"""Writing directory trees as tar streams: a commit's layer, an export, a ``cp`` from a container.

TarInfo is built from one lstat per entry (tarfile's gettarinfo also looks up user and group names,
which costs more than the rest and which Docker's layers do not need). PAX format: long names, big
ids and xattrs fit. Hard links become link entries within one tar; sockets are skipped as in Docker.
"""

from __future__ import annotations

import os
import stat
import tarfile
from collections.abc import Iterator
from typing import IO

from teu.errors import FailedPrecondition
from teu.storage.archive import is_whiteout
from teu.storage.merged import Node, View, is_opaque

__all__ = ["TreeWriter", "layer_entries", "write_layer", "write_view"]

_PAX_XATTR = "SCHILY.xattr."
_WH = ".wh."
_WH_OPAQUE = ".wh..wh..opq"


class TreeWriter:
    """A tar stream being written to ``out``; :meth:`close` writes the end blocks."""

    def __init__(self, out: IO[bytes]) -> None:
        self._tar = tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT)  # noqa: SIM115 - close()
        self._links: dict[tuple[int, int], str] = {}

    def add(self, name: str, path: str, st: os.stat_result) -> None:
        """Adds the file at ``path`` (described by its lstat ``st``) as member ``name``."""
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
                self._tar.addfile(info)
                return
            if st.st_nlink > 1:
                self._links[key] = name
            info.size = st.st_size
            self._xattrs(info, path)
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
            with os.fdopen(fd, "rb") as data:
                try:
                    self._tar.addfile(info, data)
                except OSError as exc:
                    if "unexpected end of data" not in str(exc):
                        raise
                    raise FailedPrecondition(f"{name} shrank while being read; stop the container first") from exc
            return
        if stat.S_ISDIR(mode):
            info.type = tarfile.DIRTYPE
            self._xattrs(info, path)
        elif stat.S_ISLNK(mode):
            info.type, info.linkname = tarfile.SYMTYPE, os.readlink(path)
        elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            info.type = tarfile.CHRTYPE if stat.S_ISCHR(mode) else tarfile.BLKTYPE
            info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
        elif stat.S_ISFIFO(mode):
            info.type = tarfile.FIFOTYPE
        else:
            return  # sockets and unknown types do not belong in an image
        self._tar.addfile(info)

    def add_marker(self, name: str, st: os.stat_result) -> None:
        """Adds an empty regular file ``name`` (an OCI whiteout) with the owner and mtime of ``st``."""
        info = tarfile.TarInfo(name)
        info.mode, info.uid, info.gid, info.mtime = 0o600, st.st_uid, st.st_gid, int(st.st_mtime)
        info.uname = info.gname = ""
        self._tar.addfile(info)

    def close(self) -> None:
        """Writes the end-of-archive blocks and flushes."""
        self._tar.close()

    @staticmethod
    def _xattrs(info: tarfile.TarInfo, path: str) -> None:
        try:
            names = os.listxattr(path, follow_symlinks=False)
        except OSError:
            return
        headers = dict(info.pax_headers)
        for name in names:
            if name.startswith("trusted.overlay."):
                continue  # overlay's bookkeeping: whiteouts are written the OCI way instead
            try:
                value = os.getxattr(path, name, follow_symlinks=False)
            except OSError:
                continue
            headers[_PAX_XATTR + name] = value.decode("utf-8", "surrogateescape")
        if headers:
            info.pax_headers = headers


def layer_entries(top: str) -> Iterator[tuple[str, str, os.stat_result, bool]]:
    """Walks an overlay upper (or layer) dir: ``(name, path, lstat, opaque)`` sorted, parents first.

    The caller turns whiteouts (0:0 char devices) into ``.wh.`` markers and opaque dirs into
    ``.wh..wh..opq`` markers; see :func:`write_layer`.
    """
    stack = [("", top)]
    while stack:
        rel, path = stack.pop()
        with os.scandir(path) as it:
            entries = sorted(it, key=lambda e: e.name)
        subdirs: list[tuple[str, str]] = []
        for entry in entries:
            name = f"{rel}/{entry.name}" if rel else entry.name
            st = entry.stat(follow_symlinks=False)
            opaque = stat.S_ISDIR(st.st_mode) and is_opaque(entry.path)
            yield name, entry.path, st, opaque
            if stat.S_ISDIR(st.st_mode):
                subdirs.append((name, entry.path))
        stack.extend(reversed(subdirs))


def write_layer(top: str, out: IO[bytes]) -> None:
    """Writes upper dir ``top`` as an OCI layer tar: overlay whiteouts become ``.wh.`` entries."""
    writer = TreeWriter(out)
    for name, path, st, opaque in layer_entries(top):
        if is_whiteout(st):
            parent, _, base = name.rpartition("/")
            writer.add_marker(f"{parent}/{_WH}{base}" if parent else _WH + base, st)
            continue
        writer.add(name, path, st)
        if opaque:
            writer.add_marker(f"{name}/{_WH_OPAQUE}", st)
    writer.close()


def write_view(view: View, node: Node, name: str, out: IO[bytes]) -> None:
    """Writes ``node`` of a merged view and everything below it, the top entry named ``name``."""
    writer = TreeWriter(out)
    for rel, child in view.walk(node, name):
        if rel:
            writer.add(rel, child.path, child.st)
    writer.close()
