"""gRPC adapters of the public API: convert, call the flows, convert back."""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator

from teu_api.errors import FailedPrecondition, InvalidArgument, NotFound
from teu_api.gateway.v1 import gateway_pb2 as gw
from teu_api.gateway.v1 import gateway_pb2_grpc
from teu_api.logs.v1 import logs_pb2 as lg
from teu_api.runtime.v1 import runtime_pb2 as rt
from teu_api.types.v1 import types_pb2
from teu_common.opening import first_message
from teu_common.rpctypes import Ctx
from teu_common.signals import parse_signal
from teu_gateway import convert, limits, listing, resources, stdio, usage
from teu_gateway.backends import call
from teu_gateway.flows import Flows


class ContainersServicer(gateway_pb2_grpc.ContainersServiceServicer):
    """The standard operations on containers."""

    def __init__(self, flows: Flows) -> None:
        self.f = flows

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
        if request.signal:
            parse_signal(request.signal)
        await self.f.stop(c.id, request.timeout_seconds if request.HasField("timeout_seconds") else -1, request.signal)
        return gw.StopResponse(id=c.id)

    async def Kill(self, request: gw.KillRequest, context: Ctx) -> gw.KillResponse:
        sig = parse_signal(request.signal or "SIGKILL")
        c = await self.f.find(request.container)
        await self.f.kill(c.id, sig)
        return gw.KillResponse(id=c.id)

    async def Stats(self, request: gw.StatsRequest, context: Ctx) -> AsyncIterator[gw.StatsResponse]:
        if request.interval_ms and request.interval_ms < 100:
            raise InvalidArgument(f"interval_ms must be at least 100, got {request.interval_ms}")
        if request.one_shot and request.stream:
            raise InvalidArgument("one_shot is a single reading: it cannot stream")
        limits.check_count(request.containers, limits.MAX_LOG_CONTAINERS, "containers")
        ids = [(await self.f.find(ref)).id for ref in dict.fromkeys(request.containers)]
        interval = (request.interval_ms or 1000) / 1000
        async for reading in usage.readings(self.f.b, ids, request.stream, interval, request.one_shot):
            yield reading

    async def Pause(self, request: gw.PauseRequest, context: Ctx) -> gw.PauseResponse:
        c = await self.f.find(request.container)
        await call("runtime", self.f.b.runtime.PauseContainer(rt.PauseContainerRequest(id=c.id)))
        return gw.PauseResponse(id=c.id)

    async def Unpause(self, request: gw.UnpauseRequest, context: Ctx) -> gw.UnpauseResponse:
        c = await self.f.find(request.container)
        await call("runtime", self.f.b.runtime.UnpauseContainer(rt.UnpauseContainerRequest(id=c.id)))
        return gw.UnpauseResponse(id=c.id)

    async def Update(self, request: gw.UpdateRequest, context: Ctx) -> gw.UpdateResponse:
        c = await self.f.find(request.container)
        merged = resources.check_resources(resources.merged(c.spec.resources, request.resources), os.cpu_count() or 1)
        req = rt.UpdateContainerRequest(id=c.id, resources=merged)
        if request.HasField("restart"):
            req.restart_policy.CopyFrom(request.restart)
        await call("runtime", self.f.b.runtime.UpdateContainer(req))
        return gw.UpdateResponse(id=c.id)

    async def Rename(self, request: gw.RenameRequest, context: Ctx) -> gw.RenameResponse:
        limits.check_length(request.name, limits.MAX_NAME, "name")
        c = await self.f.find(request.container)
        await call("runtime", self.f.b.runtime.RenameContainer(rt.RenameContainerRequest(id=c.id, name=request.name)))
        return gw.RenameResponse(id=c.id)

    async def Top(self, request: gw.TopRequest, context: Ctx) -> gw.TopResponse:
        limits.check_all(request.ps_args, limits.MAX_WORD, "ps_args")
        c = await self.f.find(request.container)
        req = rt.ContainerProcessesRequest(id=c.id, ps_args=list(request.ps_args))
        resp: rt.ContainerProcessesResponse = await call("runtime", self.f.b.runtime.ContainerProcesses(req))
        return gw.TopResponse(titles=list(resp.titles), processes=[gw.TopRow(columns=list(r.columns)) for r in resp.rows])

    async def PruneContainers(self, request: gw.PruneContainersRequest, context: Ctx) -> gw.PruneContainersResponse:
        doomed = listing.prunable(await self.f.containers(True), list(request.filters), time.time_ns())
        deleted = []
        for c in doomed:
            try:
                await self.f.remove(c.id, force=False)
            except (FailedPrecondition, NotFound):
                continue  # started again, or removed, meanwhile
            deleted.append(c.id)
        return gw.PruneContainersResponse(deleted=deleted)

    async def Restart(self, request: gw.RestartRequest, context: Ctx) -> gw.RestartResponse:
        c = await self.f.find(request.container)
        await self.f.restart(c.id, request.timeout_seconds if request.HasField("timeout_seconds") else -1)
        return gw.RestartResponse(id=c.id)

    async def Wait(self, request: gw.WaitRequest, context: Ctx) -> gw.WaitResponse:
        c = await self.f.wait_for((await self.f.find(request.container)).id, request.condition or "not-running")
        return gw.WaitResponse(exit_code=c.exit_code, oom_killed=c.oom_killed)

    async def List(self, request: gw.ListRequest, context: Ctx) -> gw.ListResponse:
        plain = not request.filters and not request.last
        found = await self.f.containers(request.all or not plain)
        chosen = found if plain else listing.select(found, list(request.filters), request.all, request.last)
        summaries = [convert.summary(c) for c in chosen]
        if request.size:
            await self.f.fs.measure(summaries, chosen)
        return gw.ListResponse(containers=summaries)

    async def Inspect(self, request: gw.InspectRequest, context: Ctx) -> gw.InspectResponse:
        return gw.InspectResponse(container=await self.f.inspect(request.container))

    async def Remove(self, request: gw.RemoveRequest, context: Ctx) -> gw.RemoveResponse:
        c = await self.f.find(request.container)
        await self.f.remove(c.id, request.force, volumes=request.volumes)
        return gw.RemoveResponse(id=c.id)

    async def RotateLog(self, request: gw.RotateLogRequest, context: Ctx) -> gw.RotateLogResponse:
        c = await self.f.find(request.container)
        if c.state != types_pb2.CONTAINER_STATE_RUNNING:
            raise FailedPrecondition(f"container {c.name} is not running: its log has no writer")
        resp: lg.RotateLogResponse = await call("logs", self.f.b.logs.RotateLog(lg.RotateLogRequest(container_id=c.id)))
        return gw.RotateLogResponse(path=resp.path)

    async def Logs(self, request: gw.LogsRequest, context: Ctx) -> AsyncIterator[gw.LogsResponse]:
        async for batch in self.f.read_logs(request):
            yield batch

    async def Attach(self, request_iterator: AsyncIterator[gw.AttachRequest], context: Ctx) -> AsyncIterator[gw.AttachResponse]:
        async for resp in stdio.attach(self.f, request_iterator):
            yield resp

    async def Exec(self, request_iterator: AsyncIterator[gw.ExecRequest], context: Ctx) -> AsyncIterator[gw.ExecResponse]:
        async for resp in stdio.exec_(self.f, request_iterator):
            yield resp

    async def Diff(self, request: gw.DiffRequest, context: Ctx) -> gw.DiffResponse:
        return gw.DiffResponse(changes=await self.f.fs.diff(await self.f.find(request.container)))

    async def Commit(self, request: gw.CommitRequest, context: Ctx) -> gw.CommitResponse:
        return gw.CommitResponse(image=await self.f.fs.commit(await self.f.find(request.container), request))

    async def Export(self, request: gw.ExportRequest, context: Ctx) -> AsyncIterator[gw.ExportResponse]:
        async for chunk in self.f.fs.export(await self.f.find(request.container)):
            yield gw.ExportResponse(chunk=chunk)

    async def CopyFrom(self, request: gw.CopyFromRequest, context: Ctx) -> AsyncIterator[gw.CopyFromResponse]:
        async for chunk in self.f.fs.copy_from(await self.f.find(request.container), request.path):
            yield gw.CopyFromResponse(chunk=chunk)

    async def CopyTo(self, request_iterator: AsyncIterator[gw.CopyToRequest], context: Ctx) -> gw.CopyToResponse:
        header: gw.CopyToHeader = (await first_message(request_iterator, "header")).header
        c = await self.f.find(header.container)
        chunks = (part.chunk async for part in request_iterator)
        return gw.CopyToResponse(files=await self.f.fs.copy_to(c, header.path, chunks))
