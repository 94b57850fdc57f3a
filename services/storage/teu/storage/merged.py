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
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from teu.errors import InvalidArgument
from teu.storage.archive import OPAQUE_XATTR, is_whiteout

__all__ = ["MAX_SYMLINKS", "Node", "View", "is_opaque"]

MAX_SYMLINKS = 40  # Linux's limit in path resolution


@dataclass(frozen=True)
class Node:
    """A visible entry: its top-most on-disk ``path`` and lstat, and for a directory its merged dirs."""

    path: str
    st: os.stat_result
    dirs: tuple[str, ...] = ()

    @property
    def is_dir(self) -> bool:
        """Whether the entry is a directory."""
        return stat.S_ISDIR(self.st.st_mode)


def is_opaque(path: str) -> bool:
    """Whether directory ``path`` carries overlay's opaque xattr."""
    try:
        return os.getxattr(path, OPAQUE_XATTR, follow_symlinks=False) == b"y"
    except OSError:
        return False


class View:
    """The filesystem that overlayfs would show for layer dirs ``dirs`` (top-most first)."""

    def __init__(self, dirs: Sequence[str]) -> None:
        self.root = Node(dirs[0], os.lstat(dirs[0]), tuple(dirs))

    def child(self, parent: Node, name: str) -> Node | None:
        """The entry ``name`` in directory ``parent``, None if missing or whited out."""
        found: Node | None = None
        merged: list[str] = []
        for d in parent.dirs:
            path = os.path.join(d, name)
            try:
                st = os.lstat(path)
            except (FileNotFoundError, NotADirectoryError):
                continue
            if found is None:
                if is_whiteout(st):
                    return None
                found = Node(path, st)
                if not stat.S_ISDIR(st.st_mode):
                    return found
            elif not stat.S_ISDIR(st.st_mode):
                break  # a whiteout or a file below a directory ends the merge
            merged.append(path)
            if is_opaque(path):
                break
        if found is None:
            return None
        return Node(found.path, found.st, tuple(merged))

    def children(self, parent: Node) -> list[tuple[str, Node]]:
        """Visible entries of directory ``parent``, sorted by name."""
        nodes: dict[str, Node] = {}
        merged: dict[str, list[str]] = {}  # directory name -> its dirs, top-most first
        open_: set[str] = set()  # directories still taking dirs from lower layers
        hidden: set[str] = set()
        for d in parent.dirs:
            with os.scandir(d) as entries:
                for entry in entries:
                    name = entry.name
                    if name in hidden:
                        continue
                    if name in nodes:
                        if name in open_:
                            if entry.is_dir(follow_symlinks=False):
                                merged[name].append(entry.path)
                                if is_opaque(entry.path):
                                    open_.discard(name)
                            else:
                                open_.discard(name)  # a whiteout or file below a directory ends the merge
                        continue
                    st = entry.stat(follow_symlinks=False)
                    if is_whiteout(st):
                        hidden.add(name)
                        continue
                    nodes[name] = Node(entry.path, st)
                    if stat.S_ISDIR(st.st_mode):
                        merged[name] = [entry.path]
                        if not is_opaque(entry.path):
                            open_.add(name)
        out: list[tuple[str, Node]] = []
        for name in sorted(nodes):
            node = nodes[name]
            if name in merged:
                node = Node(node.path, node.st, tuple(merged[name]))
            out.append((name, node))
        return out

    def walk(self, node: Node, rel: str) -> Iterator[tuple[str, Node]]:
        """``node`` as ``rel`` and everything below it, parents before children, sorted."""
        yield rel, node
        if node.is_dir:
            for name, child in self.children(node):
                yield from self.walk(child, f"{rel}/{name}" if rel else name)

    def resolve(self, path: str, *, follow_last: bool) -> tuple[str, Node | None]:
        """Resolves absolute ``path`` inside the view, symlinks included, never leaving its root.

        Returns the canonical relative path and the node (None if missing). An absolute symlink
        target restarts at the view's root and ".." stops there, as in a chroot; the host's
        filesystem is never consulted. InvalidArgument after too many symlinks.
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
                target = os.readlink(node.path)
                if target.startswith("/"):
                    stack = []
                parts = [p for p in target.split("/") if p not in ("", ".")] + parts
                continue
            stack.append((name, node))
        return "/".join(n for n, _ in stack), stack[-1][1] if stack else self.root
