"""A container's filesystem as its snapshot holds it: changes (diff), export, and copies out and in.

What a caller may rely on: reads (diff, export, copy_from) are safe while the container runs: every
step opens one name in a directory already open, so the container cannot redirect them outside its
root (see safefs.py), and an entry that changes type while read is FailedPrecondition. copy_to
writes into the upper dir and is meant for a container that is not running. Paths are absolute
inside the container (InvalidArgument otherwise); a missing one is NotFound.
"""

from __future__ import annotations

import os
import posixpath
import stat
import tempfile
from pathlib import Path
from typing import IO

import structlog

from teu_api.errors import FailedPrecondition, InvalidArgument, NotFound
from teu_storage import archive, diff, tarwriter
from teu_storage.merged import View
from teu_storage.safefs import Dir
from teu_storage.snapshots import Snapshot, Snapshots

__all__ = ["ContainerFS"]

log = structlog.get_logger()


class ContainerFS:
    """Reads and writes the merged filesystems of ``snapshots``."""

    def __init__(self, snapshots: Snapshots) -> None:
        self._snapshots = snapshots

    def diff(self, key: str) -> list[diff.Change]:
        """Changes of snapshot ``key`` relative to its image (Docker's A/C/D), sorted by path."""
        snapshot = self._snapshots.get(key)
        return diff.changes(str(snapshot.upper), snapshot.lowers)

    def export(self, key: str, out: IO[bytes]) -> None:
        """Writes snapshot ``key``'s merged filesystem to ``out`` as a tar.

        The container may be running: its upper dir is read without following anything it can swap
        (see safefs.py); FailedPrecondition if an entry changes type while being read.
        """
        with _merged(self._snapshots.get(key)) as view:
            tarwriter.write_view(view, view.root, "", out)

    def copy_from(self, key: str, path: str, out: IO[bytes]) -> None:
        """Writes ``path`` (file or tree) of snapshot ``key``'s merged filesystem as a tar.

        Symlinks on the way are resolved inside the container's root; a symlink at the end is copied
        as a link, as ``docker cp`` does. NotFound for a missing path. Each step of the resolution
        and of the walk looks up one name in a directory already open, so a running container cannot
        redirect it (see safefs.py).
        """
        if not path.startswith("/"):
            raise InvalidArgument(f"copy path must be absolute: {path!r}")
        with _merged(self._snapshots.get(key)) as view:
            rel, node = view.resolve(path, follow_last=False)
            if node is None:
                raise NotFound(f"Could not find the file {path} in container {key[:12]}")
            tarwriter.write_view(view, node, rel.rpartition("/")[2], out)

    def fill(self, key: str, path: str, dest: Path, tmp: Path) -> bool:
        """Copies what directory ``path`` of snapshot ``key`` holds into the empty directory ``dest``,
        the directory's owner and mode included (a new volume mounted there, as Docker fills one);
        False, copying nothing, if ``path`` is not a directory there. Read as ``copy_from`` reads, and
        extracted with the checks of an import."""
        with _merged(self._snapshots.get(key)) as view:
            _rel, node = view.resolve(path, follow_last=True)
            if node is None or not node.is_dir:
                return False
            with tempfile.NamedTemporaryFile(dir=tmp, prefix="fill-") as f:
                tarwriter.write_view(view, node, ".", f)
                f.flush()
                stats = archive.extract(Path(f.name), dest)
        log.info("volume_filled", key=key, path=path, files=stats.files)
        return True

    def copy_to(self, key: str, path: str, tar_path: Path, make_parents: bool = False) -> int:
        """Extracts the tar at ``tar_path`` into directory ``path`` of snapshot ``key``; returns members.

        The directory is resolved in the merged view (symlinks inside the container's root only),
        then made in the upper dir as overlayfs would copy it up, and the tar is extracted there with
        the same checks as an import: nothing lands outside it. With ``make_parents`` the missing
        part of the path is made (root's, 0755), as a build's COPY does. Meant for a container that
        is not running: overlayfs does not expect its upper dir to change under a mount, and a
        running container could race the checks (the gateway has the runtime copy into a running one).
        """
        if not path.startswith("/"):
            raise InvalidArgument(f"copy destination must be absolute: {path!r}")
        snapshot = self._snapshots.get(key)
        with _merged(snapshot) as view:
            rel, node = view.resolve(path, follow_last=True)
            missing: list[str] = []
            if node is None and make_parents:
                rel, missing = _existing_part(view, posixpath.normpath(path))
            elif node is None:
                raise NotFound(f"Could not find the file {path} in container {key[:12]}")
            elif not node.is_dir:
                raise InvalidArgument(f"copy destination {path} is not a directory")
            dest = _copy_up_dirs(view, snapshot.upper, rel)
        dest = _make_dirs(dest, missing)
        stats = archive.extract(tar_path, dest, archive.Options(into_existing=True))
        log.info("copied_to_snapshot", key=key, path=path, files=stats.files)
        return stats.files


