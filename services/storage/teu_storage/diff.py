"""Changes of a snapshot relative to its image, read from the upper dir (Docker's A/C/D).

Only the upper dir is walked; the lower layers are probed by name (one lstat per layer that could
hold it), so the cost follows what the container wrote, not the image's size.

- a whiteout (0:0 char device) is "D";
- an entry the lower layers also show is "C", otherwise "A"; directories a change lives in are
  in the upper dir (overlayfs copied them up), so they come out as "C" as in ``docker diff``;
- an opaque directory is "C" if the lower layers show it ("A" otherwise), and each entry they show
  in it that the upper dir lacks is "D".

The upper dir may belong to a running container: it is read through :mod:`teu_storage.safefs`
(relative to open directories, never through a symlink), and entries removed meanwhile are left out.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass

from teu_storage.archive import is_whiteout
from teu_storage.merged import Node, View
from teu_storage.safefs import Dir

__all__ = ["Change", "changes"]


@dataclass(frozen=True, order=True)
class Change:
    """One change: ``path`` absolute in the container, ``kind`` "A", "C" or "D"."""

    path: str
    kind: str


def changes(upper: str, lowers: Sequence[str]) -> list[Change]:
    """Changes in ``upper`` over ``lowers`` (top-most first), sorted by path."""
    out: list[Change] = []
    with Dir.root(upper) as top:
        if lowers:
            with View(lowers) as view:
                _walk(top, "", view, view.root, out)
        else:
            _walk(top, "", None, None, out)
    out.sort()
    return out


def _walk(
    d: Dir, rel: str, view: View | None, lower: Node | None, out: list[Change],
    entries: list[os.DirEntry[str]] | None = None,
) -> None:  # fmt: skip
    """Adds the changes under upper directory ``d`` (``rel`` in the container; ``entries`` if already
    listed); ``lower`` is what the lower layers show there (None if nothing)."""
    if entries is None:
        try:
            entries = d.entries()
        except FileNotFoundError:
            return  # removed since its parent was listed
    for entry in entries:
        name = f"{rel}/{entry.name}"
        is_dir = entry.is_dir(follow_symlinks=False)
        special = not is_dir and not entry.is_file(follow_symlinks=False) and not entry.is_symlink()
        if special:
            try:
                st = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            if is_whiteout(st):
                out.append(Change(name, "D"))
                continue
        below = view.child(lower, entry.name) if view is not None and lower is not None else None
        out.append(Change(name, "C" if below is not None else "A"))
        if not is_dir:
            continue
        if below is not None and not stat.S_ISDIR(below.st.st_mode):
            below = None  # a directory replacing a file: nothing below it to compare with
        sub = d.child(entry.name)
        try:
            listed = None
            if below is not None and view is not None and sub.opaque():
                listed = sub.entries()
                upper_names = {e.name for e in listed}
                out.extend(Change(f"{name}/{n}", "D") for n, _ in view.children(below) if n not in upper_names)
                view.release(below)
                below = None
            _walk(sub, name, view, below, out, listed)
        except FileNotFoundError:
            pass  # removed since the listing
        finally:
            sub.close()
            if below is not None and view is not None:
                view.release(below)
