"""gRPC adapters of the public API: convert, call the flows, convert back."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TypeAlias

import grpc
from grpc_health.v1 import health_pb2

from teu.common.signals import parse_signal
from teu.errors import FailedPrecondition, InvalidArgument
from teu.gateway import convert, streams
from teu.gateway.backends import call
from teu.gateway.flows import Flows
from teu.gateway.v1 import gateway_pb2 as gw
from teu.gateway.v1 import gateway_pb2_grpc
from teu.logs.v1 import logs_pb2 as lg
from teu.runtime.v1 import runtime_pb2 as rt
from teu.storage.v1 import storage_pb2 as st

VERSION = "0.1.0"
Ctx: TypeAlias = grpc.aio.ServicerContext  # grpc is untyped, so this is Any to mypy


class ContainersServicer(gateway_pb2_grpc.ContainersServiceServicer):
    """The standard operations on containers."""

    def __init__(self, flows: Flows) -> None:
        self.f = flows
        self.rt = flows.b.runtime

    async def Create(self, request: gw.CreateRequest, context: Ctx) -> gw.CreateResponse:
        c = await self.f.create(request.config)
        return gw.CreateResponse(id=c.id, name=c.name)

    async def Run(self, request: gw.RunRequest, context: Ctx) -> AsyncIterator[gw.RunResponse]:
        async for frame in self.f.run(request.config, request.detach):
            yield frame

    async def Start(self, request: gw.StartRequest, context: Ctx) -> gw.StartResponse:
        c = await self.f.find(request.container)
        c = await self.f.start(c.id)
        if c.error:
            raise FailedPrecondition(f"container {c.name} could not start: {c.error}")
        return gw.StartResponse(id=c.id)

    async def Stop(self, request: gw.StopRequest, context: Ctx) -> gw.StopResponse:
        c = await self.f.find(request.container)
        timeout = request.timeout_seconds if request.HasField("timeout_seconds") else -1
        await call("runtime", self.rt.StopContainer(rt.StopContainerRequest(id=c.id, timeout_seconds=timeout)))
        return gw.StopResponse(id=c.id)

    async def Kill(self, request: gw.KillRequest, context: Ctx) -> gw.KillResponse:
        sig = parse_signal(request.signal or "SIGKILL")
        c = await self.f.find(request.container)
        await call("runtime", self.rt.KillContainer(rt.KillContainerRequest(id=c.id, signal=sig)))
        return gw.KillResponse(id=c.id)

    async def Restart(self, request: gw.RestartRequest, context: Ctx) -> gw.RestartResponse:
        c = await self.f.find(request.container)
        timeout = request.timeout_seconds if request.HasField("timeout_seconds") else -1
        await call("runtime", self.rt.StopContainer(rt.StopContainerRequest(id=c.id, timeout_seconds=timeout)))
        await self.f.start(c.id)
        return gw.RestartResponse(id=c.id)

    async def Wait(self, request: gw.WaitRequest, context: Ctx) -> gw.WaitResponse:
        c = await self.f.wait((await self.f.find(request.container)).id)
        return gw.WaitResponse(exit_code=c.exit_code, oom_killed=c.oom_killed)

    async def List(self, request: gw.ListRequest, context: Ctx) -> gw.ListResponse:
        found = await call("runtime", self.rt.ListContainers(rt.ListContainersRequest(all=request.all)))
        return gw.ListResponse(containers=[convert.summary(c) for c in found.containers])

    async def Inspect(self, request: gw.InspectRequest, context: Ctx) -> gw.InspectResponse:
        return gw.InspectResponse(container=convert.details(await self.f.find(request.container)))

    async def Remove(self, request: gw.RemoveRequest, context: Ctx) -> gw.RemoveResponse:
        c = await self.f.find(request.container)
        await self.f.remove(c.id, request.force)
        return gw.RemoveResponse(id=c.id)

    async def Logs(self, request: gw.LogsRequest, context: Ctx) -> AsyncIterator[gw.LogsResponse]:
        if not request.containers:
            raise InvalidArgument("name at least one container")
        containers = [await self.f.find(ref) for ref in request.containers]
        async for batch in self.f.logs.logs(containers, request):
            if batch.lines or batch.chunks:
                yield batch


    async def Attach(self, request_iterator: AsyncIterator[gw.AttachRequest], context: Ctx) -> AsyncIterator[gw.AttachResponse]:
        async for resp in streams.attach(self.f, request_iterator):
            yield resp

    async def Exec(self, request_iterator: AsyncIterator[gw.ExecRequest], context: Ctx) -> AsyncIterator[gw.ExecResponse]:
        async for resp in streams.exec_(self.f, request_iterator):
            yield resp


class ImagesServicer(gateway_pb2_grpc.ImagesServiceServicer):
    """Image operations."""

    def __init__(self, flows: Flows) -> None:
        self.st = flows.b.storage

    async def Import(self, request_iterator: AsyncIterator[gw.ImportRequest], context: Ctx) -> gw.ImportResponse:
        async def forward() -> AsyncIterator[st.ImportImageRequest]:
            async for part in request_iterator:
                if part.HasField("header"):
                    yield st.ImportImageRequest(header=st.ImportHeader(ref=part.header.ref, config=part.header.config))
                else:
                    yield st.ImportImageRequest(chunk=part.chunk)

        resp = await call("storage", self.st.ImportImage(forward()))
        return gw.ImportResponse(image=convert.image(resp.image))

    async def ListImages(self, request: gw.ListImagesRequest, context: Ctx) -> gw.ListImagesResponse:
        resp = await call("storage", self.st.ListImages(st.ListImagesRequest()))
        return gw.ListImagesResponse(images=[convert.image(i) for i in resp.images])

    async def InspectImage(self, request: gw.InspectImageRequest, context: Ctx) -> gw.InspectImageResponse:
        resp = await call("storage", self.st.GetImage(st.GetImageRequest(ref=request.image)))
        return gw.InspectImageResponse(image=convert.image(resp.image))


class SystemServicer(gateway_pb2_grpc.SystemServiceServicer):
    """Engine-wide information."""

    def __init__(self, flows: Flows) -> None:
        self.b = flows.b

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
        )

    async def DiskUsage(self, request: gw.DiskUsageRequest, context: Ctx) -> gw.DiskUsageResponse:
        images = await call("storage", self.b.storage.ListImages(st.ListImagesRequest()))
        containers = await call("runtime", self.b.runtime.ListContainers(rt.ListContainersRequest(all=True)))
        logs = await call("logs", self.b.logs.GetLogUsage(lg.GetLogUsageRequest()))
        return gw.DiskUsageResponse(
            images=len(images.images),
            images_bytes=sum(i.size for i in images.images),
            containers=len(containers.containers),
            logs_bytes=logs.bytes,
        )

    async def Version(self, request: gw.VersionRequest, context: Ctx) -> gw.VersionResponse:
        r = await call("runtime", self.b.runtime.GetRuntimeInfo(rt.GetRuntimeInfoRequest()))
        return gw.VersionResponse(version=VERSION, api_version="v1", oci_runtime_version=r.oci_runtime_version)
