"""save/load: docker-archive and OCI layout, exact layer bytes, hostile archives refused."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from teu_api.errors import InvalidArgument, NotFound
from teu_storage.imagespec import ImageConfig, host_architecture
from teu_storage.storage import Storage


def _save(storage: Storage, refs: list[str], fmt: str) -> bytes:
    buf = io.BytesIO()
    storage.save(refs, fmt, buf)
    return buf.getvalue()


def _load(storage: Storage, data: bytes) -> Any:
    path = storage.tmp / "load.tar"
    path.write_bytes(data)
    try:
        return storage.load(path)
    finally:
        path.unlink(missing_ok=True)


def _committed(storage: Storage, tars: Any, kit: Any) -> Any:
    base = kit.import_tar(storage, tars.busybox(), "base", ImageConfig(cmd=["sh"]))
    storage.prepare_snapshot(kit.KEY, base.id)
    up = kit.upper(storage)
    (up / "bin").mkdir()
    kit.whiteout(up / "bin/su")
    (up / "new").write_text("new")
    return storage.commit(kit.KEY, "app:1", ImageConfig(cmd=["sh"]), "add", "")


def _rebuild(data: bytes, change: Callable[[str, bytes], tuple[str, bytes] | None]) -> bytes:
    """Copies tar ``data``, letting ``change(name, content)`` rename, rewrite or drop (None) regular members."""
    out = io.BytesIO()
    with tarfile.open(fileobj=io.BytesIO(data)) as src, tarfile.open(fileobj=out, mode="w") as dst:
        for member in src.getmembers():
            if not member.isreg():
                dst.addfile(member)
                continue
            f = src.extractfile(member)
            assert f is not None
            changed = change(member.name, f.read())
            if changed is None:
                continue
            member.name, content = changed
            member.size = len(content)
            dst.addfile(member, io.BytesIO(content))
    return out.getvalue()


@pytest.mark.parametrize("fmt", ["docker-archive", "oci-archive"])
def test_save_load_round_trip(storage: Storage, tars: Any, kit: Any, tmp_path: Path, fmt: str) -> None:
    """A committed image saved and loaded elsewhere has the same id, layers, tag and whiteouts."""
    image = _committed(storage, tars, kit)
    data = _save(storage, ["app:1"], fmt)
    names = kit.tar_names(data)
    if fmt == "docker-archive":
        assert "manifest.json" in names and f"{image.id[7:]}.json" in names
    else:
        assert {"oci-layout", "index.json", f"blobs/sha256/{image.layers[-1][7:]}"} <= set(names)
    other = Storage.open(tmp_path / "other")
    [loaded] = _load(other, data)
    assert (loaded.id, loaded.layers, loaded.repo_tags) == (image.id, image.layers, ("app:1",))
    assert loaded.config.cmd == ("sh",)
    top = other.layers.dirs.path(image.layers[-1])
    assert (top / "new").read_text() == "new" and os.lstat(top / "bin/su").st_rdev == 0
    assert _save(other, ["app:1"], fmt) == data  # tar-splits rebuild the very same bytes
    assert [h.created_by for h in other.history("app:1")] == ["commit: add", "teu import"]
    other.close()


def test_save_several_images_shares_layers(storage: Storage, tars: Any, kit: Any, tmp_path: Path) -> None:
    """Two images sharing a layer store it once; both load with their tags."""
    image = _committed(storage, tars, kit)
    data = _save(storage, ["app:1", "base"], "docker-archive")
    assert sum(n.endswith("layer.tar") for n in kit.tar_names(data)) == 2
    other = Storage.open(tmp_path / "other")
    loaded = _load(other, data)
    assert {i.repo_tags for i in loaded} == {("app:1",), ("base:latest",)}
    assert other.get_image("app:1").id == image.id
    other.close()


def test_load_accepts_gzip_layers(storage: Storage, tars: Any, kit: Any, tmp_path: Path) -> None:
    """A docker-archive whose layer.tar is gzip-compressed loads; the diff id is of the plain tar."""
    image = kit.import_tar(storage, tars.busybox(), "base")
    data = _rebuild(
        _save(storage, ["base"], "docker-archive"), lambda n, c: (n, gzip.compress(c) if n.endswith("layer.tar") else c)
    )
    other = Storage.open(tmp_path / "other")
    assert [i.id for i in _load(other, data)] == [image.id]
    other.close()


def _tamper_layer(name: str, content: bytes) -> tuple[str, bytes]:
    if name.endswith("layer.tar"):
        return name, content.replace(b"#!busybox", b"#!evilbox")
    return name, content


def _tamper_config(name: str, content: bytes) -> tuple[str, bytes]:
    if name.endswith(".json") and name != "manifest.json":
        return name, content.replace(b'"sh"', b'"rm"')
    return name, content


def _traversal(name: str, content: bytes) -> tuple[str, bytes]:
    if name == "manifest.json":
        doc = json.loads(content)
        doc[0]["Layers"][0] = "../../../etc/passwd"
        return name, json.dumps(doc).encode()
    return name, content


HOSTILE: dict[str, Callable[[bytes, Any], bytes]] = {
    "layer digest mismatch": lambda d, T: _rebuild(d, _tamper_layer),
    "config digest mismatch": lambda d, T: _rebuild(d, _tamper_config),
    "manifest path traversal": lambda d, T: _rebuild(d, _traversal),
    "member name traversal": lambda d, T: _rebuild(d, lambda n, c: ("../" + n if n == "manifest.json" else n, c)),
    "missing layer": lambda d, T: _rebuild(d, lambda n, c: None if n.endswith("layer.tar") else (n, c)),
    "truncated": lambda d, T: d[: len(d) // 2],
    "neither format": lambda d, T: T.build(T.file("hello")),
    "device member": lambda d, T: T.build((T.entry("dev", tarfile.CHRTYPE), None)),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_archive_is_refused_leaving_nothing(storage: Storage, tars: Any, kit: Any, tmp_path: Path, case: str) -> None:
    """Tampered digests, traversal, missing members and truncation are InvalidArgument; no image, no layer."""
    kit.import_tar(storage, tars.busybox(), "base", ImageConfig(cmd=["sh"]))
    data = HOSTILE[case](_save(storage, ["base"], "docker-archive"), tars)
    other = Storage.open(tmp_path / "other")
    with pytest.raises(InvalidArgument):
        _load(other, data)
    assert other.list_images() == [] and other.layers.dirs.on_disk() == set()
    assert os.listdir(other.tmp) == [] and os.listdir(other.layers.dirs.splits) == []
    other.close()


def test_oci_blob_mismatch_is_refused(storage: Storage, tars: Any, kit: Any, tmp_path: Path) -> None:
    """An OCI layer blob whose bytes do not match its descriptor is refused."""
    image = kit.import_tar(storage, tars.busybox(), "base")
    blob = f"blobs/sha256/{image.layers[0][7:]}"
    data = _rebuild(_save(storage, ["base"], "oci-archive"), lambda n, c: (n, c + b"\0" * 512 if n == blob else c))
    other = Storage.open(tmp_path / "other")
    with pytest.raises(InvalidArgument, match="digest mismatch"):
        _load(other, data)
    assert other.layers.dirs.on_disk() == set()
    other.close()


def _behind_nested_index(data: bytes, architectures: list[str]) -> bytes:
    """An OCI archive whose index.json names an image index (as a multi-platform ``docker save`` writes)
    listing its one image manifest under each of ``architectures``."""
    index = json.loads(_member(data, "index.json"))
    [entry] = index["manifests"]
    platforms = [{**entry, "platform": {"os": "linux", "architecture": a}} for a in architectures]
    for p in platforms:
        p.pop("annotations", None)
    nested = json.dumps(
        {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": platforms}
    ).encode()
    digest = "sha256:" + hashlib.sha256(nested).hexdigest()
    top = {**entry, "mediaType": "application/vnd.oci.image.index.v1+json", "digest": digest, "size": len(nested)}
    rewritten = _rebuild(
        data, lambda n, c: (n, json.dumps({**index, "manifests": [top]}).encode()) if n == "index.json" else (n, c)
    )
    return _with_member(rewritten, f"blobs/sha256/{digest[7:]}", nested)


def _member(data: bytes, name: str) -> bytes:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        f = tar.extractfile(name)
        assert f is not None
        return f.read()


def _with_member(data: bytes, name: str, content: bytes) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=io.BytesIO(data)) as src, tarfile.open(fileobj=out, mode="w") as dst:
        for member in src.getmembers():
            dst.addfile(member, src.extractfile(member) if member.isreg() else None)
        info = tarfile.TarInfo(name)
        info.size = len(content)
        dst.addfile(info, io.BytesIO(content))
    return out.getvalue()


def test_nested_index_loads_this_platform(storage: Storage, tars: Any, kit: Any, tmp_path: Path) -> None:
    """An archive's multi-platform index loads the linux entry of this host's architecture, whatever comes first."""
    image = kit.import_tar(storage, tars.busybox(), "base")
    foreign = "s390x" if host_architecture() != "s390x" else "amd64"
    data = _behind_nested_index(_save(storage, ["base"], "oci-archive"), [foreign, host_architecture()])
    other = Storage.open(tmp_path / "other")
    [loaded] = _load(other, data)
    assert (loaded.id, loaded.repo_tags) == (image.id, ("base:latest",))
    other.close()


def test_nested_index_without_this_platform_is_refused(storage: Storage, tars: Any, kit: Any, tmp_path: Path) -> None:
    """As a pull does: no entry for this platform is NotFound naming it, not some other platform's image."""
    kit.import_tar(storage, tars.busybox(), "base")
    foreign = "s390x" if host_architecture() != "s390x" else "amd64"
    data = _behind_nested_index(_save(storage, ["base"], "oci-archive"), [foreign])
    other = Storage.open(tmp_path / "other")
    with pytest.raises(NotFound, match=f"no matching manifest for linux/{host_architecture()}"):
        _load(other, data)
    assert other.list_images() == [] and other.layers.dirs.on_disk() == set()
    other.close()
