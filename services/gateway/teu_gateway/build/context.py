"""A build's files: the context tar a client sent, read where it lies, and the tars COPY makes of it.

The context is spooled to a file (a gzip, bzip2 or xz one unpacked first) and indexed by member
path; nothing of it is ever extracted on the host. Every path a Dockerfile names is resolved in
the index, symlinks followed inside the context only (an absolute target or ``..`` stops at its
root, as Docker's FollowSymlinkInScope), so no source can reach past it; a member whose own name
leaves it refuses the whole context. ``.dockerignore`` hides what it excludes from every COPY.

:func:`write_copy` writes what a COPY or ADD copies as a new tar, owners and modes as the
instruction says; :func:`content_digest` is the digest of that content (names, types, modes,
owners, link targets and bytes; not times), the part of a build cache key that changes with the
files copied, computed without writing anything.
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import lzma
import posixpath
import shutil
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from teu_api.dockerignore import Ignore, glob_regex
from teu_api.errors import InvalidArgument, NotFound

__all__ = ["Context", "Entry", "Owner", "content_digest", "unpack", "write_copy"]

MAX_MEMBERS = 1_000_000
MAX_SYMLINKS = 40
_MAGIC = ((b"\x1f\x8b", gzip.open), (b"BZh", bz2.open), (b"\xfd7zXZ\x00", lzma.open))


def unpack(path: Path) -> None:
    """Replaces a compressed tar at ``path`` by the plain tar inside (a plain one stays)."""
    with open(path, "rb") as f:
        head = f.read(6)
    for magic, opener in _MAGIC:
        if head.startswith(magic):
            plain = path.with_suffix(".plain")
            try:
                with opener(path, "rb") as src, open(plain, "wb") as out:
                    shutil.copyfileobj(src, out, 1 << 20)
            except (OSError, EOFError, lzma.LZMAError) as exc:
                plain.unlink(missing_ok=True)
                raise InvalidArgument(f"build context: cannot decompress: {exc}") from exc
            plain.replace(path)
            return


@dataclass(frozen=True)
class Owner:
    """What COPY's ``--chown`` and ``--chmod`` set (None: keep, or root for the context's files)."""

    uid: int | None = None
    gid: int | None = None
    mode: int | None = None


@dataclass(frozen=True)
class Entry:
    """A member to copy: its name in the new tar and where its header and bytes come from."""

    name: str
    info: tarfile.TarInfo
    archive: tarfile.TarFile
    #: Copied as root's files unless told otherwise (the build context's are; an image's or an archive's keep theirs).
    root_owned: bool


class Context:
    """An indexed tar of files (a build context, or what a COPY --from read of an image)."""

    def __init__(self, path: Path, ignore_text: str | None = None, root_owned: bool = True) -> None:
        self.path = path
        self.root_owned = root_owned
        try:
            self._tar = tarfile.open(path, "r:")  # noqa: SIM115 - open while the context is, closed by close()
        except tarfile.TarError as exc:
            raise InvalidArgument(f"build context is not a tar: {exc}") from exc
        self.members: dict[str, tarfile.TarInfo] = {}
        try:
            for n, m in enumerate(self._tar):
                if n >= MAX_MEMBERS:
                    raise InvalidArgument(f"build context has more than {MAX_MEMBERS} files")
                name = _clean(m.name)
                if name:
                    self.members[name] = m
        except tarfile.TarError as exc:
            raise InvalidArgument(f"build context: bad tar: {exc}") from exc
        for name in list(self.members):
            parent = posixpath.dirname(name)
            while parent and parent not in self.members:
                d = tarfile.TarInfo(parent)
                d.type, d.mode = tarfile.DIRTYPE, 0o755
                self.members[parent] = d
                parent = posixpath.dirname(parent)
        self.ignore = Ignore(ignore_text if ignore_text is not None else self._text_or_empty(".dockerignore"))

    def close(self) -> None:
        """Closes the tar."""
        self._tar.close()

    def _text_or_empty(self, name: str) -> str:
        try:
            return self.read_text(name)
        except NotFound:
            return ""

    def read_text(self, name: str, limit: int = 4 << 20) -> str:
        """The text of file ``name`` (symlinks followed in the context; .dockerignore not applied)."""
        path = self.resolve(name)
        info = self.members.get(path) if path is not None else None
        if info is None or not (info.isreg() or info.islnk()):
            raise NotFound(f"cannot find {name} in the build context")
        if info.size > limit:
            raise InvalidArgument(f"{name} is larger than {limit} bytes")
        f = self._tar.extractfile(info)
        if f is None:
            raise NotFound(f"cannot read {name} in the build context")
        return f.read().decode("utf-8", errors="replace")

    def resolve(self, path: str) -> str | None:
        """The canonical path (``""`` for the root) ``path`` leads to in the context, every symlink
        followed without leaving it; None if it leads nowhere."""
        parts = [p for p in path.split("/") if p not in ("", ".")]
        stack: list[str] = []
        hops = 0
        while parts:
            name = parts.pop(0)
            if name == "..":
                if stack:
                    stack.pop()
                continue
            m = self.members.get("/".join([*stack, name]))
            if m is None:
                return None
            if m.issym():
                hops += 1
                if hops > MAX_SYMLINKS:
                    raise InvalidArgument(f"{path}: too many levels of symbolic links")
                if m.linkname.startswith("/"):
                    stack = []
                parts = [p for p in m.linkname.split("/") if p not in ("", ".")] + parts
                continue
            stack.append(name)
        return "/".join(stack)

    def is_dir(self, path: str) -> bool:
        """Whether canonical ``path`` is a directory (the root is)."""
        return path == "" or (path in self.members and self.members[path].isdir())

    def visible(self, path: str) -> bool:
        """Whether canonical ``path`` may be copied (.dockerignore does not exclude it)."""
        return path == "" or not self.ignore.excludes(path)

    def sources(self, source: str, what: str) -> list[str]:
        """The canonical paths a COPY source names: a wildcard's matches, or the one path it leads
        to. NotFound (in Docker's words) when there is none or .dockerignore hides it."""
        cleaned = posixpath.normpath("/" + source).lstrip("/")
        if posixpath.normpath(source).startswith(".."):
            raise InvalidArgument(f"{what} failed: forbidden path outside the build context: {source}")
        if any(c in cleaned for c in "*?["):
            regex = glob_regex(cleaned, doublestar=False)
            found = sorted(p for p in self.members if self.visible(p) and regex.fullmatch(p))
            if not found:
                raise NotFound(f"{what} failed: no source files were specified for {source}")
            return found
        path = self.resolve(cleaned)
        if path is None or not self.visible(path):
            raise NotFound(f"{what} failed: file not found in build context or excluded by .dockerignore: {source}")
        return [path]

    def entries(self, path: str, name: str) -> Iterator[Entry]:
        """What copying canonical ``path`` brings: the file itself named ``name``, or a directory's
        visible content (not the directory) under ``name`` ("" for the destination itself)."""
        if not self.is_dir(path):
            yield Entry(name, self.members[path], self._tar, self.root_owned)
            return
        prefix = path + "/" if path else ""
        for member in sorted(p for p in self.members if p.startswith(prefix) and p != path):
            if self.visible(member):
                yield Entry(posixpath.join(name, member[len(prefix) :]), self.members[member], self._tar, self.root_owned)

    def is_archive(self, path: str) -> bool:
        """Whether file ``path`` is a tar archive, plain or compressed (ADD extracts those)."""
        info = self.members[path]
        if not info.isreg():
            return False
        f = self._tar.extractfile(info)
        head = f.read(512) if f is not None else b""
        return any(head.startswith(magic) for magic, _ in _MAGIC) or (len(head) == 512 and head[257:262] == b"ustar")

    def save(self, path: str, out: Path) -> None:
        """Writes file ``path``'s bytes to ``out``."""
        f = self._tar.extractfile(self.members[path])
        if f is None:
            raise NotFound(f"cannot read {path} in the build context")
        with open(out, "wb") as dst:
            shutil.copyfileobj(f, dst, 1 << 20)


def _clean(name: str) -> str:
    """A member's normalized relative name ("" for the root); InvalidArgument if it leaves the tar."""
    cleaned = posixpath.normpath("/" + name)
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise InvalidArgument(f"build context: member {name!r} points outside the context")
    return cleaned.lstrip("/")


def write_copy(entries: Iterator[Entry], out: IO[bytes], owner: Owner) -> int:
    """Writes ``entries`` as a tar to ``out``: owned by ``owner`` (else by root for root-owned
    entries, else as they were), modes as ``owner.mode`` or theirs. Returns the number of members."""
    count = 0
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for e in entries:
            info = _header(e, owner)
            tar.addfile(info, _content(e) if info.isreg() else None)
            count += 1
    return count


def content_digest(entries: Iterator[Entry], owner: Owner) -> str:
    """The digest of what :func:`write_copy` would write: names, types, modes, owners, link targets
    and bytes, not times (a build cache key's part that changes with the files copied)."""
    digest = hashlib.sha256()
    for e in entries:
        info = _header(e, owner)
        digest.update(f"{info.name}\0{info.type!r}\0{info.mode:o}\0{info.uid}\0{info.gid}\0{info.linkname}\0".encode())
        if info.isreg():
            src = _content(e)
            while chunk := src.read(1 << 20):
                digest.update(chunk)
    return "sha256:" + digest.hexdigest()


def _content(e: Entry) -> IO[bytes]:
    src = e.archive.extractfile(e.info)
    if src is None:
        raise InvalidArgument(f"cannot read {e.info.name} of the build context")
    return src


def _header(e: Entry, owner: Owner) -> tarfile.TarInfo:
    src = e.info
    info = tarfile.TarInfo(e.name)
    info.mtime = src.mtime
    info.mode = owner.mode if owner.mode is not None else src.mode & 0o7777
    default_uid, default_gid = (0, 0) if e.root_owned else (src.uid, src.gid)
    info.uid = owner.uid if owner.uid is not None else default_uid
    info.gid = owner.gid if owner.gid is not None else default_gid
    if src.isreg() or src.islnk():
        info.type, info.size = tarfile.REGTYPE, src.size  # a hard link's target is copied as a file
    elif src.issym():
        info.type, info.linkname = tarfile.SYMTYPE, src.linkname
    elif src.isdir():
        info.type = tarfile.DIRTYPE
    elif src.isfifo():
        info.type = tarfile.FIFOTYPE
    else:
        raise InvalidArgument(f"cannot copy {src.name}: devices are not copied by a build")
    if info.issym():
        info.mode = 0o777
    return info
