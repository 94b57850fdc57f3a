"""The gRPC face of the logs service: translates messages to and from :class:`LogStore` calls."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import aclosing

from teu_api.logs.v1 import logs_pb2, logs_pb2_grpc
from teu_logs.logdirs import LogStore, make_filter
from teu_logs.reader import ReadOptions


class LogsServicer(logs_pb2_grpc.LogsServiceServicer):
    """Implements ``teu.logs.v1.LogsService`` over a :class:`LogStore`.

    Methods take the gRPC context as ``object``: they never use it, since failures travel as
    TeuError to the interceptor.
    """

    def __init__(self, store: LogStore) -> None:
        self.store = store

    async def PrepareLog(self, request: logs_pb2.PrepareLogRequest, context: object) -> logs_pb2.PrepareLogResponse:
        """Reserves the container's log and returns the path for conmon."""
        path = await self.store.prepare(request.container_id)
        return logs_pb2.PrepareLogResponse(path=str(path))

    async def ConfigureLog(self, request: logs_pb2.ConfigureLogRequest, context: object) -> logs_pb2.ConfigureLogResponse:
        """Sets the log's retention; answers with the values in force."""
        cfg = await self.store.configure(request.container_id, request.max_size, request.max_files)
        return logs_pb2.ConfigureLogResponse(max_size=cfg.max_size, max_files=cfg.max_files)

    async def ReadLog(self, request: logs_pb2.ReadLogRequest, context: object) -> AsyncIterator[logs_pb2.ReadLogResponse]:
        """Streams the container's log: records when timestamps are asked for, chunks otherwise."""
        flt = make_filter(list(request.streams), request.grep, request.since, request.until, request.timestamps)
        opts = ReadOptions(offset=request.offset, tail=request.tail, follow=request.follow, flt=flt)
        batches = self.store.read(request.container_id, opts)
        async with aclosing(batches):
            async for batch in batches:
                response = logs_pb2.ReadLogResponse(offset=batch.offset)
                if batch.records:
                    add = response.records.add
                    for timestamp, stream, data, partial in batch.records:
                        add(timestamp=timestamp, stream=stream, data=data, partial=partial)
                for stream, data in batch.chunks:
                    response.chunks.add(stream=stream, data=data)
                yield response

    async def RemoveLog(self, request: logs_pb2.RemoveLogRequest, context: object) -> logs_pb2.RemoveLogResponse:
        """Deletes the container's log; succeeds for an unknown one."""
        return logs_pb2.RemoveLogResponse(removed=await self.store.remove(request.container_id))

    async def RotateLog(self, request: logs_pb2.RotateLogRequest, context: object) -> logs_pb2.RotateLogResponse:
        """Starts a new current file now."""
        return logs_pb2.RotateLogResponse(path=str(await self.store.rotate(request.container_id)))

    async def GetLogUsage(self, request: logs_pb2.GetLogUsageRequest, context: object) -> logs_pb2.GetLogUsageResponse:
        """Disk used by every segment of every log, and how many logs there are."""
        total, count = await self.store.usage()
        return logs_pb2.GetLogUsageResponse(bytes=total, logs=count)
