"""Reading a directory tree that someone else may be changing, without ever leaving it.

A running container's upper dir is the container's to change while storage reads it (commit, export,
diff, cp). Resolving a host path string through it is the bug class of CVE-2018-15664: between a
listing that says "d is a directory" and a later ``open("upper/d/x")``, root in the container can
turn ``d`` into a symlink to the host's ``/``, and the kernel follows it. So every step here starts at
an open directory and takes one name with ``O_NOFOLLOW``: a :class:`Dir` is opened relative to its
parent's fd, entries are listed and lstat'ed relative to it, files are opened relative to it (and
must still be regular files once open), symlinks are read relative to it, xattrs are read through
the opened fd. A name swapped for a symlink then fails with ELOOP instead of leading anywhere.

What the reader sees can still be inconsistent (the container is changing it), but only ever made
of the tree's own entries. An entry that vanishes while being read is left out, as if it had been
deleted a moment earlier (``FileNotFoundError`` reaches the caller, which skips it); an entry that
changes type (a directory or file replaced by a symlink, a FIFO or a device) is refused with
FailedPrecondition.

File descriptors: a Dir opens on first use and is closed by :meth:`Dir.close`; walks close each
directory once its subtree is done, so a walk holds about one fd per level of the current path
(per merged layer). Every Dir made from a root is tracked by that root, whose :meth:`Dir.close_all`
closes whatever is still open (the end of an operation, or an error part-way).
"""

from __future__ import annotations

import errno
import os
import stat
from types import TracebackType

from teu_api.errors import FailedPrecondition
from teu_storage.archive import OPAQUE_XATTR

__all__ = ["DIR_FLAGS", "FILE_FLAGS", "Dir", "changed", "xattrs"]

DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# O_NONBLOCK: a FIFO swapped in for a file must not block the open (nor the reads).
# how a regular file, found through an O_PATH fd, is opened again through /proc/self/fd for reading
# (that magic link leads to the very inode checked, so it must be followed: no O_NOFOLLOW here)
FILE_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
_SWAPPED = (errno.ELOOP, errno.ENOTDIR)  # O_NOFOLLOW met a symlink; O_DIRECTORY met a non-directory


def changed(rel: str) -> FailedPrecondition:
    """The error for an entry that changed type while being read."""
    return FailedPrecondition(f"/{rel} changed while being read; stop the container first")


class Dir:
    """A directory of a tree being read: its root opened by path (a trusted one, storage's own), every
    other one by ``name`` relative to its ``parent``'s fd, never through a symlink.

    Opened on first use of :attr:`fd`; :meth:`close` may be called any number of times.
    """

    __slots__ = ("_fd", "_open", "name", "parent")

    def __init__(self, parent: Dir | None, name: str, open_: set[Dir] | None = None) -> None:
        self.parent = parent
        self.name = name
        self._fd = -1
        self._open: set[Dir] = open_ if open_ is not None else set()

    @classmethod
    def root(cls, path: str, joining: Dir | None = None) -> Dir:
        """The root of a tree at ``path`` (a directory storage owns; its last component is not a
        symlink). With ``joining``, its open dirs are tracked (and closed by close_all) with that
        tree's, as for the layers of one merged view."""
        return cls(None, path, joining._open if joining is not None else None)

    def child(self, name: str) -> Dir:
        """Subdirectory ``name`` (one component), not opened yet."""
        if "/" in name or name in ("", ".", ".."):
            raise ValueError(f"not a single path component: {name!r}")
        return Dir(self, name, self._open)

    @property
    def fd(self) -> int:
        """The directory's fd, opening it if needed: FileNotFoundError if it is gone,
        FailedPrecondition if it is no longer a directory."""
        if self._fd < 0:
            try:
                if self.parent is None:
                    self._fd = os.open(self.name, DIR_FLAGS)
                else:
                    self._fd = os.open(self.name, DIR_FLAGS, dir_fd=self.parent.fd)
            except OSError as exc:
                if exc.errno in _SWAPPED:
                    raise changed(self.rel) from exc
                raise
            self._open.add(self)
        return self._fd

    @property
    def rel(self) -> str:
        """The path from the root (for messages)."""
        parts: list[str] = []
        d: Dir | None = self
        while d is not None and d.parent is not None:
            parts.append(d.name)
            d = d.parent
        return "/".join(reversed(parts))

    def entries(self) -> list[os.DirEntry[str]]:
        """The directory's entries in on-disk order; their ``stat(follow_symlinks=False)`` is an
        lstat relative to this directory."""
        with os.scandir(self.fd) as it:
            return list(it)

    def lstat(self, name: str) -> os.stat_result | None:
        """The lstat of entry ``name``, None if there is none."""
        try:
            return os.stat(name, dir_fd=self.fd, follow_symlinks=False)
        except FileNotFoundError:
            return None

    def open_file(self, name: str) -> tuple[int, os.stat_result]:
        """Opens regular file ``name`` for reading: (fd, its fstat). FileNotFoundError if it is gone,
        FailedPrecondition if it is not a regular file any more (symlink, FIFO, device, directory)."""
        # O_PATH first: opening a device node for real has effects of its own (a watchdog arms, a
        # tty becomes ours) and storage is host root outside the container's device cgroup; only
        # once it is known to be a regular file is that very inode opened for reading.
        try:
            path_fd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=self.fd)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise changed(self._rel(name)) from exc
            raise
        try:
            st = os.fstat(path_fd)
            if not stat.S_ISREG(st.st_mode):
                raise changed(self._rel(name))
            fd = os.open(f"/proc/self/fd/{path_fd}", FILE_FLAGS)
        finally:
            os.close(path_fd)
        return fd, st

    def readlink(self, name: str) -> str:
        """The target of symlink ``name``: FileNotFoundError if it is gone, FailedPrecondition if it
        is not a symlink any more."""
        try:
            return os.readlink(name, dir_fd=self.fd)
        except OSError as exc:
            if exc.errno == errno.EINVAL:
                raise changed(self._rel(name)) from exc
            raise

    def opaque(self) -> bool:
        """Whether the directory carries overlay's opaque xattr."""
        fd = self.fd
        try:
            return os.getxattr(fd, OPAQUE_XATTR) == b"y"
        except OSError:
            return False

    def close(self) -> None:
        """Closes the fd if open (reopened on next use)."""
        if self._fd >= 0:
            fd, self._fd = self._fd, -1
            self._open.discard(self)
            os.close(fd)

    def close_all(self) -> None:
        """Closes every open directory of this tree."""
        for d in list(self._open):
            d.close()

    def __enter__(self) -> Dir:
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.close_all()

    def _rel(self, name: str) -> str:
        rel = self.rel
        return f"{rel}/{name}" if rel else name


def xattrs(fd: int, skip: str = "") -> dict[str, bytes]:
    """The extended attributes of the open file or directory ``fd`` by name, but those whose name
    starts with ``skip`` (if given)."""
    try:
        names = os.listxattr(fd)
    except OSError:
        return {}
    out: dict[str, bytes] = {}
    for name in names:
        if skip and name.startswith(skip):
            continue
        try:
            out[name] = os.getxattr(fd, name)
        except OSError:
            continue
    return out
