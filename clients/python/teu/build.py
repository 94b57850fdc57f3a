"""Build contexts as the engine takes them: a folder as a tar, a Dockerfile from elsewhere added."""

from __future__ import annotations

import io
import os
import secrets
import stat
import tarfile
import tempfile
from pathlib import Path
from typing import BinaryIO

from teu_api.dockerignore import Ignore
from teu_api.tarheader import pax_header

__all__ = ["context_tar", "dockerfile_tar", "is_archive"]

#: Sent whatever .dockerignore says: the builder reads them (COPY still does not see them if excluded).
ALWAYS_SENT = frozenset({"Dockerfile", ".dockerignore"})


def context_tar(
    folder: str | os.PathLike[str], dockerfile: bytes | None = None, dockerfile_path: str = ""
) -> tuple[BinaryIO, str]:
    """A temporary file holding ``folder`` as a tar (its symlinks as links), without what its
    ``.dockerignore`` excludes but the Dockerfile (``dockerfile_path`` in it, if not the default);
    with ``dockerfile`` (a Dockerfile from outside it) added under a name of its own, returned
    second ("" without one)."""
    root = Path(folder)
    if not root.is_dir():
        raise NotADirectoryError(f"unable to prepare context: path {str(folder)!r} not found or not a directory")
    out = tempfile.TemporaryFile()  # noqa: SIM115 - the caller closes it
    name = ""
    for rel in _members(root, ALWAYS_SENT | {dockerfile_path}):
        _add(out, os.path.join(root, rel), rel)
    if dockerfile is not None:
        name = f".dockerfile.{secrets.token_hex(10)}"
        info = tarfile.TarInfo(name)
        info.size, info.mode = len(dockerfile), 0o644
        out.write(pax_header(info) + dockerfile + b"\0" * (-len(dockerfile) % tarfile.BLOCKSIZE))
    out.write(b"\0" * 1024)  # the end of the archive
    out.seek(0)
    return out, name


_KINDS = {
    stat.S_IFREG: tarfile.REGTYPE,
    stat.S_IFDIR: tarfile.DIRTYPE,
    stat.S_IFLNK: tarfile.SYMTYPE,
    stat.S_IFIFO: tarfile.FIFOTYPE,
    stat.S_IFCHR: tarfile.CHRTYPE,  # sent as tarfile sent them: the builder says it copies no device
    stat.S_IFBLK: tarfile.BLKTYPE,
}


def _add(out: BinaryIO, path: str, rel: str) -> None:
    """One file of the context, as tarfile would add it but for sockets (skipped, as tarfile skips them).
    Its owner's names are not looked up, nor its mtime's fraction kept: the builder uses neither, and
    each costs more than the rest of the entry (a PAX record apiece)."""
    st = os.lstat(path)
    kind = _KINDS.get(stat.S_IFMT(st.st_mode))
    if kind is None:
        return
    info = tarfile.TarInfo(rel)
    info.type, info.mode, info.uid, info.gid, info.mtime = kind, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, int(st.st_mtime)
    if kind == tarfile.SYMTYPE:
        info.linkname = os.readlink(path)
    elif kind in (tarfile.CHRTYPE, tarfile.BLKTYPE):
        info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
    if kind != tarfile.REGTYPE:
        out.write(pax_header(info))
        return
    with open(path, "rb") as f:
        info.size = st.st_size
        out.write(pax_header(info))
        left = st.st_size
        while left > 0:
            chunk = f.read(min(left, 1 << 20))
            if not chunk:
                raise OSError(f"{path} got shorter while it was read")
            out.write(chunk)
            left -= len(chunk)
    out.write(b"\0" * (-st.st_size % tarfile.BLOCKSIZE))


def _members(root: Path, always: frozenset[str]) -> list[str]:
    """The context's paths, relative and sorted, without what its ``.dockerignore`` excludes (the
    Dockerfile and .dockerignore themselves always go, as Docker's CLI sends them); an excluded
    directory is not even walked unless an exception pattern could bring something back."""
    ignore_file = root / ".dockerignore"
    ignore = Ignore(ignore_file.read_text(errors="replace") if ignore_file.is_file() else "")
    found: list[str] = []
    for top, dirs, files in os.walk(root):
        base = os.path.relpath(top, root)
        base = "" if base == "." else base + "/"
        kept = []
        for d in sorted(dirs):
            rel = base + d
            if not ignore.excludes(rel) or ignore.has_exceptions:
                kept.append(d)
                if not ignore.excludes(rel):
                    found.append(rel)
        dirs[:] = kept
        found += [base + f for f in files if base + f in always or not ignore.excludes(base + f)]
    return sorted(found)


def dockerfile_tar(dockerfile: bytes) -> BinaryIO:
    """A context of only a Dockerfile (``teu build - < Dockerfile``)."""
    out = tempfile.TemporaryFile()  # noqa: SIM115 - the caller closes it
    with tarfile.open(fileobj=out, mode="w") as tar:
        info = tarfile.TarInfo("Dockerfile")
        info.size, info.mode = len(dockerfile), 0o644
        tar.addfile(info, io.BytesIO(dockerfile))
    out.seek(0)
    return out


def is_archive(head: bytes) -> bool:
    """Whether bytes starting a stream are a tar, plain or gzip, bzip2 or xz compressed."""
    magics = (b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00")
    return head.startswith(magics) or (len(head) >= 262 and head[257:262] == b"ustar")
