"""Stats: the runtime's readings of containers, with what Docker derives from two of them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

from teu_api.gateway.v1 import gateway_pb2 as gw
from teu_api.runtime.v1 import runtime_pb2 as rt
from teu_api.types.v1 import types_pb2
from teu_gateway.backends import Backends, idempotent

ONE_SHOT_GAP = 0.5  # seconds between the two readings a one-shot CPU percent needs


def usage(cur: types_pb2.ContainerStats, prev: types_pb2.ContainerStats | None) -> gw.ContainerUsage:
    """A reading with its CPU percent since ``prev`` (100 = one CPU busy) and its memory percent."""
    cpu = 0.0
    if prev is not None and cur.read_at > prev.read_at and cur.cpu_ns >= prev.cpu_ns:
        cpu = (cur.cpu_ns - prev.cpu_ns) / (cur.read_at - prev.read_at) * 100
    memory = cur.memory_usage / cur.memory_limit * 100 if cur.memory_limit else 0.0
    return gw.ContainerUsage(stats=cur, cpu_percent=cpu, memory_percent=memory)


async def readings(
    b: Backends, ids: Sequence[str], stream: bool, interval: float, one_shot: bool = False
) -> AsyncIterator[gw.StatsResponse]:
    """Readings of the containers ``ids`` (every running one if empty): one, or one per ``interval``
    while ``stream``; the first comes after a short gap, so that its CPU percent means something
    (``one_shot``: one reading at once, without it)."""
    req = rt.ContainerStatsRequest(ids=list(ids))
    prev: dict[str, types_pb2.ContainerStats] = {}
    gap = ONE_SHOT_GAP
    while True:
        resp: rt.ContainerStatsResponse = await idempotent("runtime", lambda: b.runtime.ContainerStats(req))
        if one_shot:
            yield gw.StatsResponse(containers=[usage(s, None) for s in resp.stats])
            return
        if prev:
            yield gw.StatsResponse(containers=[usage(s, prev.get(s.id)) for s in resp.stats])
            if not stream:
                return
            gap = interval
        prev = {s.id: s for s in resp.stats}
        await asyncio.sleep(gap)
