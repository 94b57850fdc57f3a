"""The gRPC face of the logs service: translates messages to and from :class:`LogStore` calls."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import aclosing

from teu.logs.store import LogStore
from teu.logs.v1 import logs_pb2, logs_pb2_grpc


class LogsServicer(logs_pb2_grpc.LogsServiceServicer):
    """Implements ``teu.logs.v1.LogsService`` over a :class:`LogStore`.

    Methods take the gRPC context as ``object``: they never use it, since failures travel as
    TeuError to the interceptor.
    """

    def __init__(self, store: LogStore) -> None:
        self.store = store

    async def PrepareLog(
        self, request: logs_pb2.PrepareLogRequest, context: object
    ) -> logs_pb2.PrepareLogResponse:
        """Reserves the container's log and returns the path for conmon."""
        path = await self.store.prepare(request.container_id)
        return logs_pb2.PrepareLogResponse(path=str(path))

    async def ReadLog(
        self, request: logs_pb2.ReadLogRequest, context: object
    ) -> AsyncIterator[logs_pb2.ReadLogResponse]:
        """Streams the container's log records, one message per batch."""
        batches = self.store.read(
            request.container_id, offset=request.offset, tail=request.tail, follow=request.follow
        )
        async with aclosing(batches):
            async for batch in batches:
                response = logs_pb2.ReadLogResponse(offset=batch.offset)
                add = response.records.add
                for timestamp, stream, data in batch.records:
                    add(timestamp=timestamp, stream=stream, data=data)
                yield response

    async def RemoveLog(
        self, request: logs_pb2.RemoveLogRequest, context: object
    ) -> logs_pb2.RemoveLogResponse:
        """Deletes the container's log; succeeds for an unknown one."""
        return logs_pb2.RemoveLogResponse(removed=await self.store.remove(request.container_id))
