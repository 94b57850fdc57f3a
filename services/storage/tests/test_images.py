"""Tags, removal, history and prune."""

from __future__ import annotations

from typing import Any

import pytest

from teu_api.errors import FailedPrecondition, InvalidArgument, NotFound
from teu_storage.imagespec import ImageConfig
from teu_storage.storage import Storage


def test_tag_adds_references(storage: Storage, tars: Any, kit: Any) -> None:
    """Tagging names the same image; bad targets and unknown sources are refused."""
    image = kit.import_tar(storage, tars.busybox(), "busybox")
    tagged = storage.tag("busybox", "registry.local:5000/team/box:v1")
    assert tagged.id == image.id
    assert tagged.repo_tags == ("busybox:latest", "registry.local:5000/team/box:v1")
    with pytest.raises(InvalidArgument):
        storage.tag("busybox", "UPPER")
    with pytest.raises(NotFound):
        storage.tag("nothing", "x")


def test_remove_by_name_untags_then_deletes(storage: Storage, tars: Any, kit: Any) -> None:
    """The image goes with its last tag, and its layer with it."""
    image = kit.import_tar(storage, tars.busybox(), "a")
    storage.tag("a", "b")
    assert storage.remove_image("a", force=False) == (["a:latest"], [])
    assert storage.remove_image("b", force=False) == (["b:latest"], [image.id])
    assert storage.list_images() == [] and storage.layers.dirs.on_disk() == set()


def test_remove_used_image_needs_force(storage: Storage, tars: Any, kit: Any) -> None:
    """A snapshot's image keeps its last name unless forced; then it stays, untagged, while used."""
    image = kit.import_tar(storage, tars.busybox(), "a")
    storage.prepare_snapshot(kit.KEY, image.id)
    with pytest.raises(FailedPrecondition, match=f"being used by container {kit.KEY}"):
        storage.remove_image("a", force=False)
    assert storage.get_image("a").id == image.id
    assert storage.remove_image("a", force=True) == (["a:latest"], [])
    assert storage.get_image(image.id).repo_tags == () and storage.layers.dirs.exists(image.layers[0])
    storage.remove_snapshot(kit.KEY)
    assert storage.prune(everything=False)[0] == [image.id]
    assert storage.layers.dirs.on_disk() == set()


def test_remove_by_id_drops_every_tag(storage: Storage, tars: Any, kit: Any) -> None:
    """By id, all tags go and the image is deleted."""
    image = kit.import_tar(storage, tars.busybox(), "a")
    storage.tag("a", "b")
    assert storage.remove_image(image.id[7:19], force=False) == (["a:latest", "b:latest"], [image.id])
    with pytest.raises(NotFound):
        storage.remove_image("a", force=False)


def test_prune_keeps_used_tagged_and_parents(storage: Storage, tars: Any, kit: Any) -> None:
    """Untagged unused images go; parents of kept images stay; ``all`` takes unused tagged ones too."""
    base = kit.import_tar(storage, tars.busybox(), "base")
    storage.prepare_snapshot(kit.KEY, base.id)
    (kit.upper(storage) / "f").write_text("x")
    child = storage.commit(kit.KEY, "child", ImageConfig(), "", "")
    dangling = storage.commit(kit.KEY, "", ImageConfig(cmd=["other"]), "", "")
    storage.remove_image("base", force=True)
    storage.remove_snapshot(kit.KEY)
    deleted, reclaimed = storage.prune(everything=False)
    assert deleted == [dangling.id] and reclaimed == 0  # its layer is shared with child
    assert {i.id for i in storage.list_images()} == {base.id, child.id}  # base is child's parent
    deleted, reclaimed = storage.prune(everything=True)
    assert sorted(deleted) == sorted([base.id, child.id]) and reclaimed == base.size + 1
    assert storage.layers.dirs.on_disk() == set()


def test_prune_filters_choose_among_the_unused(storage: Storage, tars: Any, kit: Any) -> None:
    """label= and label!= pick by the image's labels, until= by its creation; what no filter picks
    stays; an unknown filter is refused before anything goes."""
    temp = kit.import_tar(storage, tars.busybox(), "temp", ImageConfig(labels={"ttl": "short"}))
    kept = kit.import_tar(storage, tars.busybox(), "kept", ImageConfig(labels={"ttl": "long"}))
    with pytest.raises(InvalidArgument, match="prune takes"):
        storage.prune(everything=True, filters=["dangling=true"])
    assert storage.prune(everything=True, filters=["until=1h"]) == ([], 0)  # both made just now
    assert storage.prune(everything=True, filters=["label=ttl=short", "label!=keep"])[0] == [temp.id]
    assert {i.id for i in storage.list_images()} == {kept.id}


def test_history_follows_parents(storage: Storage, tars: Any, kit: Any) -> None:
    """Each step carries the id of the stored image that made it, newest first; missing ones are empty."""
    base = kit.import_tar(storage, tars.busybox(), "base")
    storage.prepare_snapshot(kit.KEY, base.id)
    one = storage.commit(kit.KEY, "one", ImageConfig(), "first", "")
    storage.prepare_snapshot("d" * 64, one.id)
    two = storage.commit("d" * 64, "two", ImageConfig(), "second", "")
    steps = storage.history("two")
    assert [s.id for s in steps] == [two.id, one.id, base.id]
    assert [s.created_by for s in steps] == ["commit: second", "commit: first", "teu import"]
    assert [s.comment for s in steps][:2] == ["second", "first"]
    storage.remove_snapshot("d" * 64)
    storage.remove_image("one", force=False)
    assert [s.id for s in storage.history("two")] == [two.id, "", ""]  # the parent chain is broken, as in Docker
