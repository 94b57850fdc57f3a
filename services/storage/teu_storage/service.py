"""gRPC adapter of the storage service: requests in, :class:`Storage` calls (in threads), responses out."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

from teu_api.errors import InvalidArgument
from teu_api.storage.v1 import storage_pb2, storage_pb2_grpc
from teu_api.types.v1 import types_pb2
from teu_common.opening import first_message
from teu_common.rpctypes import Ctx
from teu_storage import credentials, remote, uploads
from teu_storage.imagespec import ImageConfig
from teu_storage.imports import BuildStep
from teu_storage.metadata import Image
from teu_storage.snapshots import Mount
from teu_storage.storage import Storage
from teu_storage.threadio import events_from_thread, stream_from_thread
from teu_storage.volumes import Volume

__all__ = ["StorageServicer"]


class StorageServicer(storage_pb2_grpc.StorageServiceServicer):
    """Implements teu.storage.v1.StorageService over a :class:`Storage`."""

    def __init__(self, storage: Storage) -> None:
        self._storage = storage

    async def ImportImage(
        self,
        request_iterator: AsyncIterator[storage_pb2.ImportImageRequest],
        context: Ctx,
    ) -> storage_pb2.ImportImageResponse:
        first = await first_message(request_iterator, "header")
        image = await self._storage.import_image(
            first.header.ref,
            _config_from_proto(first.header.config),
            _chunks(request_iterator),
            url=first.header.url,
        )
        return storage_pb2.ImportImageResponse(image=_image_to_proto(image))

    async def GetImage(self, request: storage_pb2.GetImageRequest, context: Ctx) -> storage_pb2.GetImageResponse:
        image = await asyncio.to_thread(self._storage.get_image, request.ref)
        return storage_pb2.GetImageResponse(image=_image_to_proto(image))

    async def ListImages(self, request: storage_pb2.ListImagesRequest, context: Ctx) -> storage_pb2.ListImagesResponse:
        images = await asyncio.to_thread(self._storage.list_images)
        return storage_pb2.ListImagesResponse(images=[_image_to_proto(i) for i in images])

    async def PrepareSnapshot(
        self, request: storage_pb2.PrepareSnapshotRequest, context: Ctx
    ) -> storage_pb2.PrepareSnapshotResponse:
        mounts = await asyncio.to_thread(self._storage.prepare_snapshot, request.key, request.image_id)
        return storage_pb2.PrepareSnapshotResponse(mounts=[_mount_to_proto(m) for m in mounts])

    async def GetSnapshotMounts(
        self, request: storage_pb2.GetSnapshotMountsRequest, context: Ctx
    ) -> storage_pb2.GetSnapshotMountsResponse:
        mounts = await asyncio.to_thread(self._storage.snapshot_mounts, request.key)
        return storage_pb2.GetSnapshotMountsResponse(mounts=[_mount_to_proto(m) for m in mounts])

    async def RemoveSnapshot(
        self, request: storage_pb2.RemoveSnapshotRequest, context: Ctx
    ) -> storage_pb2.RemoveSnapshotResponse:
        removed = await asyncio.to_thread(self._storage.remove_snapshot, request.key)
        return storage_pb2.RemoveSnapshotResponse(removed=removed)

    async def GetStorageInfo(
        self, request: storage_pb2.GetStorageInfoRequest, context: Ctx
    ) -> storage_pb2.GetStorageInfoResponse:
        info = await asyncio.to_thread(self._storage.info)
        return storage_pb2.GetStorageInfoResponse(
            driver=info.driver, images=info.images, snapshots=info.snapshots, root=info.root
        )

    async def Diff(self, request: storage_pb2.DiffRequest, context: Ctx) -> storage_pb2.DiffResponse:
        changes = await asyncio.to_thread(self._storage.diff, request.key)
        return storage_pb2.DiffResponse(changes=[storage_pb2.Change(kind=c.kind, path=c.path) for c in changes])

    async def Commit(self, request: storage_pb2.CommitRequest, context: Ctx) -> storage_pb2.CommitResponse:
        image = await asyncio.to_thread(
            self._storage.commit,
            request.key,
            request.ref,
            _config_from_proto(request.config),
            request.message,
            request.author,
            BuildStep(request.created_by, tuple(request.empty_steps), request.build_key),
        )
        return storage_pb2.CommitResponse(image=_image_to_proto(image))

    async def ConfigureImage(
        self, request: storage_pb2.ConfigureImageRequest, context: Ctx
    ) -> storage_pb2.ConfigureImageResponse:
        step = BuildStep("", tuple(request.empty_steps), request.build_key)
        image = await asyncio.to_thread(self._storage.configure, request.image_id, _config_from_proto(request.config), step)
        return storage_pb2.ConfigureImageResponse(image=_image_to_proto(image))

    async def FindBuildCache(
        self, request: storage_pb2.FindBuildCacheRequest, context: Ctx
    ) -> storage_pb2.FindBuildCacheResponse:
        image = await asyncio.to_thread(self._storage.built_for, request.key)
        return storage_pb2.FindBuildCacheResponse(image=_image_to_proto(image))

    async def Export(self, request: storage_pb2.ExportRequest, context: Ctx) -> AsyncIterator[storage_pb2.ExportResponse]:
        await asyncio.to_thread(self._storage.snapshot_mounts, request.key)  # NotFound before any byte
        async for chunk in stream_from_thread(lambda out: self._storage.export(request.key, out)):
            yield storage_pb2.ExportResponse(chunk=chunk)

    async def CopyFrom(self, request: storage_pb2.CopyFromRequest, context: Ctx) -> AsyncIterator[storage_pb2.CopyFromResponse]:
        async for chunk in stream_from_thread(lambda out: self._storage.copy_from(request.key, request.path, out)):
            yield storage_pb2.CopyFromResponse(chunk=chunk)

    async def CopyTo(
        self,
        request_iterator: AsyncIterator[storage_pb2.CopyToRequest],
        context: Ctx,
    ) -> storage_pb2.CopyToResponse:
        first = await first_message(request_iterator, "header")
        header = first.header
        await asyncio.to_thread(self._storage.snapshot_mounts, header.key)  # NotFound before the upload
        tar_path = await uploads.receive(self._storage.tmp, _chunks(request_iterator))
        try:
            files = await asyncio.to_thread(self._storage.copy_to, header.key, header.path, tar_path, header.make_parents)
        finally:
            tar_path.unlink(missing_ok=True)
        return storage_pb2.CopyToResponse(files=files)

    async def TagImage(self, request: storage_pb2.TagImageRequest, context: Ctx) -> storage_pb2.TagImageResponse:
        image = await asyncio.to_thread(self._storage.tag, request.source, request.target)
        return storage_pb2.TagImageResponse(image=_image_to_proto(image))

    async def RemoveImage(self, request: storage_pb2.RemoveImageRequest, context: Ctx) -> storage_pb2.RemoveImageResponse:
        untagged, deleted = await asyncio.to_thread(self._storage.remove_image, request.ref, request.force)
        return storage_pb2.RemoveImageResponse(untagged=untagged, deleted=deleted)

    async def History(self, request: storage_pb2.HistoryRequest, context: Ctx) -> storage_pb2.HistoryResponse:
        entries = await asyncio.to_thread(self._storage.history, request.ref)
        return storage_pb2.HistoryResponse(
            entries=[
                storage_pb2.HistoryEntry(
                    id=e.id, created_at=e.created_at, created_by=e.created_by, size=e.size, comment=e.comment
                )
                for e in entries
            ]
        )

    async def SaveImages(
        self, request: storage_pb2.SaveImagesRequest, context: Ctx
    ) -> AsyncIterator[storage_pb2.SaveImagesResponse]:
        names, fmt = list(request.refs), request.format
        for name in names:  # NotFound before any byte is sent
            await asyncio.to_thread(self._storage.get_image, name)
        async for chunk in stream_from_thread(lambda out: self._storage.save(names, fmt, out)):
            yield storage_pb2.SaveImagesResponse(chunk=chunk)

    async def LoadImages(
        self,
        request_iterator: AsyncIterator[storage_pb2.LoadImagesRequest],
        context: Ctx,
    ) -> storage_pb2.LoadImagesResponse:
        tar_path = await uploads.receive(self._storage.tmp, (r.chunk async for r in request_iterator))
        try:
            images = await asyncio.to_thread(self._storage.load, tar_path)
        finally:
            tar_path.unlink(missing_ok=True)
        return storage_pb2.LoadImagesResponse(images=[_image_to_proto(i) for i in images])

    async def Pull(self, request: storage_pb2.PullRequest, context: Ctx) -> AsyncIterator[storage_pb2.PullResponse]:
        remote.parse_remote(request.ref, allow_digest=True)  # InvalidArgument before any thread starts
        auth = credentials.from_proto(request.auth)  # for this reference's registry only

        def work(emit: Callable[[remote.Progress | Image], None]) -> None:
            emit(self._storage.pull(request.ref, request.insecure, emit, credentials=auth))

        async for event in events_from_thread(work):
            if isinstance(event, Image):
                yield storage_pb2.PullResponse(image=_image_to_proto(event))
            else:
                yield storage_pb2.PullResponse(progress=_progress_to_proto(event))

    async def Push(self, request: storage_pb2.PushRequest, context: Ctx) -> AsyncIterator[storage_pb2.PushResponse]:
        remote.parse_remote(request.ref, allow_digest=False)
        auth = credentials.from_proto(request.auth)  # for this reference's registry only

        def work(emit: Callable[[remote.Progress | str], None]) -> None:
            emit(self._storage.push(request.ref, request.insecure, emit, credentials=auth))

        async for event in events_from_thread(work):
            if isinstance(event, str):
                yield storage_pb2.PushResponse(digest=event)
            else:
                yield storage_pb2.PushResponse(progress=_progress_to_proto(event))

    async def Prune(self, request: storage_pb2.PruneRequest, context: Ctx) -> storage_pb2.PruneResponse:
        deleted, reclaimed = await asyncio.to_thread(self._storage.prune, request.all, list(request.filters))
        return storage_pb2.PruneResponse(deleted=deleted, reclaimed=reclaimed)

    async def CreateVolume(self, request: storage_pb2.CreateVolumeRequest, context: Ctx) -> storage_pb2.CreateVolumeResponse:
        volume, created = await asyncio.to_thread(
            self._storage.create_volume, request.name, dict(request.labels), dict(request.options), request.anonymous
        )
        return storage_pb2.CreateVolumeResponse(volume=_volume_to_proto(volume), created=created)

    async def GetVolume(self, request: storage_pb2.GetVolumeRequest, context: Ctx) -> storage_pb2.GetVolumeResponse:
        volume = await asyncio.to_thread(self._storage.get_volume, request.name)
        size = await asyncio.to_thread(self._storage.volumes.size, volume) if request.size else -1
        return storage_pb2.GetVolumeResponse(volume=_volume_to_proto(volume, size))

    async def ListVolumes(self, request: storage_pb2.ListVolumesRequest, context: Ctx) -> storage_pb2.ListVolumesResponse:
        def listed() -> list[storage_pb2.Volume]:
            sizes = self._storage.volumes.size if request.size else lambda _v: -1
            return [_volume_to_proto(v, sizes(v)) for v in self._storage.list_volumes()]

        return storage_pb2.ListVolumesResponse(volumes=await asyncio.to_thread(listed))

    async def RemoveVolume(self, request: storage_pb2.RemoveVolumeRequest, context: Ctx) -> storage_pb2.RemoveVolumeResponse:
        return storage_pb2.RemoveVolumeResponse(removed=await asyncio.to_thread(self._storage.remove_volume, request.name))

    async def SnapshotSizes(self, request: storage_pb2.SnapshotSizesRequest, context: Ctx) -> storage_pb2.SnapshotSizesResponse:
        sizes = await asyncio.to_thread(self._storage.snapshot_sizes, list(request.keys))
        return storage_pb2.SnapshotSizesResponse(sizes=sizes)

    async def Events(self, request: storage_pb2.EventsRequest, context: Ctx) -> AsyncIterator[storage_pb2.EventsResponse]:
        async for batch in self._storage.store.journal.serve(request.query):
            yield storage_pb2.EventsResponse(batch=batch)

    async def FillVolume(self, request: storage_pb2.FillVolumeRequest, context: Ctx) -> storage_pb2.FillVolumeResponse:
        filled = await asyncio.to_thread(self._storage.fill_volume, request.name, request.key, request.path)
        return storage_pb2.FillVolumeResponse(filled=filled)


async def _chunks(
    requests: AsyncIterator[storage_pb2.ImportImageRequest] | AsyncIterator[storage_pb2.CopyToRequest],
) -> AsyncIterator[bytes]:
    """The tar bytes of the messages after the header; a second header is a protocol error."""
    async for request in requests:
        if request.WhichOneof("part") != "chunk":
            raise InvalidArgument("only chunks may follow the header")
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
        volumes=tuple(config.volumes),
        exposed_ports=tuple(config.exposed_ports),
        healthcheck=_health_to_docker(config.healthcheck),
        shell=tuple(config.shell),
        on_build=tuple(config.on_build),
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
        volumes=config.volumes,
        exposed_ports=config.exposed_ports,
        healthcheck=_health_from_docker(config.healthcheck),
        shell=config.shell,
        on_build=config.on_build,
    )


def _image_to_proto(image: Image) -> storage_pb2.Image:
    return storage_pb2.Image(
        id=image.id,
        repo_tags=image.repo_tags,
        created_at=image.created_at,
        size=image.size,
        config=_config_to_proto(image.config),
        layers=image.layers,
        parent=image.parent,
        comment=image.comment,
        platform=image.platform,
    )


def _progress_to_proto(progress: remote.Progress) -> storage_pb2.Progress:
    return storage_pb2.Progress(digest=progress.digest, done=progress.done, total=progress.total, status=progress.status)


def _mount_to_proto(mount: Mount) -> types_pb2.Mount:
    return types_pb2.Mount(type=mount.type, source=mount.source, destination=mount.destination, options=mount.options)


def _volume_to_proto(volume: Volume, size: int = -1) -> storage_pb2.Volume:
    return storage_pb2.Volume(
        name=volume.name, mountpoint=str(volume.data), created_at=volume.created_at, labels=volume.labels,
        options=volume.options, anonymous=volume.anonymous, mount=_mount_to_proto(volume.mount()), size=size,
    )  # fmt: skip


_HEALTH_FIELDS = (("Interval", "interval_ns"), ("Timeout", "timeout_ns"), ("StartPeriod", "start_period_ns"),
                  ("StartInterval", "start_interval_ns"), ("Retries", "retries"))  # fmt: skip


def _health_to_docker(h: types_pb2.HealthConfig) -> dict[str, Any]:
    """A HEALTHCHECK as Docker writes it in an image config (only what is set)."""
    out: dict[str, Any] = {"Test": list(h.test)} if h.test else {}
    out.update({key: getattr(h, name) for key, name in _HEALTH_FIELDS if getattr(h, name)})
    return out


def _health_from_docker(doc: Mapping[str, Any]) -> types_pb2.HealthConfig:
    """An image config's Healthcheck as the API message (what is not a number or a list is left out)."""
    out = types_pb2.HealthConfig(test=[str(t) for t in doc.get("Test") or []])
    for key, name in _HEALTH_FIELDS:
        if isinstance(doc.get(key), int):
            setattr(out, name, doc[key])
    return out
