"""gRPC adapter of the public VolumesService, over :class:`teu_gateway.volumeflows.VolumeFlows`."""

from __future__ import annotations

from collections.abc import Mapping

from teu_api.errors import InvalidArgument
from teu_api.gateway.v1 import gateway_pb2 as gw
from teu_api.gateway.v1 import gateway_pb2_grpc
from teu_api.storage.v1 import storage_pb2 as st
from teu_common.rpctypes import Ctx
from teu_gateway import limits
from teu_gateway.flows import Flows
from teu_gateway.volumeflows import select


def public(v: st.Volume, users: Mapping[str, list[str]]) -> gw.Volume:
    """A storage volume as the public API shows it."""
    return gw.Volume(
        name=v.name, driver="local", mountpoint=v.mountpoint, created_at=v.created_at, labels=v.labels,
        options=v.options, anonymous=v.anonymous, size=v.size, used_by=users.get(v.name, []),
    )  # fmt: skip


class VolumesServicer(gateway_pb2_grpc.VolumesServiceServicer):
    """Volumes: storage holds them, the runtime's records say who uses them."""

    def __init__(self, flows: Flows) -> None:
        self.v = flows.volumes

    async def CreateVolume(self, request: gw.CreateVolumeRequest, context: Ctx) -> gw.CreateVolumeResponse:
        if request.driver not in ("", "local"):
            raise InvalidArgument(f"volume driver {limits.shown(request.driver)} is not available: only local")
        limits.check_length(request.name, limits.MAX_NAME, "name")
        limits.check_labels(request.labels)
        volume = await self.v.create(request.name, request.labels, request.options)
        return gw.CreateVolumeResponse(volume=public(volume, {}))

    async def InspectVolume(self, request: gw.InspectVolumeRequest, context: Ctx) -> gw.InspectVolumeResponse:
        limits.check_length(request.name, limits.MAX_NAME, "volume")
        volume = await self.v.inspect(request.name)
        return gw.InspectVolumeResponse(volume=public(volume, await self.v.users()))

    async def ListVolumes(self, request: gw.ListVolumesRequest, context: Ctx) -> gw.ListVolumesResponse:
        users = await self.v.users()
        chosen = select(await self.v.listed(), users, list(request.filters))
        return gw.ListVolumesResponse(volumes=[public(v, users) for v in chosen])

    async def RemoveVolume(self, request: gw.RemoveVolumeRequest, context: Ctx) -> gw.RemoveVolumeResponse:
        limits.check_length(request.name, limits.MAX_NAME, "volume")
        return gw.RemoveVolumeResponse(removed=await self.v.remove(request.name, request.force))

    async def PruneVolumes(self, request: gw.PruneVolumesRequest, context: Ctx) -> gw.PruneVolumesResponse:
        labels = []
        for f in request.filters:
            key, eq, value = f.partition("=")
            if key != "label" or not eq:
                raise InvalidArgument(f"invalid filter {limits.shown(f)}: prune takes label=KEY[=VALUE]")
            labels.append(value)
        deleted, reclaimed = await self.v.prune(request.all, labels)
        return gw.PruneVolumesResponse(deleted=deleted, reclaimed=reclaimed)
