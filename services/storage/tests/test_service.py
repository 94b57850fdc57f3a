"""The gRPC service end to end, in process, over a unix socket with the shared error interceptor."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
import pytest

from teu.common.interceptor import ErrorInterceptor
from teu.storage.core import Storage
from teu.storage.service import StorageServicer
from teu.storage.v1 import storage_pb2, storage_pb2_grpc
from teu.types.v1 import types_pb2

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


async def _requests(
    ref: str, data: bytes, header: bool = True
) -> AsyncIterator[storage_pb2.ImportImageRequest]:
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
        assert [i.id for i in (await stub.ListImages(storage_pb2.ListImagesRequest())).images] == [
            imported.id
        ]
        prepared = await stub.PrepareSnapshot(
            storage_pb2.PrepareSnapshotRequest(key=KEY, image_id=imported.id)
        )
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
