"""Multi-layer images, short overlay links and garbage collection by reachability."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from teu_api.errors import FailedPrecondition, InvalidArgument
from teu_storage import gc
from teu_storage.imagespec import ImageConfig
from teu_storage.layers import short_name
from teu_storage.storage import Storage


def test_mark_is_pure_reachability() -> None:
    """Layers listed by any image or pinned are live; the plan removes everything else."""
    live = gc.mark([["a", "b"], ["b", "c"]], ["p"])
    assert live == {"a", "b", "c", "p"}
    plan = gc.plan(live, recorded=["a", "x"], on_disk=["a", "b", "y"])
    assert plan.rows == {"x"} and plan.dirs == {"y"}


def test_short_names_are_stable_and_short() -> None:
    """The link name is derived from the diff id alone: 12 base32 characters."""
    name = short_name("sha256:" + "ab" * 32)
    assert name == short_name("sha256:" + "ab" * 32) and len(name) == 12 and name.isalnum()


def test_commit_stacks_layers_top_most_first(storage: Storage, tars: Any, kit: Any) -> None:
    """A committed image's snapshot lists its layers as short links, newest layer first."""
    base = kit.import_tar(storage, tars.busybox(), "base")
    storage.prepare_snapshot(kit.KEY, base.id)
    (kit.upper(storage) / "new").write_text("x")
    child = storage.commit(kit.KEY, "child", ImageConfig(), "add new", "")
    assert child.layers[0] == base.layers[0] and len(child.layers) == 2 and child.parent == base.id
    [mount] = storage.prepare_snapshot("d" * 64, child.id)
    init, *lower = mount.options[0].removeprefix("lowerdir=").split(":")
    assert Path(init) == storage.snapshots.dir / ("d" * 64) / "init"  # the mount points, above the image's layers
    assert [Path(p).resolve() for p in lower] == [storage.layers.dirs.path(d) for d in reversed(child.layers)]
    assert all(len(Path(p).name) == 12 for p in lower)


def test_too_many_layers_for_one_mount_is_refused(storage: Storage) -> None:
    """Mount options past one page are FailedPrecondition, before any snapshot dir is made."""
    layers = [("sha256:" + f"{i:064x}", 0) for i in range(200)]
    storage.store.add_image("sha256:" + "e" * 64, b"{}", 1, layers, None)
    with pytest.raises(FailedPrecondition, match="too many layers"):
        storage.prepare_snapshot("d" * 64, "sha256:" + "e" * 64)
    assert os.listdir(storage.snapshots.dir) == []


def test_remove_image_collects_unshared_layers_only(storage: Storage, tars: Any, kit: Any) -> None:
    """Removing a child keeps the layer its parent still uses and deletes its own."""
    base = kit.import_tar(storage, tars.busybox(), "base")
    storage.prepare_snapshot(kit.KEY, base.id)
    (kit.upper(storage) / "new").write_text("x")
    child = storage.commit(kit.KEY, "child", ImageConfig(), "", "")
    own = child.layers[1]
    assert storage.layers.dirs.path(own).is_dir() and storage.layers.dirs.split(own).exists()
    assert storage.remove_image("child", force=False) == (["child:latest"], [child.id])
    assert not storage.layers.dirs.path(own).exists() and not storage.layers.dirs.split(own).exists()
    assert not storage.layers.dirs.link(own).is_symlink()
    assert storage.layers.dirs.path(base.layers[0]).is_dir() and storage.layers.dirs.link(base.layers[0]).exists()
    assert storage.store.layer_sizes().keys() == {base.layers[0]}


def test_start_up_sweeps_what_a_crash_left(tmp_path: Path, tars: Any, kit: Any) -> None:
    """An unrecorded layer dir, its tar-split, a stale link and tmp files are gone after reopening."""
    storage = Storage.open(tmp_path / "s")
    image = kit.import_tar(storage, tars.busybox(), "keep")
    orphan = "sha256:" + "9" * 64
    (storage.layers.dirs.path(orphan) / "etc").mkdir(parents=True)  # crash: renamed in, never recorded
    storage.layers.dirs.split(orphan).write_bytes(b"x")
    storage.layers.dirs.ensure_link(orphan)
    storage.layers.dirs.link(image.layers[0]).unlink()  # crash before its link was made
    (storage.tmp / "layer-half").mkdir()
    storage.close()
    reopened = Storage.open(tmp_path / "s")
    assert reopened.layers.dirs.on_disk() == {image.layers[0]}
    assert sorted(os.listdir(reopened.layers.dirs.links)) == [short_name(image.layers[0])]
    assert os.listdir(reopened.layers.dirs.splits) == [image.layers[0][7:] + ".gz"]
    assert os.listdir(reopened.tmp) == []
    assert reopened.get_image("keep").id == image.id
    reopened.close()


def test_failed_import_leaves_no_layer(storage: Storage, tars: Any, kit: Any) -> None:
    """A hostile tar is refused and neither a layer dir, link, tar-split nor row remains."""
    with pytest.raises(InvalidArgument):
        kit.import_tar(storage, tars.build(tars.file("a"), tars.file("../x")))
    assert storage.layers.dirs.on_disk() == set() and os.listdir(storage.layers.dirs.links) == []
    assert os.listdir(storage.layers.dirs.splits) == [] and os.listdir(storage.tmp) == []


def test_layer_whose_short_name_collides_is_refused(storage: Storage, tars: Any, kit: Any,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """A new layer with the short link name of a stored one is refused; the stored one keeps its link."""
    first = kit.import_tar(storage, tars.build(tars.file("a")), "first")
    monkeypatch.setattr("teu_storage.layers.short_name", lambda _diff_id: "collidingname")
    storage.layers.dirs.ensure_link(first.layers[0])
    with pytest.raises(InvalidArgument, match="short name"):
        kit.import_tar(storage, tars.build(tars.file("b")), "second")
    assert os.readlink(storage.layers.dirs.links / "collidingname").endswith(first.layers[0].removeprefix("sha256:"))


def test_gc_spares_pinned_layers(storage: Storage, tars: Any, kit: Any) -> None:
    """A layer unpacked by an operation in flight survives a concurrent collection."""
    image = kit.import_tar(storage, tars.busybox(), "x")
    with storage.layers.pinning() as pins:
        storage.layers.pin_existing(image.layers, pins)
        storage.store.remove_image(image.id, None, force=False)
        storage.gc.collect()
        assert storage.layers.dirs.exists(image.layers[0])
    storage.gc.collect()
    assert not storage.layers.dirs.exists(image.layers[0])
