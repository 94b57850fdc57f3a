"""The gRPC service end to end, in process, over a unix socket with the shared error interceptor."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
import pytest

from teu_api.storage.v1 import storage_pb2, storage_pb2_grpc
from teu_api.types.v1 import types_pb2
from teu_common.interceptor import ErrorInterceptor
from teu_storage.service import StorageServicer
from teu_storage.storage import Storage

KEY = "e" * 64


def _serve(tmp_path: Path, body: Callable[[Any], Awaitable[None]]) -> None:
    """Runs ``body(stub)`` against a fresh service listening on a socket in tmp_path."""

    async def run() -> None:
        storage = Storage.open(tmp_path / "state")
        server = grpc.aio.server(interceptors=[ErrorInterceptor()])
        storage_pb2_grpc.add_StorageServiceServicer_to_server(StorageServicer(storage), server)
        sock = tmp_path / "storage.sock"
        server.add_insecure_port(f"unix:{sock}")
        await server.start()
        try:
            async with grpc.aio.insecure_channel(f"unix:{sock}") as channel:
                await body(storage_pb2_grpc.StorageServiceStub(channel))
        finally:
            await server.stop(None)
            storage.close()

    asyncio.run(run())


async def _requests(ref: str, data: bytes, header: bool = True) -> AsyncIterator[storage_pb2.ImportImageRequest]:
    if header:
        config = types_pb2.ImageConfig(cmd=["sh"], labels={"k": "v"})
        yield storage_pb2.ImportImageRequest(header=storage_pb2.ImportHeader(ref=ref, config=config))
    for i in range(0, len(data), 4096):
        yield storage_pb2.ImportImageRequest(chunk=data[i : i + 4096])


def test_import_lookup_and_snapshot_over_grpc(tmp_path: Path, tars: Any) -> None:
    """Import through the stub, then find, list, snapshot and describe the store."""

    async def body(stub: Any) -> None:
        imported = (await stub.ImportImage(_requests("busybox", tars.busybox()))).image
        assert imported.repo_tags == ["busybox:latest"] and list(imported.config.cmd) == ["sh"]
        assert dict(imported.config.labels) == {"k": "v"}
        found = (await stub.GetImage(storage_pb2.GetImageRequest(ref=imported.id[7:19]))).image
        assert found == imported
        assert [i.id for i in (await stub.ListImages(storage_pb2.ListImagesRequest())).images] == [imported.id]
        prepared = await stub.PrepareSnapshot(storage_pb2.PrepareSnapshotRequest(key=KEY, image_id=imported.id))
        assert prepared.mounts[0].type == "overlay" and prepared.mounts[0].destination == "/"
        again = await stub.GetSnapshotMounts(storage_pb2.GetSnapshotMountsRequest(key=KEY))
        assert list(again.mounts) == list(prepared.mounts)
        info = await stub.GetStorageInfo(storage_pb2.GetStorageInfoRequest())
        assert (info.driver, info.images, info.snapshots) == ("overlay", 1, 1)
        assert (await stub.RemoveSnapshot(storage_pb2.RemoveSnapshotRequest(key=KEY))).removed
        assert not (await stub.RemoveSnapshot(storage_pb2.RemoveSnapshotRequest(key=KEY))).removed

    _serve(tmp_path, body)


@pytest.mark.parametrize(
    ("ref", "payload", "header", "code"),
    [
        ("evil", "hostile", True, grpc.StatusCode.INVALID_ARGUMENT),
        ("UPPER", "good", True, grpc.StatusCode.INVALID_ARGUMENT),
        ("x", "good", False, grpc.StatusCode.INVALID_ARGUMENT),
    ],
)
def test_import_errors_map_to_status_codes(
    tmp_path: Path, tars: Any, ref: str, payload: str, header: bool, code: grpc.StatusCode
) -> None:
    """Hostile tars, bad refs and a missing header come back as INVALID_ARGUMENT, leaving nothing."""
    data = tars.busybox() if payload == "good" else tars.build(tars.file("../escape"))

    async def body(stub: Any) -> None:
        with pytest.raises(grpc.aio.AioRpcError) as failure:
            await stub.ImportImage(_requests(ref, data, header))
        assert failure.value.code() == code
        with pytest.raises(grpc.aio.AioRpcError) as missing:
            await stub.GetImage(storage_pb2.GetImageRequest(ref="busybox"))
        assert missing.value.code() == grpc.StatusCode.NOT_FOUND

    _serve(tmp_path, body)
    assert list((tmp_path / "state" / "tmp").iterdir()) == []
    assert list((tmp_path / "state" / "layers").iterdir()) == []


async def _collect(call: Any) -> bytes:
    return b"".join([m.chunk async for m in call])


async def _copy_to(key: str, path: str, data: bytes) -> AsyncIterator[storage_pb2.CopyToRequest]:
    yield storage_pb2.CopyToRequest(header=storage_pb2.CopyToHeader(key=key, path=path))
    yield storage_pb2.CopyToRequest(chunk=data)


async def _load(data: bytes) -> AsyncIterator[storage_pb2.LoadImagesRequest]:
    for i in range(0, len(data), 65536):
        yield storage_pb2.LoadImagesRequest(chunk=data[i : i + 65536])


def test_layered_operations_over_grpc(tmp_path: Path, tars: Any) -> None:
    """cp in, diff, commit, history, export, cp out, tag, save, rmi, load and prune through the stub."""

    async def body(stub: Any) -> None:
        base = (await stub.ImportImage(_requests("busybox", tars.busybox()))).image
        await stub.PrepareSnapshot(storage_pb2.PrepareSnapshotRequest(key=KEY, image_id=base.id))
        copied = await stub.CopyTo(_copy_to(KEY, "/etc", tars.build(tars.file("motd", b"hi"))))
        assert copied.files == 1
        diff = await stub.Diff(storage_pb2.DiffRequest(key=KEY))
        assert [(c.kind, c.path) for c in diff.changes] == [("C", "/etc"), ("A", "/etc/motd")]
        config = types_pb2.ImageConfig(cmd=["sh"])
        committed = (await stub.Commit(storage_pb2.CommitRequest(key=KEY, ref="app:1", config=config, message="motd"))).image
        assert committed.parent == base.id and committed.comment == "motd" and len(committed.layers) == 2
        history = await stub.History(storage_pb2.HistoryRequest(ref="app:1"))
        assert [e.created_by for e in history.entries] == ["commit: motd", "teu import"]
        exported = await _collect(stub.Export(storage_pb2.ExportRequest(key=KEY)))
        assert b"hi" in exported
        motd = await _collect(stub.CopyFrom(storage_pb2.CopyFromRequest(key=KEY, path="/etc/motd")))
        assert motd.startswith(b"motd")
        tagged = await stub.TagImage(storage_pb2.TagImageRequest(source="app:1", target="app:2"))
        assert list(tagged.image.repo_tags) == ["app:1", "app:2"]
        saved = await _collect(stub.SaveImages(storage_pb2.SaveImagesRequest(refs=["app:1"], format="oci-archive")))
        removed = await stub.RemoveImage(storage_pb2.RemoveImageRequest(ref=committed.id))
        assert list(removed.deleted) == [committed.id]
        loaded = await stub.LoadImages(_load(saved))
        assert [i.id for i in loaded.images] == [committed.id]
        await stub.RemoveSnapshot(storage_pb2.RemoveSnapshotRequest(key=KEY))
        pruned = await stub.Prune(storage_pb2.PruneRequest(all=True))
        assert sorted(pruned.deleted) == sorted([base.id, committed.id]) and pruned.reclaimed > 0

    _serve(tmp_path, body)
    assert list((tmp_path / "state" / "layers").iterdir()) == []


def test_layered_errors_map_to_status_codes(tmp_path: Path, tars: Any) -> None:
    """Missing paths, used images, hostile archives and registry calls come back with their codes."""

    async def body(stub: Any) -> None:
        base = (await stub.ImportImage(_requests("busybox", tars.busybox()))).image
        await stub.PrepareSnapshot(storage_pb2.PrepareSnapshotRequest(key=KEY, image_id=base.id))
        calls = [
            (grpc.StatusCode.NOT_FOUND, _collect(stub.CopyFrom(storage_pb2.CopyFromRequest(key=KEY, path="/no")))),
            (grpc.StatusCode.NOT_FOUND, _collect(stub.Export(storage_pb2.ExportRequest(key="f" * 64)))),
            (grpc.StatusCode.NOT_FOUND, stub.Diff(storage_pb2.DiffRequest(key="f" * 64))),
            (grpc.StatusCode.FAILED_PRECONDITION, stub.RemoveImage(storage_pb2.RemoveImageRequest(ref="busybox"))),
            (grpc.StatusCode.INVALID_ARGUMENT, stub.LoadImages(_load(tars.build(tars.file("../x"))))),
            (grpc.StatusCode.INVALID_ARGUMENT, stub.CopyTo(_copy_to(KEY, "/tmp", tars.build(tars.file("../x"))))),
            (grpc.StatusCode.INVALID_ARGUMENT, _collect(stub.Pull(storage_pb2.PullRequest(ref="localhost:5000/a@sha256:bad")))),
            (grpc.StatusCode.NOT_FOUND, _collect(stub.Push(storage_pb2.PushRequest(ref="localhost:5000/absent:1")))),
        ]
        for code, call in calls:
            with pytest.raises(grpc.aio.AioRpcError) as failure:
                await call
            assert failure.value.code() == code, failure.value.details()
            if code == grpc.StatusCode.FAILED_PRECONDITION:
                assert f"image is being used by container {KEY}" in str(failure.value.details())

    _serve(tmp_path, body)
