"""gRPC adapter of the public SystemService."""

from __future__ import annotations

from collections.abc import AsyncIterator

from grpc_health.v1 import health_pb2

from teu_api import VERSION
from teu_api.gateway.v1 import gateway_pb2 as gw
from teu_api.gateway.v1 import gateway_pb2_grpc
from teu_api.logs.v1 import logs_pb2 as lg
from teu_api.runtime.v1 import runtime_pb2 as rt
from teu_api.storage.v1 import storage_pb2 as st
from teu_api.types.v1 import types_pb2
from teu_common.rpctypes import Ctx
from teu_gateway import events
from teu_gateway.backends import call
from teu_gateway.flows import Flows


class SystemServicer(gateway_pb2_grpc.SystemServiceServicer):
    """Engine-wide information."""

    def __init__(self, flows: Flows) -> None:
        self.b = flows.b
        self.flows = flows
        reader = events.Reader(flows.b)
        self.events = events.Merger(reader, events.Hub(reader))

    async def Info(self, request: gw.InfoRequest, context: Ctx) -> gw.InfoResponse:
        r = await call("runtime", self.b.runtime.GetRuntimeInfo(rt.GetRuntimeInfoRequest()))
        s = await call("storage", self.b.storage.GetStorageInfo(st.GetStorageInfoRequest()))
        await call("logs", self.b.logs_health.Check(health_pb2.HealthCheckRequest()))  # all three must answer
        return gw.InfoResponse(
            oci_runtime=r.oci_runtime,
            oci_runtime_version=r.oci_runtime_version,
            oci_runtime_reason=r.oci_runtime_reason,
            cgroup_version=r.cgroup_version,
            conmon_version=r.conmon_version,
            containers=r.containers_running + r.containers_created + r.containers_exited,
            containers_running=r.containers_running,
            containers_created=r.containers_created,
            containers_exited=r.containers_exited,
            images=s.images,
            storage_driver=s.driver,
            storage_root=s.root,
            security_options=list(r.security_options),
        )

    async def DiskUsage(self, request: gw.DiskUsageRequest, context: Ctx) -> gw.DiskUsageResponse:
        images = await call("storage", self.b.storage.ListImages(st.ListImagesRequest()))
        containers = await call("runtime", self.b.runtime.ListContainers(rt.ListContainersRequest(all=True)))
        logs = await call("logs", self.b.logs.GetLogUsage(lg.GetLogUsageRequest()))
        volumes = await self.flows.volumes.listed(size=True)
        return gw.DiskUsageResponse(
            images=len(images.images),
            images_bytes=sum(i.size for i in images.images),
            containers=len(containers.containers),
            logs_bytes=logs.bytes,
            volumes=len(volumes),
            volumes_bytes=sum(max(v.size, 0) for v in volumes),
        )

    async def Version(self, request: gw.VersionRequest, context: Ctx) -> gw.VersionResponse:
        r = await call("runtime", self.b.runtime.GetRuntimeInfo(rt.GetRuntimeInfoRequest()))
        return gw.VersionResponse(version=VERSION, api_version="v1", oci_runtime_version=r.oci_runtime_version)

    async def Prune(self, request: gw.PruneRequest, context: Ctx) -> gw.PruneResponse:
        listed = await call("runtime", self.b.runtime.ListContainers(rt.ListContainersRequest(all=True)))
        removed = []
        for c in listed.containers:
            if c.state != types_pb2.CONTAINER_STATE_RUNNING:
                await self.flows.remove(c.id, force=False)
                removed.append(c.id)
        images = await call("storage", self.b.storage.Prune(st.PruneRequest(all=request.all)))
        return gw.PruneResponse(containers=removed, images=list(images.deleted), reclaimed=images.reclaimed)

    async def Events(self, request: gw.EventsRequest, context: Ctx) -> AsyncIterator[gw.EventsResponse]:
        wanted = events.request(request.cursor, request.since_unix_nano, request.until_unix_nano, list(request.filters))
        async for event, cursor in self.events.stream(wanted):
            yield gw.EventsResponse(event=event, cursor=cursor) if event is not None else gw.EventsResponse(cursor=cursor)
