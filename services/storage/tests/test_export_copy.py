"""Export and cp: the merged view read without mounting, symlinks resolved inside the container."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path
from typing import Any

import pytest

from teu_api.errors import InvalidArgument, NotFound
from teu_storage.storage import Storage


def _snapshot(storage: Storage, tars: Any, kit: Any) -> Path:
    image = kit.import_tar(storage, tars.busybox())
    storage.prepare_snapshot(kit.KEY, image.id)
    return Path(kit.upper(storage))


def _export(storage: Storage, key: str) -> bytes:
    buf = io.BytesIO()
    storage.export(key, buf)
    return buf.getvalue()


def _copy_from(storage: Storage, key: str, path: str) -> bytes:
    buf = io.BytesIO()
    storage.copy_from(key, path, buf)
    return buf.getvalue()


def test_export_applies_whiteouts_and_opaque_dirs(storage: Storage, tars: Any, kit: Any) -> None:
    """The tar is what the container sees: deleted files gone, opaque dirs hide the image's entries."""
    up = _snapshot(storage, tars, kit)
    (up / "bin").mkdir()
    kit.whiteout(up / "bin/su")
    (up / "home").mkdir()
    kit.make_opaque(up / "home")
    (up / "home/new").write_text("n")
    (up / "etc").mkdir()
    (up / "etc/passwd").write_text("mine")
    data = _export(storage, kit.KEY)
    members = kit.tar_members(data)
    assert "bin/su" not in members and "bin/busybox" in members and "home/user" not in members
    assert "home/new" in members and members["tmp"].mode == 0o1777
    assert members["bin/ls"].islnk() and members["bin/ls"].linkname == "bin/busybox"
    assert not any(".wh." in n for n in members)
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        passwd = tar.extractfile("etc/passwd")
        assert passwd is not None and passwd.read() == b"mine"


def test_copy_from_resolves_symlinks_inside_the_container(storage: Storage, tars: Any, kit: Any) -> None:
    """A symlink to /etc leads to the container's /etc, never the host's; the last link is kept as a link."""
    up = _snapshot(storage, tars, kit)
    os.symlink("/etc", up / "hostetc")
    os.symlink("../../../../../../etc", up / "climb")
    assert kit.tar_names(_copy_from(storage, kit.KEY, "/hostetc/passwd")) == ["passwd"]
    data = _copy_from(storage, kit.KEY, "/climb/passwd")
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        member = tar.extractfile("passwd")
        assert member is not None and member.read().startswith(b"root:x:0:0::/root")
    link = kit.tar_members(_copy_from(storage, kit.KEY, "/hostetc"))
    assert link["hostetc"].issym() and link["hostetc"].linkname == "/etc"
    assert sorted(kit.tar_names(_copy_from(storage, kit.KEY, "/home"))) == ["home", "home/user", "home/user/.profile"]


def test_copy_from_missing_path_is_not_found(storage: Storage, tars: Any, kit: Any) -> None:
    """Missing paths, deleted files and loops are refused."""
    up = _snapshot(storage, tars, kit)
    (up / "bin").mkdir()
    kit.whiteout(up / "bin/su")
    os.symlink("loop", up / "loop")
    with pytest.raises(NotFound):
        _copy_from(storage, kit.KEY, "/nope")
    with pytest.raises(NotFound):
        _copy_from(storage, kit.KEY, "/bin/su")
    with pytest.raises(InvalidArgument, match="symbolic links"):
        _copy_from(storage, kit.KEY, "/loop/x")


def test_copy_to_extracts_into_the_upper_dir(storage: Storage, tars: Any, kit: Any, tmp_path: Path) -> None:
    """Files land under the resolved directory in the upper dir, which is copied up with its attributes."""
    up = _snapshot(storage, tars, kit)
    os.symlink("/home/user", up / "h")
    src = tmp_path / "in.tar"
    src.write_bytes(tars.build(tars.file("a.txt", b"hello"), tars.dir("sub"), tars.file("sub/b")))
    assert storage.copy_to(kit.KEY, "/h", src) == 3
    assert (up / "home/user/a.txt").read_bytes() == b"hello" and (up / "home/user/sub/b").exists()
    st = os.lstat(up / "home/user")
    assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (1000, 1000, 0o750)
    assert [(c.kind, c.path) for c in storage.diff(kit.KEY)][:3] == [
        ("A", "/h"),
        ("C", "/home"),
        ("C", "/home/user"),
    ]


def test_copy_to_refuses_escapes(storage: Storage, tars: Any, kit: Any, tmp_path: Path) -> None:
    """Hostile tars and destinations that are missing or not directories are refused; nothing leaks out."""
    up = _snapshot(storage, tars, kit)
    outside = tmp_path / "outside"
    outside.mkdir()
    os.symlink(str(outside), up / "out")  # on the host it would lead outside; in the container, /tmp/...
    src = tmp_path / "in.tar"
    src.write_bytes(tars.build(tars.sym("a", str(outside)), tars.file("a/evil")))
    with pytest.raises(InvalidArgument):
        storage.copy_to(kit.KEY, "/tmp", src)
    src.write_bytes(tars.build(tars.file("../evil")))
    with pytest.raises(InvalidArgument):
        storage.copy_to(kit.KEY, "/tmp", src)
    src.write_bytes(tars.build(tars.file("x")))
    with pytest.raises(NotFound):
        storage.copy_to(kit.KEY, "/out", src)  # resolved inside the container, where it does not exist
    with pytest.raises(InvalidArgument, match="not a directory"):
        storage.copy_to(kit.KEY, "/etc/passwd", src)
    assert os.listdir(outside) == []
