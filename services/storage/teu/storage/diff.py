"""Changes of a snapshot relative to its image, read from the upper dir (Docker's A/C/D).

Only the upper dir is walked; the lower layers are probed by name (one lstat per layer that could
hold it), so the cost follows what the container wrote, not the image's size.

- a whiteout (0:0 char device) is "D";
- an entry the lower layers also show is "C", otherwise "A"; directories a change lives in are
  in the upper dir (overlayfs copied them up), so they come out as "C" as in ``docker diff``;
- an opaque directory is "C" if the lower layers show it ("A" otherwise), and each entry they show
  in it that the upper dir lacks is "D".
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass

from teu.storage.archive import is_whiteout
from teu.storage.merged import Node, View, is_opaque

__all__ = ["Change", "changes"]


@dataclass(frozen=True, order=True)
class Change:
    """One change: ``path`` absolute in the container, ``kind`` "A", "C" or "D"."""

    path: str
    kind: str


def changes(upper: str, lowers: Sequence[str]) -> list[Change]:
    """Changes in ``upper`` over ``lowers`` (top-most first), sorted by path."""
    out: list[Change] = []
    view = View(lowers) if lowers else None
    _walk(upper, "", view, view.root if view else None, out)
    out.sort()
    return out


def _walk(path: str, rel: str, view: View | None, lower: Node | None, out: list[Change]) -> None:
    """Adds the changes under upper dir ``path`` (``rel`` in the container); ``lower`` is what the
    lower layers show there (None if nothing)."""
    with os.scandir(path) as it:
        entries = list(it)
    for entry in entries:
        name = f"{rel}/{entry.name}"
        is_dir = entry.is_dir(follow_symlinks=False)
        special = not is_dir and not entry.is_file(follow_symlinks=False) and not entry.is_symlink()
        if special and is_whiteout(entry.stat(follow_symlinks=False)):
            out.append(Change(name, "D"))
            continue
        below = view.child(lower, entry.name) if view is not None and lower is not None else None
        out.append(Change(name, "C" if below is not None else "A"))
        if not is_dir:
            continue
        if below is not None and not stat.S_ISDIR(below.st.st_mode):
            below = None  # a directory replacing a file: nothing below it to compare with
        if below is not None and is_opaque(entry.path):
            assert view is not None
            upper_names = set(os.listdir(entry.path))
            out.extend(Change(f"{name}/{n}", "D") for n, _ in view.children(below) if n not in upper_names)
            below = None
        _walk(entry.path, name, view, below, out)
