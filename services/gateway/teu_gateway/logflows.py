"""Reading logs through the gateway: resumable reads, follow-until-exit, several containers merged."""

from __future__ import annotations

import asyncio
import heapq
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable
from typing import Any

from teu_api.errors import InvalidArgument, Unavailable
from teu_api.gateway.v1 import gateway_pb2 as gw
from teu_api.logs.v1 import logs_pb2 as lg
from teu_api.runtime.v1 import runtime_pb2 as rt
from teu_api.types.v1 import types_pb2
from teu_gateway.backends import Backends, stream

LOGS_PATIENCE = 60.0  # seconds a reader waits for a restarting logs service
RUNNING = types_pb2.CONTAINER_STATE_RUNNING
Wait = Callable[[str], Coroutine[Any, Any, rt.Container]]


def outputs(batch: lg.ReadLogResponse) -> list[types_pb2.OutputChunk]:
    """A batch as output chunks: consecutive same-stream records joined, one frame per run, not per line."""
    out = [types_pb2.OutputChunk(stream=c.stream, data=c.data) for c in batch.chunks]
    pending: list[bytes] = []
    current = types_pb2.STREAM_UNSPECIFIED
    for r in batch.records:
        if r.stream != current and pending:
            out.append(types_pb2.OutputChunk(stream=current, data=b"".join(pending)))
            pending = []
        current = r.stream
        pending.append(r.data)
    if pending:
        out.append(types_pb2.OutputChunk(stream=current, data=b"".join(pending)))
    return out


def query_of(req: gw.LogsRequest) -> lg.ReadLogRequest:
    """The logs service's filters for a public Logs request."""
    streams: Iterable[types_pb2.Stream.ValueType] = ()
    if req.stdout_only and not req.stderr_only:
        streams = (types_pb2.STREAM_STDOUT,)
    elif req.stderr_only and not req.stdout_only:
        streams = (types_pb2.STREAM_STDERR,)
    return lg.ReadLogRequest(
        tail=req.tail, since=req.since, until=req.until, streams=list(streams), grep=req.grep,
        timestamps=req.timestamps or len(req.containers) > 1,
    )  # fmt: skip