def _existing_part(view: View, path: str) -> tuple[str, list[str]]:
    """Splits absolute, normalized ``path`` into the canonical relative path of its longest prefix that
    resolves to a directory in ``view`` and the names missing after it; InvalidArgument if a part
    exists and is no directory."""
    names = [n for n in path.split("/") if n]
    for cut in range(len(names), -1, -1):
        rel, node = view.resolve("/" + "/".join(names[:cut]), follow_last=True)
        if node is None:
            continue
        if not node.is_dir:
            raise InvalidArgument(f"copy destination {path}: /{'/'.join(names[:cut])} is not a directory")
        return rel, names[cut:]
    raise NotFound(f"{path}: the container has no root")  # the root always resolves


def _make_dirs(dest: Path, names: list[str]) -> Path:
    """Makes ``names`` one below the other under ``dest`` (a directory just copied up, by name: the
    container is not running), root's with mode 0755; returns the last."""
    for name in names:
        dest = dest / name
        try:
            os.mkdir(dest, 0o755)
        except FileExistsError as exc:  # a dangling symlink or a deletion's whiteout
            raise InvalidArgument(f"copy destination: {name} exists and is no directory") from exc
        os.chmod(dest, 0o755)  # whatever the umask
    return dest


def _merged(snapshot: Snapshot) -> View:
    """The merged view of ``snapshot``: its upper dir over its image's layers."""
    return View([str(snapshot.upper), *snapshot.lowers])


def _copy_up_dirs(view: View, upper: Path, rel: str) -> Path:
    """Makes directory ``rel`` (canonical, no symlinks) exist in ``upper``, copying attributes from
    what the merged view shows there, as overlayfs's copy-up does; returns its path.

    Each directory is made and set up relative to its open parent, never through a symlink. The
    path returned is then used by name, which is safe only while the container is not running (the
    gateway has the runtime copy into a running one, inside its mounted root).
    """
    node = view.root
    with Dir.root(str(upper)) as top:
        d = top
        for name in [p for p in rel.split("/") if p]:
            child = view.child(node, name)
            if child is None or not child.is_dir:
                raise NotFound(f"{rel} vanished from the container")
            node = child
            st = d.lstat(name)
            if st is None:
                os.mkdir(name, 0o700, dir_fd=d.fd)
            elif not stat.S_ISDIR(st.st_mode):
                raise FailedPrecondition(f"{rel} changed in the container while copying")
            d = d.child(name)
            fd = d.fd  # FailedPrecondition if it is no longer a directory
            if st is None:
                os.chown(fd, node.st.st_uid, node.st.st_gid)
                os.chmod(fd, stat.S_IMODE(node.st.st_mode))
                os.utime(fd, ns=(node.st.st_atime_ns, node.st.st_mtime_ns))
    return upper / rel
