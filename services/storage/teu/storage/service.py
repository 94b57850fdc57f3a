"""gRPC adapter of the storage service: requests in, core calls (in threads), responses out."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc

from teu.errors import InvalidArgument
from teu.storage import core
from teu.storage.oci import ImageConfig
from teu.storage.snapshots import Mount
from teu.storage.store import Image
from teu.storage.v1 import storage_pb2, storage_pb2_grpc
from teu.types.v1 import types_pb2

__all__ = ["StorageServicer"]


class StorageServicer(storage_pb2_grpc.StorageServiceServicer):
    """Implements teu.storage.v1.StorageService over a :class:`core.Storage`."""

    def __init__(self, storage: core.Storage) -> None:
        self._storage = storage

    async def ImportImage(
        self,
        request_iterator: AsyncIterator[storage_pb2.ImportImageRequest],
        context: grpc.aio.ServicerContext,
    ) -> storage_pb2.ImportImageResponse:
        try:
            first = await anext(request_iterator)
        except StopAsyncIteration:
            raise InvalidArgument("ImportImage: the stream has no header") from None
        if first.WhichOneof("part") != "header":
            raise InvalidArgument("ImportImage: the first message must be the header")
        image = await core.import_image(
            self._storage,
            first.header.ref,
            _config_from_proto(first.header.config),
            _chunks(request_iterator),
        )
        return storage_pb2.ImportImageResponse(image=_image_to_proto(image))

    async def GetImage(
        self, request: storage_pb2.GetImageRequest, context: grpc.aio.ServicerContext
    ) -> storage_pb2.GetImageResponse:
        image = await asyncio.to_thread(self._storage.get_image, request.ref)
        return storage_pb2.GetImageResponse(image=_image_to_proto(image))

    async def ListImages(
        self, request: storage_pb2.ListImagesRequest, context: grpc.aio.ServicerContext
    ) -> storage_pb2.ListImagesResponse:
        images = await asyncio.to_thread(self._storage.list_images)
        return storage_pb2.ListImagesResponse(images=[_image_to_proto(i) for i in images])

    async def PrepareSnapshot(
        self, request: storage_pb2.PrepareSnapshotRequest, context: grpc.aio.ServicerContext
    ) -> storage_pb2.PrepareSnapshotResponse:
        mounts = await asyncio.to_thread(self._storage.prepare_snapshot, request.key, request.image_id)
        return storage_pb2.PrepareSnapshotResponse(mounts=[_mount_to_proto(m) for m in mounts])

    async def GetSnapshotMounts(
        self, request: storage_pb2.GetSnapshotMountsRequest, context: grpc.aio.ServicerContext
    ) -> storage_pb2.GetSnapshotMountsResponse:
        mounts = await asyncio.to_thread(self._storage.snapshot_mounts, request.key)
        return storage_pb2.GetSnapshotMountsResponse(mounts=[_mount_to_proto(m) for m in mounts])

    async def RemoveSnapshot(
        self, request: storage_pb2.RemoveSnapshotRequest, context: grpc.aio.ServicerContext
    ) -> storage_pb2.RemoveSnapshotResponse:
        removed = await asyncio.to_thread(self._storage.remove_snapshot, request.key)
        return storage_pb2.RemoveSnapshotResponse(removed=removed)

    async def GetStorageInfo(
        self, request: storage_pb2.GetStorageInfoRequest, context: grpc.aio.ServicerContext
    ) -> storage_pb2.GetStorageInfoResponse:
        info = await asyncio.to_thread(self._storage.info)
        return storage_pb2.GetStorageInfoResponse(
            driver=info.driver, images=info.images, snapshots=info.snapshots, root=info.root
        )


async def _chunks(requests: AsyncIterator[storage_pb2.ImportImageRequest]) -> AsyncIterator[bytes]:
    """The tar bytes of the messages after the header; a second header is a protocol error."""
    async for request in requests:
        if request.WhichOneof("part") != "chunk":
            raise InvalidArgument("ImportImage: only chunks may follow the header")
        yield request.chunk


def _config_from_proto(config: types_pb2.ImageConfig) -> ImageConfig:
    return ImageConfig(
        entrypoint=tuple(config.entrypoint),
        cmd=tuple(config.cmd),
        env=tuple(config.env),
        working_dir=config.working_dir,
        user=config.user,
        stop_signal=config.stop_signal,
        labels=dict(config.labels),
    )


def _config_to_proto(config: ImageConfig) -> types_pb2.ImageConfig:
    return types_pb2.ImageConfig(
        entrypoint=config.entrypoint,
        cmd=config.cmd,
        env=config.env,
        working_dir=config.working_dir,
        user=config.user,
        stop_signal=config.stop_signal,
        labels=config.labels,
    )


def _image_to_proto(image: Image) -> storage_pb2.Image:
    return storage_pb2.Image(
        id=image.id,
        repo_tags=image.repo_tags,
        created_at=image.created_at,
        size=image.size,
        config=_config_to_proto(image.config),
        layers=image.layers,
    )


def _mount_to_proto(mount: Mount) -> types_pb2.Mount:
    return types_pb2.Mount(
        type=mount.type, source=mount.source, destination=mount.destination, options=mount.options
    )
