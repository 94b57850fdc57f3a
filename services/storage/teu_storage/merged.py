"""The merged view of a stack of overlay layer dirs, computed in Python without mounting.

Why not mount a private read-only overlay for export/cp: storage would need its own mount namespace
(else a crash leaks host mounts the runtime does not know about), mounting the same upper dir twice
while the container runs is refused by overlayfs ("upperdir is in-use"), and a lower-only mount would
miss the writes. Reading the dirs the way overlayfs merges them costs one scandir per directory and
one lstat per name per layer, and works whether or not the container runs.

Rules (those of overlayfs): dirs are given top-most first; the first layer holding a name decides
what it is; a 0:0 character device (whiteout) hides the name in the layers below; a directory merges
with directories of the same name below it until one of them is opaque
(``trusted.overlay.opaque=y``) or a layer holds a non-directory there.

The top layer may be a running container's upper dir, which the container changes while it is read:
every directory is reached through :mod:`teu_storage.safefs` (opened relative to its parent's fd,
never through a symlink), so a directory swapped for a symlink to the host's ``/`` is refused rather
than followed. A node's layer dirs are opened when first listed or probed and closed by
:meth:`View.release` (walks do it once a subtree is done) or at the latest by :meth:`View.close`.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator, Sequence
from types import TracebackType

from teu_api.errors import InvalidArgument
from teu_storage.archive import is_whiteout
from teu_storage.safefs import Dir

__all__ = ["MAX_SYMLINKS", "Node", "View"]

MAX_SYMLINKS = 40  # Linux's limit in path resolution


class Node:
    """A visible entry: its top-most copy, entry ``name`` of layer directory ``at`` (None for the
    root), that copy's lstat ``st``, and for a directory the directories of the same name in the
    layers it may merge with, top-most first (cut at the first opaque one when they are opened)."""

    __slots__ = ("_merged", "at", "dirs", "name", "st")

    def __init__(self, at: Dir | None, name: str, st: os.stat_result, dirs: tuple[Dir, ...] = ()) -> None:
        self.at = at
        self.name = name
        self.st = st
        self.dirs = dirs
        self._merged: list[Dir] | None = None

    @property
    def is_dir(self) -> bool:
        """Whether the entry is a directory."""
        return stat.S_ISDIR(self.st.st_mode)


class View:
    """The filesystem that overlayfs would show for layer dirs ``dirs`` (top-most first).

    Holds open directories: use it as a context manager (or call :meth:`close`).
    """

    def __init__(self, dirs: Sequence[str]) -> None:
        first = Dir.root(dirs[0])
        roots = (first, *(Dir.root(d, joining=first) for d in dirs[1:]))
        self._top = first
        try:
            st = os.fstat(first.fd)
        except BaseException:
            first.close_all()
            raise
        self.root = Node(None, "", st, roots)
        self.root._merged = list(roots)  # the root merges every layer, opaque or not

    def close(self) -> None:
        """Closes every directory still open."""
        self._top.close_all()

    def __enter__(self) -> View:
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def merged(self, node: Node) -> list[Dir]:
        """The layer dirs directory ``node`` merges, opened: its dirs down to the first opaque one.

        A layer dir that vanished (the container removed it) ends the list; one that became a
        non-directory raises FailedPrecondition.
        """
        if node._merged is None:
            out: list[Dir] = []
            for d in node.dirs:
                try:
                    d.fd  # noqa: B018 - opens it
                except FileNotFoundError:
                    break
                out.append(d)
                if d.opaque():
                    break
            node._merged = out
        return node._merged

    def release(self, node: Node) -> None:
        """Closes the layer dirs of ``node`` (reopened if it is used again)."""
        for d in node.dirs:
            d.close()
        if node is not self.root:
            node._merged = None

    def child(self, parent: Node, name: str) -> Node | None:
        """The entry ``name`` in directory ``parent``, None if missing or whited out."""
        found: Node | None = None
        dirs: list[Dir] = []
        for d in self.merged(parent):
            st = d.lstat(name)
            if st is None:
                continue
            if found is None:
                if is_whiteout(st):
                    return None
                found = Node(d, name, st)
                if not stat.S_ISDIR(st.st_mode):
                    return found
            elif not stat.S_ISDIR(st.st_mode):
                break  # a whiteout or a file below a directory ends the merge
            dirs.append(d.child(name))
        if found is not None:
            found.dirs = tuple(dirs)
        return found

    def children(self, parent: Node) -> list[tuple[str, Node]]:
        """Visible entries of directory ``parent``, sorted by name."""
        nodes: dict[str, Node] = {}
        merged: dict[str, list[Dir]] = {}  # directory name -> its dirs, top-most first
        open_: set[str] = set()  # directories still taking dirs from lower layers
        hidden: set[str] = set()
        for d in self.merged(parent):
            for entry in d.entries():
                name = entry.name
                if name in hidden:
                    continue
                if name in nodes:
                    if name in open_:
                        if entry.is_dir(follow_symlinks=False):
                            merged[name].append(d.child(name))
                        else:
                            open_.discard(name)  # a whiteout or file below a directory ends the merge
                    continue
                try:
                    st = entry.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue  # removed since the listing
                if is_whiteout(st):
                    hidden.add(name)
                    continue
                nodes[name] = Node(d, name, st)
                if stat.S_ISDIR(st.st_mode):
                    merged[name] = [d.child(name)]
                    open_.add(name)
        out: list[tuple[str, Node]] = []
        for name in sorted(nodes):
            node = nodes[name]
            if name in merged:
                node.dirs = tuple(merged[name])
            out.append((name, node))
        return out

    def walk(self, node: Node, rel: str) -> Iterator[tuple[str, Node]]:
        """``node`` as ``rel`` and everything below it, parents before children, sorted.

        A directory's layer dirs stay open from when it is yielded until its subtree is done.
        """
        try:
            yield rel, node
            if node.is_dir:
                for name, child in self.children(node):
                    yield from self.walk(child, f"{rel}/{name}" if rel else name)
        finally:
            if node.is_dir:
                self.release(node)

    def readlink(self, node: Node) -> str:
        """The target of symlink ``node``."""
        if node.at is None:
            raise InvalidArgument("the root is not a symlink")
        return node.at.readlink(node.name)

    def resolve(self, path: str, *, follow_last: bool) -> tuple[str, Node | None]:
        """Resolves absolute ``path`` inside the view, symlinks included, never leaving its root.

        Returns the canonical relative path and the node (None if missing). An absolute symlink
        target restarts at the view's root and ".." stops there, as in a chroot; the host's
        filesystem is never consulted. InvalidArgument after too many symlinks. Each step is a
        lookup in directories already open, so no step can be redirected by the container.
        """
        parts = [p for p in path.split("/") if p not in ("", ".")]
        stack: list[tuple[str, Node]] = []
        hops = 0
        while parts:
            name = parts.pop(0)
            if name == "..":
                if stack:
                    stack.pop()
                continue
            parent = stack[-1][1] if stack else self.root
            node = self.child(parent, name) if parent.is_dir else None
            if node is None:
                return "/".join([n for n, _ in stack] + [name, *parts]), None
            if stat.S_ISLNK(node.st.st_mode) and (parts or follow_last):
                hops += 1
                if hops > MAX_SYMLINKS:
                    raise InvalidArgument(f"{path}: too many levels of symbolic links")
                target = self.readlink(node)
                if target.startswith("/"):
                    stack = []
                parts = [p for p in target.split("/") if p not in ("", ".")] + parts
                continue
            stack.append((name, node))
        return "/".join(n for n, _ in stack), stack[-1][1] if stack else self.root
