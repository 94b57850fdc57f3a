"""gRPC adapter of the runtime service: convert, call the manager, convert back."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from teu_api.runtime.v1 import runtime_pb2 as pb
from teu_api.runtime.v1 import runtime_pb2_grpc
from teu_api.types.v1 import types_pb2 as t
from teu_common.opening import first_message
from teu_common.rpctypes import Ctx
from teu_runtime import stats, stdio, top
from teu_runtime.manager import CREATED, EXITED, RUNNING, Manager


class RuntimeServicer(runtime_pb2_grpc.RuntimeServiceServicer):
    """Thin adapter over :class:`Manager`."""

    def __init__(self, manager: Manager, info: pb.GetRuntimeInfoResponse) -> None:
        self.m = manager
        self.info = info

    async def CreateContainer(self, request: pb.CreateContainerRequest, context: Ctx) -> pb.CreateContainerResponse:
        return pb.CreateContainerResponse(container=self.m.describe(await self.m.create(request.id, request.name, request.spec)))

    async def StartContainer(self, request: pb.StartContainerRequest, context: Ctx) -> pb.StartContainerResponse:
        started = await self.m.start(request.id, request.rootfs, restart=request.restart)
        return pb.StartContainerResponse(container=self.m.describe(started))

    async def StopContainer(self, request: pb.StopContainerRequest, context: Ctx) -> pb.StopContainerResponse:
        return pb.StopContainerResponse(container=await self.m.stop(request.id, request.timeout_seconds, request.signal))

    async def KillContainer(self, request: pb.KillContainerRequest, context: Ctx) -> pb.KillContainerResponse:
        return pb.KillContainerResponse(container=await self.m.kill(request.id, request.signal))

    async def WaitContainer(self, request: pb.WaitContainerRequest, context: Ctx) -> pb.WaitContainerResponse:
        return pb.WaitContainerResponse(container=await self.m.wait(request.id))

    async def DeleteContainer(self, request: pb.DeleteContainerRequest, context: Ctx) -> pb.DeleteContainerResponse:
        return pb.DeleteContainerResponse(container=await self.m.delete(request.id, request.force))

    async def GetContainer(self, request: pb.GetContainerRequest, context: Ctx) -> pb.GetContainerResponse:
        return pb.GetContainerResponse(container=self.m.describe(self.m.store.find(request.ref)))

    async def ListContainers(self, request: pb.ListContainersRequest, context: Ctx) -> pb.ListContainersResponse:
        execs = self.m.store.all_execs()
        found = [self.m.describe(c, execs.get(c.id, [])) for c in self.m.store.list() if request.all or c.state == RUNNING]
        return pb.ListContainersResponse(containers=found)

    async def GetRuntimeInfo(self, request: pb.GetRuntimeInfoRequest, context: Ctx) -> pb.GetRuntimeInfoResponse:
        states = [c.state for c in self.m.store.list()]
        out = pb.GetRuntimeInfoResponse()
        out.CopyFrom(self.info)
        out.containers_running = states.count(RUNNING)
        out.containers_created = states.count(CREATED)
        out.containers_exited = states.count(EXITED)
        return out

    async def CreateNetwork(self, request: pb.CreateNetworkRequest, context: Ctx) -> pb.CreateNetworkResponse:
        return pb.CreateNetworkResponse(network=await self.m.networks.create(request.name, request.subnet, request))

    async def PauseContainer(self, request: pb.PauseContainerRequest, context: Ctx) -> pb.PauseContainerResponse:
        return pb.PauseContainerResponse(container=self.m.describe(await self.m.pause(request.id)))

    async def UnpauseContainer(self, request: pb.UnpauseContainerRequest, context: Ctx) -> pb.UnpauseContainerResponse:
        return pb.UnpauseContainerResponse(container=self.m.describe(await self.m.unpause(request.id)))

    async def UpdateContainer(self, request: pb.UpdateContainerRequest, context: Ctx) -> pb.UpdateContainerResponse:
        policy = request.restart_policy if request.HasField("restart_policy") else None
        c = await self.m.update(request.id, request.resources, policy)
        return pb.UpdateContainerResponse(container=self.m.describe(c))

    async def ContainerStats(self, request: pb.ContainerStatsRequest, context: Ctx) -> pb.ContainerStatsResponse:
        wanted = set(request.ids)
        running = [c for c in self.m.store.list() if c.state == RUNNING and c.pid > 0 and (not wanted or c.id in wanted)]
        readings = await asyncio.to_thread(lambda: [stats.read(c.id, c.name, c.pid, c.paused) for c in running])
        return pb.ContainerStatsResponse(stats=readings)

    async def RenameContainer(self, request: pb.RenameContainerRequest, context: Ctx) -> pb.RenameContainerResponse:
        return pb.RenameContainerResponse(container=self.m.describe(await self.m.rename(request.id, request.name)))

    async def ContainerProcesses(self, request: pb.ContainerProcessesRequest, context: Ctx) -> pb.ContainerProcessesResponse:
        pids = await self.m.processes(request.id)
        titles, rows = await top.run(list(request.ps_args), pids)
        return pb.ContainerProcessesResponse(pids=pids, titles=titles, rows=[pb.ProcessRow(columns=r) for r in rows])

    async def ConnectNetwork(self, request: pb.ConnectNetworkRequest, context: Ctx) -> pb.ConnectNetworkResponse:
        attachment = await self.m.connect(request.container, request.network, request.ip, list(request.aliases))
        return pb.ConnectNetworkResponse(attachment=attachment)

    async def DisconnectNetwork(self, request: pb.DisconnectNetworkRequest, context: Ctx) -> pb.DisconnectNetworkResponse:
        await self.m.disconnect(request.container, request.network, request.force)
        return pb.DisconnectNetworkResponse()

    async def GetNetwork(self, request: pb.GetNetworkRequest, context: Ctx) -> pb.GetNetworkResponse:
        return pb.GetNetworkResponse(network=self.m.networks.get(request.ref))

    async def ListNetworks(self, request: pb.ListNetworksRequest, context: Ctx) -> pb.ListNetworksResponse:
        return pb.ListNetworksResponse(networks=self.m.networks.list())

    async def RemoveNetwork(self, request: pb.RemoveNetworkRequest, context: Ctx) -> pb.RemoveNetworkResponse:
        return pb.RemoveNetworkResponse(network=await self.m.networks.remove(request.ref))

    async def Attach(self, request_iterator: AsyncIterator[pb.AttachRequest], context: Ctx) -> AsyncIterator[pb.AttachResponse]:
        first = await first_message(request_iterator, "open")
        async for frame in stdio.attach(self.m, first.open, _frames(request_iterator)):
            yield pb.AttachResponse(frame=frame)

    async def Exec(self, request_iterator: AsyncIterator[pb.ExecRequest], context: Ctx) -> AsyncIterator[pb.ExecResponse]:
        first = await first_message(request_iterator, "open")
        async for item in stdio.exec_(self.m, first.open, _frames(request_iterator)):
            if isinstance(item, str):
                yield pb.ExecResponse(exec_id=item)
            else:
                yield pb.ExecResponse(frame=item)

    async def CopyTo(self, request_iterator: AsyncIterator[pb.CopyToRequest], context: Ctx) -> pb.CopyToResponse:
        header = (await first_message(request_iterator, "header")).header
        chunks = (part.chunk async for part in request_iterator)
        return pb.CopyToResponse(files=await self.m.copy_to(header.id, header.path, chunks))

    async def ReopenLog(self, request: pb.ReopenLogRequest, context: Ctx) -> pb.ReopenLogResponse:
        return pb.ReopenLogResponse(reopened=self.m.reopen_log(request.id))  # a non-blocking write

    async def Events(self, request: pb.EventsRequest, context: Ctx) -> AsyncIterator[pb.EventsResponse]:
        async for batch in self.m.store.journal.serve(request.query):
            yield pb.EventsResponse(batch=batch)


async def _frames(requests: AsyncIterator[Any]) -> AsyncIterator[t.StdinFrame]:
    """The stdin frames that follow the opening message."""
    async for req in requests:
        if req.WhichOneof("part") == "frame":
            yield req.frame
