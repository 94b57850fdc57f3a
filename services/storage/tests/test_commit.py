"""Commit: the writable layer becomes an OCI layer tar and a layer dir that stacks in overlayfs."""

from __future__ import annotations

import io
import json
import os
import stat
import tarfile
from pathlib import Path
from typing import Any

from teu_storage.imagespec import ImageConfig
from teu_storage.storage import Storage


def _layer_tar(storage: Storage, ref: str) -> bytes:
    """The top layer tar of ``ref``, rebuilt through save."""
    buf = io.BytesIO()
    storage.save([ref], "docker-archive", buf)
    image = storage.get_image(ref)
    with tarfile.open(fileobj=io.BytesIO(buf.getvalue())) as outer:
        member = outer.extractfile(image.layers[-1][7:] + "/layer.tar")
        assert member is not None
        return member.read()


def test_commit_writes_oci_whiteouts_and_keeps_attributes(storage: Storage, tars: Any, kit: Any) -> None:
    """Whiteouts become .wh. entries, opaque dirs .wh..wh..opq; modes, owners, xattrs, links, devices survive."""
    base = kit.import_tar(storage, tars.busybox(), "base")
    storage.prepare_snapshot(kit.KEY, base.id)
    up = kit.upper(storage)
    (up / "bin").mkdir()
    kit.whiteout(up / "bin/su")
    (up / "home").mkdir()
    kit.make_opaque(up / "home")
    (up / "home/x").write_text("x")
    (up / "srv").mkdir(mode=0o750)
    (up / "srv/tool").write_text("t")
    os.chown(up / "srv/tool", 1000, 2000)  # before chmod: chown clears setuid
    os.chmod(up / "srv/tool", 0o4755)
    os.setxattr(up / "srv/tool", "user.note", b"\xffbinary")
    os.link(up / "srv/tool", up / "srv/tool2")
    os.symlink("/etc/passwd", up / "srv/link")
    os.mknod(up / "srv/null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    image = storage.commit(kit.KEY, "snap:v1", ImageConfig(cmd=["sh"]), "my change", "me")
    assert image.repo_tags == ("snap:v1",) and image.parent == base.id and image.comment == "my change"
    assert image.config.cmd == ("sh",)
    members = kit.tar_members(_layer_tar(storage, "snap:v1"))
    assert "bin/.wh.su" in members and "home/.wh..wh..opq" in members
    tool = members["srv/tool"]
    assert (tool.mode, tool.uid, tool.gid) == (0o4755, 1000, 2000)
    assert tool.pax_headers["SCHILY.xattr.user.note"].encode("utf-8", "surrogateescape") == b"\xffbinary"
    assert not any("trusted.overlay" in k for m in members.values() for k in m.pax_headers)
    assert members["srv/tool2"].islnk() and members["srv/tool2"].linkname == "srv/tool"
    assert members["srv/link"].linkname == "/etc/passwd"
    assert members["srv/null"].ischr() and (members["srv/null"].devmajor, members["srv/null"].devminor) == (1, 3)
    layer = storage.layers.dirs.path(image.layers[-1])
    assert stat.S_ISCHR(os.lstat(layer / "bin/su").st_mode) and os.lstat(layer / "bin/su").st_rdev == 0
    assert os.getxattr(layer / "home", "trusted.overlay.opaque") == b"y"
    assert os.getxattr(layer / "srv/tool", "user.note") == b"\xffbinary"
    assert os.lstat(layer / "srv/tool").st_ino == os.lstat(layer / "srv/tool2").st_ino
    assert os.lstat(layer / "srv/null").st_rdev == os.makedev(1, 3)


def test_commit_records_config_history_and_author(storage: Storage, tars: Any, kit: Any) -> None:
    """The new config lists parent layers plus one, keeps the platform, and appends a history entry."""
    base = kit.import_tar(storage, tars.busybox(), "base")
    storage.prepare_snapshot(kit.KEY, base.id)
    image = storage.commit(kit.KEY, "", ImageConfig(env=["A=1"]), "msg", "Ann")
    doc = json.loads(storage.images.config(image.id))
    assert doc["rootfs"]["diff_ids"] == list(image.layers) and doc["author"] == "Ann"
    assert [h["created_by"] for h in doc["history"]] == ["teu import", "commit: msg"]
    history = storage.history(image.id)
    assert [(h.id, h.created_by, h.comment) for h in history] == [
        (image.id, "commit: msg", "msg"),
        (base.id, "teu import", "Imported from tar stream"),
    ]
    assert history[1].size == base.size and history[0].created_at > history[1].created_at > 0
    assert image.repo_tags == ()


def test_committed_image_runs_the_changes_in_real_overlay(storage: Storage, tars: Any, kit: Any, tmp_path: Path) -> None:
    """Changes made through a real overlay mount are exactly what a snapshot of the commit shows."""
    base = kit.import_tar(storage, tars.busybox(), "base")
    [mount] = storage.prepare_snapshot(kit.KEY, base.id)
    with kit.mounted(mount, tmp_path / "m") as root:
        (root / "etc/passwd").write_text("changed\n")
        os.unlink(root / "bin/su")
        os.system(f"rm -rf {root}/home && mkdir {root}/home && touch {root}/home/fresh")
    assert [(c.kind, c.path) for c in storage.diff(kit.KEY)] == [
        ("C", "/bin"),
        ("D", "/bin/su"),
        ("C", "/etc"),
        ("C", "/etc/passwd"),
        ("C", "/home"),
        ("A", "/home/fresh"),
        ("D", "/home/user"),
    ]
    image = storage.commit(kit.KEY, "child", ImageConfig(), "", "")
    [again] = storage.prepare_snapshot("d" * 64, image.id)
    with kit.mounted(again, tmp_path / "m2") as root:
        assert (root / "etc/passwd").read_text() == "changed\n"
        assert not (root / "bin/su").exists() and (root / "bin/busybox").exists()
        assert os.listdir(root / "home") == ["fresh"]


def test_commit_is_repeatable_and_empty_commit_is_valid(storage: Storage, tars: Any, kit: Any) -> None:
    """A snapshot with no changes commits to an empty layer; the same upper gives the same diff id."""
    base = kit.import_tar(storage, tars.busybox())
    storage.prepare_snapshot(kit.KEY, base.id)
    first = storage.commit(kit.KEY, "", ImageConfig(), "", "")
    second = storage.commit(kit.KEY, "", ImageConfig(), "", "")
    assert first.layers == second.layers and len(first.layers) == 2