class LogReader:
    """Log reads that survive a logs service restart and follow containers until they exit."""

    def __init__(self, b: Backends, wait: Wait) -> None:
        self.b = b
        self.wait = wait

    async def read(self, cid: str, offset: int, follow: bool, query: lg.ReadLogRequest) -> AsyncIterator[lg.ReadLogResponse]:
        """ReadLog that resumes at the last offset when the logs service restarts: no gap, no repeat."""
        loop = asyncio.get_running_loop()
        deadline = 0.0
        while True:
            req = lg.ReadLogRequest()
            req.CopyFrom(query)
            req.container_id, req.offset, req.follow = cid, offset, follow
            if offset:
                req.tail = 0
            try:
                async for batch in stream("logs", self.b.logs.ReadLog(req)):
                    offset, deadline = batch.offset or offset, 0.0
                    yield batch
                return
            except Unavailable:
                deadline = deadline or loop.time() + LOGS_PATIENCE
                if loop.time() > deadline:
                    raise
                await asyncio.sleep(0.2)

    async def follow(
        self, cid: str, running: bool, query: lg.ReadLogRequest | None = None, start: int = 0
    ) -> AsyncIterator[lg.ReadLogResponse]:
        """Log batches from position ``start`` (0: the query's tail, or the beginning); when ``running``,
        keeps following until the container exits, then drains.

        When the wait returns, conmon has already drained and fsynced the log, so one more read from
        the last offset after cancelling the follow delivers exactly what is left.
        """
        q = query or lg.ReadLogRequest()
        if not running:
            async for batch in self.read(cid, start, False, q):
                yield batch
            return
        queue: asyncio.Queue[lg.ReadLogResponse] = asyncio.Queue(maxsize=64)
        offset = start

        async def pump() -> None:
            async for item in self.read(cid, start, True, q):
                await queue.put(item)

        pumper = asyncio.create_task(pump())
        exited = asyncio.create_task(self.wait(cid))
        try:
            while True:
                getter = asyncio.create_task(queue.get())
                done, _ = await asyncio.wait({getter, exited, pumper}, return_when=asyncio.FIRST_COMPLETED)
                if getter in done:
                    batch = getter.result()
                    offset = batch.offset or offset
                    yield batch
                    continue
                getter.cancel()
                if pumper in done and (exc := pumper.exception()):
                    raise exc
                if exited in done and (exc := exited.exception()):
                    raise exc  # the wait failed (the runtime is gone for good): not an exit
                break
            while not queue.empty():
                batch = queue.get_nowait()
                offset = batch.offset or offset
                yield batch
        finally:
            pumper.cancel()
            if not exited.done():
                exited.cancel()
        # what is left after the exit (with nothing sent yet, the tail asked for)
        async for batch in self.read(cid, offset, False, q):
            yield batch

    async def logs(self, containers: list[rt.Container], req: gw.LogsRequest) -> AsyncIterator[gw.LogsResponse]:
        """The public Logs stream: one container as is; several merged in time order (or, when
        following, in arrival order), each line naming its container."""
        query = query_of(req)
        if len(containers) == 1:
            c = containers[0]
            async for batch in self.follow(c.id, req.follow and c.state == RUNNING, query, req.offset):
                response = _response(batch, "")
                response.offset = batch.offset
                yield response
            return
        if req.offset:
            raise InvalidArgument("offset continues the log of one container: name only one")
        sources = [self._lines(c, req.follow and c.state == RUNNING, query) for c in containers]
        merged = _arrival(sources) if req.follow else _by_time(sources)
        pending: list[gw.LogLine] = []
        async for line in merged:
            pending.append(line)
            if len(pending) >= 512:
                yield gw.LogsResponse(lines=pending)
                pending = []
        if pending:
            yield gw.LogsResponse(lines=pending)

    async def _lines(self, c: rt.Container, running: bool, query: lg.ReadLogRequest) -> AsyncIterator[gw.LogLine]:
        async for batch in self.follow(c.id, running, query):
            for line in _response(batch, c.name).lines:
                yield line


def _response(batch: lg.ReadLogResponse, name: str) -> gw.LogsResponse:
    return gw.LogsResponse(
        lines=[gw.LogLine(timestamp=r.timestamp, stream=r.stream, data=r.data, partial=r.partial, container=name)
               for r in batch.records],
        chunks=[types_pb2.OutputChunk(stream=c.stream, data=c.data) for c in batch.chunks],
    )  # fmt: skip


async def _by_time(sources: list[AsyncIterator[gw.LogLine]]) -> AsyncIterator[gw.LogLine]:
    """k-way merge of time-ordered line streams (one line of look-ahead each)."""
    heap: list[tuple[int, int, gw.LogLine]] = []
    for i, src in enumerate(sources):
        first = await anext(src, None)
        if first is not None:
            heap.append((first.timestamp, i, first))
    heapq.heapify(heap)
    while heap:
        _, i, line = heapq.heappop(heap)
        yield line
        following = await anext(sources[i], None)
        if following is not None:
            heapq.heappush(heap, (following.timestamp, i, following))


async def _arrival(sources: list[AsyncIterator[gw.LogLine]]) -> AsyncIterator[gw.LogLine]:
    """Lines of several followed streams as they arrive; ends when every stream has ended."""
    queue: asyncio.Queue[gw.LogLine | None] = asyncio.Queue(maxsize=1024)

    async def pump(src: AsyncIterator[gw.LogLine]) -> None:
        try:
            async for line in src:
                await queue.put(line)
        finally:
            task = asyncio.current_task()
            if task is None or not task.cancelling():  # cancelled: nobody reads the queue any more
                await queue.put(None)

    tasks = [asyncio.create_task(pump(s)) for s in sources]
    try:
        remaining = len(tasks)
        while remaining:
            item = await queue.get()
            if item is None:
                remaining -= 1
                for t in tasks:
                    if t.done() and not t.cancelled() and (exc := t.exception()):
                        raise exc
                continue
            yield item
    finally:
        for t in tasks:
            t.cancel()
