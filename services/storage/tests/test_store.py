"""The metadata store keeps images, tags and snapshots consistent, one transaction per write."""

from __future__ import annotations

from pathlib import Path

import pytest

from teu_api.errors import AlreadyExists, NotFound
from teu_storage.imagespec import ImageConfig, build_config
from teu_storage.metadata import Store

LAYER = ("sha256:" + "1" * 64, 10)


def _add(store: Store, image_id: str, created: int, ref: str | None = None) -> None:
    store.add_image(image_id, build_config(ImageConfig(cmd=["sh"]), [LAYER[0]], created), created, [LAYER], ref)


def test_tag_moves_to_the_newer_image(tmp_path: Path) -> None:
    """Tagging a second image with the same ref moves the ref, Docker style."""
    store = Store.open(tmp_path / "meta.db")
    _add(store, "sha256:aa", 1, "app:latest")
    _add(store, "sha256:bb", 2, "app:latest")
    assert store.tagged("app:latest") == "sha256:bb"
    old, new = store.image("sha256:aa"), store.image("sha256:bb")
    assert old is not None and old.repo_tags == ()
    assert new is not None and new.repo_tags == ("app:latest",) and new.layers == (LAYER[0],) and new.size == 10
    assert new.config.cmd == ("sh",)
    assert [i.id for i in store.images()] == ["sha256:bb", "sha256:aa"]


def test_reimporting_the_same_image_is_idempotent(tmp_path: Path) -> None:
    """Adding an existing image id keeps the first creation time and just adds the tag."""
    store = Store.open(tmp_path / "meta.db")
    _add(store, "sha256:aa", 1)
    store.add_image("sha256:aa", b"{}", 5, [LAYER], "x:1")
    image = store.image("sha256:aa")
    assert image is not None and image.created_at == 1 and image.repo_tags == ("x:1",)
    assert store.counts() == (1, 0)


def test_prefix_lookup_returns_all_candidates(tmp_path: Path) -> None:
    """Id prefixes match case-sensitively and report ambiguity by returning two ids."""
    store = Store.open(tmp_path / "meta.db")
    _add(store, "sha256:abc1", 1)
    _add(store, "sha256:abc2", 2)
    assert store.ids_with_prefix("sha256:abc") == ["sha256:abc1", "sha256:abc2"]
    assert store.ids_with_prefix("sha256:abc2") == ["sha256:abc2"]
    assert store.ids_with_prefix("sha256:ABC") == []


def test_snapshot_rows_roll_back_when_creation_fails(tmp_path: Path) -> None:
    """A failing create callback leaves no snapshot row behind."""
    store = Store.open(tmp_path / "meta.db")
    _add(store, "sha256:aa", 1)

    def fail() -> None:
        raise OSError("disk full")

    with pytest.raises(OSError):
        store.add_snapshot("k", "sha256:aa", 1, fail)
    assert store.snapshot_image("k") is None
    store.add_snapshot("k", "sha256:aa", 1, lambda: None)
    with pytest.raises(AlreadyExists):
        store.add_snapshot("k", "sha256:aa", 1, lambda: None)
    with pytest.raises(NotFound):
        store.add_snapshot("k2", "sha256:nope", 1, lambda: None)
    assert store.snapshot_keys() == {"k"}
    assert store.remove_snapshot("k") and not store.remove_snapshot("k")


def test_data_survives_reopening(tmp_path: Path) -> None:
    """Committed rows are there after the database is closed and reopened."""
    store = Store.open(tmp_path / "meta.db")
    _add(store, "sha256:aa", 1, "app:latest")
    store.close()
    assert Store.open(tmp_path / "meta.db").tagged("app:latest") == "sha256:aa"
