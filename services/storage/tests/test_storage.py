"""The storage engine: imports, lookups, snapshots and crash clean-up."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import stat
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from teu_api.errors import AlreadyExists, InvalidArgument, NotFound
from teu_storage.imagespec import ImageConfig
from teu_storage.storage import Storage

KEY = "c" * 64


async def _chunks(data: bytes, size: int = 1000) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


def _import(storage: Storage, data: bytes, ref: str = "", config: ImageConfig | None = None) -> Any:
    return asyncio.run(storage.import_image(ref, config or ImageConfig(), _chunks(data)))


def _leftovers(storage: Storage) -> list[str]:
    return sorted(os.listdir(storage.tmp)) + sorted(os.listdir(storage.layers.dirs.dir))


def test_import_records_content_addressed_image(storage: Storage, tars: Any) -> None:
    """The layer is unpacked under its diff id and the image id is the sha256 of the stored config."""
    data = tars.busybox()
    config = ImageConfig(cmd=["sh"], env=["PATH=/bin"], labels={"a": "b"})
    image = _import(storage, data, "busybox", config)
    hexdigest = hashlib.sha256(data).hexdigest()
    assert image.layers == ("sha256:" + hexdigest,)
    assert image.repo_tags == ("busybox:latest",)
    assert image.config == ImageConfig(cmd=("sh",), env=("PATH=/bin",), labels={"a": "b"})
    assert image.size > 0
    layer = storage.layers.dirs.dir / hexdigest
    assert stat.S_IMODE(os.lstat(layer / "tmp").st_mode) == 0o1777
    assert os.listdir(storage.tmp) == []
    raw = storage.store._query("SELECT config FROM images", ())[0][0]
    assert "sha256:" + hashlib.sha256(raw).hexdigest() == image.id
    doc = json.loads(raw)
    assert doc["rootfs"] == {"type": "layers", "diff_ids": list(image.layers)}
    assert doc["os"] == "linux" and doc["config"] == {
        "Cmd": ["sh"],
        "Env": ["PATH=/bin"],
        "Labels": {"a": "b"},
    }


def test_hostile_import_leaves_nothing_behind(storage: Storage, tars: Any, tmp_path: Path) -> None:
    """A refused tar leaves no temp file, no layer and no database row."""
    hostile = tars.build(tars.file("ok"), tars.sym("a", str(tmp_path)), tars.file("a/evil"))
    with pytest.raises(InvalidArgument):
        _import(storage, hostile, "evil")
    assert _leftovers(storage) == []
    assert not (tmp_path / "evil").exists()
    assert storage.info().images == 0


def test_bad_reference_is_refused_before_reading(storage: Storage, tars: Any) -> None:
    """An invalid ref raises InvalidArgument and creates nothing."""
    with pytest.raises(InvalidArgument):
        _import(storage, tars.busybox(), "Not/Valid")
    assert _leftovers(storage) == []


def test_layers_are_shared_and_tags_move(storage: Storage, tars: Any) -> None:
    """Importing the same tar twice reuses the layer; the ref moves to the newer image."""
    first = _import(storage, tars.busybox(), "app", ImageConfig(cmd=["a"]))
    second = _import(storage, tars.busybox(), "app", ImageConfig(cmd=["b"]))
    assert first.layers == second.layers and first.id != second.id
    assert len(os.listdir(storage.layers.dirs.dir)) == 1
    assert [(i.id, i.repo_tags) for i in storage.list_images()] == [
        (second.id, ("app:latest",)),
        (first.id, ()),
    ]


def test_get_image_by_name_id_and_prefix(storage: Storage, tars: Any) -> None:
    """Images resolve by name[:tag], full id, and unique prefix with or without "sha256:"."""
    image = _import(storage, tars.busybox(), "app:1")
    hexid = image.id.removeprefix("sha256:")
    for ref in ("app:1", image.id, hexid, hexid[:12], "sha256:" + hexid[:5]):
        assert storage.get_image(ref).id == image.id
    unknown_id = "sha256:" + ("0" if hexid[0] != "0" else "1") * 64
    for ref in ("app", "other", unknown_id):
        with pytest.raises(NotFound, match="No such image"):
            storage.get_image(ref)


def test_ambiguous_prefix_is_invalid(storage: Storage) -> None:
    """A prefix matching two ids raises InvalidArgument."""
    for image_id in ("sha256:ab1", "sha256:ab2"):
        storage.store.add_image(image_id, b"{}", 1, [("sha256:" + "0" * 64, 0)], None)
    with pytest.raises(InvalidArgument, match="ambiguous"):
        storage.get_image("ab")
    assert storage.get_image("ab2").id == "sha256:ab2"


def test_snapshot_lifecycle(storage: Storage, tars: Any) -> None:
    """Prepare returns the overlay mount, mounts can be fetched again, remove deletes everything."""
    image = _import(storage, tars.busybox())
    [mount] = storage.prepare_snapshot(KEY, image.id)
    snap = storage.snapshots.dir / KEY
    lower = storage.layers.dirs.link(image.layers[0])
    assert lower.resolve() == storage.layers.dirs.dir / image.layers[0].removeprefix("sha256:")
    assert (mount.type, mount.source, mount.destination) == ("overlay", "overlay", "/")
    assert mount.options == (f"lowerdir={snap / 'init'}:{lower}", f"upperdir={snap / 'upper'}", f"workdir={snap / 'work'}")
    assert (snap / "init" / "etc" / "hosts").is_file() and (snap / "init" / "proc").is_dir()
    assert (snap / "upper").is_dir() and (snap / "work").is_dir()
    assert storage.snapshot_mounts(KEY) == [mount]
    assert storage.info().snapshots == 1
    with pytest.raises(AlreadyExists):
        storage.prepare_snapshot(KEY, image.id)
    (snap / "upper" / "file").write_text("x")
    os.chown(snap / "upper" / "file", 12345, 12345)
    assert storage.remove_snapshot(KEY) is True
    assert not snap.exists() and os.listdir(storage.tmp) == []
    assert storage.remove_snapshot(KEY) is False
    with pytest.raises(NotFound):
        storage.snapshot_mounts(KEY)


def test_snapshot_argument_errors(storage: Storage) -> None:
    """Malformed keys are InvalidArgument and unknown images NotFound."""
    with pytest.raises(InvalidArgument):
        storage.prepare_snapshot("not-a-key", "sha256:x")
    with pytest.raises(InvalidArgument):
        storage.remove_snapshot(KEY.upper())
    with pytest.raises(NotFound):
        storage.prepare_snapshot(KEY, "sha256:" + "0" * 64)
    assert os.listdir(storage.snapshots.dir) == []


def test_open_cleans_crash_leftovers(tmp_path: Path, tars: Any) -> None:
    """Reopening empties tmp/ and drops snapshot dirs that no row owns, keeping recorded ones."""
    storage = Storage.open(tmp_path / "s")
    image = _import(storage, tars.busybox())
    storage.prepare_snapshot(KEY, image.id)
    (storage.tmp / "upload-junk.tar").write_bytes(b"x")
    (storage.snapshots.dir / ("d" * 64)).mkdir()
    storage.close()
    reopened = Storage.open(tmp_path / "s")
    assert os.listdir(reopened.tmp) == []
    assert os.listdir(reopened.snapshots.dir) == [KEY]
    assert reopened.get_image(image.id).id == image.id
    reopened.close()
