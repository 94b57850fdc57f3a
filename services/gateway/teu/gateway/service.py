"""gRPC adapters of the public API: convert, call the flows, convert back."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TypeAlias

import grpc

from teu.common.signals import parse_signal
from teu.common.streams import first_message
from teu.errors import InvalidArgument
from teu.gateway import convert, options, streams
from teu.gateway.backends import call, stream
from teu.gateway.flows import RUNNING, Flows
from teu.gateway.v1 import gateway_pb2 as gw
from teu.gateway.v1 import gateway_pb2_grpc
from teu.runtime.v1 import runtime_pb2 as rt
from teu.storage.v1 import storage_pb2 as st

Ctx: TypeAlias = grpc.aio.ServicerContext  # grpc is untyped, so this is Any to mypy


class ContainersServicer(gateway_pb2_grpc.ContainersServiceServicer):
    """The standard operations on containers."""

    def __init__(self, flows: Flows) -> None:
        self.f = flows
        self.rt = flows.b.runtime
        self.st = flows.b.storage

    async def Create(self, request: gw.CreateRequest, context: Ctx) -> gw.CreateResponse:
        c = await self.f.create(request.config)
        return gw.CreateResponse(id=c.id, name=c.name)

    async def Run(self, request: gw.RunRequest, context: Ctx) -> AsyncIterator[gw.RunResponse]:
        async for frame in self.f.run(request.config, request.detach):
            yield frame

    async def Start(self, request: gw.StartRequest, context: Ctx) -> gw.StartResponse:
        c = await self.f.find(request.container)
        await self.f.start(c.id, require_running=True)
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
        await self.f.start(c.id, require_running=True)
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

    async def Diff(self, request: gw.DiffRequest, context: Ctx) -> gw.DiffResponse:
        c = await self.f.find(request.container)
        resp = await call("storage", self.st.Diff(st.DiffRequest(key=c.id)))
        return gw.DiffResponse(changes=[gw.Change(kind=ch.kind, path=ch.path) for ch in resp.changes])

    async def Commit(self, request: gw.CommitRequest, context: Ctx) -> gw.CommitResponse:
        c = await self.f.find(request.container)
        image = (await call("storage", self.st.GetImage(st.GetImageRequest(ref=c.spec.image_id)))).image
        config = options.commit_config(c.spec, image.config, request.changes, request.changed)
        req = st.CommitRequest(key=c.id, ref=request.ref, config=config, message=request.message, author=request.author)
        resp = await call("storage", self.st.Commit(req))
        return gw.CommitResponse(image=convert.image(resp.image))

    async def Export(self, request: gw.ExportRequest, context: Ctx) -> AsyncIterator[gw.ExportResponse]:
        c = await self.f.find(request.container)
        async for part in stream("storage", self.st.Export(st.ExportRequest(key=c.id))):
            yield gw.ExportResponse(chunk=part.chunk)

    async def CopyFrom(self, request: gw.CopyFromRequest, context: Ctx) -> AsyncIterator[gw.CopyFromResponse]:
        c = await self.f.find(request.container)
        async for part in stream("storage", self.st.CopyFrom(st.CopyFromRequest(key=c.id, path=request.path))):
            yield gw.CopyFromResponse(chunk=part.chunk)

    async def CopyTo(self, request_iterator: AsyncIterator[gw.CopyToRequest], context: Ctx) -> gw.CopyToResponse:
        header: gw.CopyToHeader = (await first_message(request_iterator, "header")).header
        c = await self.f.find(header.container)
        if c.state == RUNNING:
            # the runtime owns the mounted root filesystem and extracts there, chrooted: overlayfs
            # does not expect its upper dir to change under a mount, and a chroot keeps every path
            # the container can change inside it (the class of bug behind CVE-2018-15664)
            async def into_running() -> AsyncIterator[rt.CopyToRequest]:
                yield rt.CopyToRequest(header=rt.CopyToHeader(id=c.id, path=header.path))
                async for part in request_iterator:
                    yield rt.CopyToRequest(chunk=part.chunk)

            done = await call("runtime", self.rt.CopyTo(into_running()))
            return gw.CopyToResponse(files=done.files)

        async def forward() -> AsyncIterator[st.CopyToRequest]:
            yield st.CopyToRequest(header=st.CopyToHeader(key=c.id, path=header.path))
            async for part in request_iterator:
                yield st.CopyToRequest(chunk=part.chunk)

        resp = await call("storage", self.st.CopyTo(forward()))
        return gw.CopyToResponse(files=resp.files)
