"""GET /containers/{id}/stats: Docker's stats JSON, so that ``docker stats`` and docker-py render it.

Docker's clients compute the CPU percent from two readings as (container CPU delta / host CPU
delta) * online CPUs * 100, where the host's CPU time is ``system_cpu_usage`` (all of /proc/stat, in
nanoseconds); this service reads that from the host it runs on, next to each reading.
"""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any

from aiohttp import web

from teu.cli import format as fmt
from teu_api.gateway.v1 import gateway_pb2 as gw
from teu_api.types.v1 import types_pb2
from teu_dockerapi.containers import details, flag
from teu_dockerapi.gateway import of, stream

routes = web.RouteTableDef()
_TICK_NS = 10**9 // os.sysconf("SC_CLK_TCK")
_EMPTY_CPU: dict[str, Any] = {"cpu_usage": {"total_usage": 0}, "throttling_data": {}}


def system_cpu_ns() -> int:
    """Every CPU's time since boot (the first line of /proc/stat), in nanoseconds."""
    with open("/proc/stat", "rb") as f:
        fields = f.readline().split()[1:]
    return sum(int(x) for x in fields[:8]) * _TICK_NS


def _cpu(s: types_pb2.ContainerStats, system: int) -> dict[str, Any]:
    return {
        "cpu_usage": {"total_usage": s.cpu_ns},
        "system_cpu_usage": system,
        "online_cpus": s.online_cpus,
        "throttling_data": {"periods": 0, "throttled_periods": s.throttled_periods, "throttled_time": s.throttled_ns},
    }


def docker_stats(s: types_pb2.ContainerStats, system: int, prev: tuple[types_pb2.ContainerStats, int] | None) -> dict[str, Any]:
    """One reading in Docker's shape; ``prev``: the reading before it (for precpu_stats)."""
    return {
        "id": s.id, "name": "/" + s.name, "read": fmt.rfc3339(s.read_at),
        "preread": fmt.rfc3339(prev[0].read_at) if prev else "0001-01-01T00:00:00Z",
        "pids_stats": {"current": s.pids}, "num_procs": 0,
        "cpu_stats": _cpu(s, system), "precpu_stats": _cpu(*prev) if prev else _EMPTY_CPU,
        "memory_stats": {"usage": s.memory_usage, "limit": s.memory_limit,
                         "stats": {"inactive_file": max(s.memory_usage - s.memory_working_set, 0), "cache": s.memory_cache}},
        "blkio_stats": {"io_service_bytes_recursive": [{"major": 0, "minor": 0, "op": "read", "value": s.block_read},
                                                       {"major": 0, "minor": 0, "op": "write", "value": s.block_write}]},
        "networks": {n.name: {"rx_bytes": n.rx_bytes, "tx_bytes": n.tx_bytes, "rx_packets": n.rx_packets,
                              "tx_packets": n.tx_packets} for n in s.networks},
    }  # fmt: skip


@routes.get("/containers/{id}/stats")
async def stats(request: web.Request) -> web.StreamResponse:
    """One reading (``stream=false``; ``one-shot`` without the second reading precpu needs), or one a
    second until the client leaves."""
    g = of(request)
    cid = (await details(g, request.match_info["id"])).summary.id
    follow, one_shot = flag(request, "stream", True), flag(request, "one-shot")
    req = gw.StatsRequest(containers=[cid], stream=follow, one_shot=one_shot and not follow)
    resp = web.StreamResponse(headers={"Content-Type": "application/json"})
    await resp.prepare(request)
    prev: tuple[types_pb2.ContainerStats, int] | None = None
    if not follow and not one_shot:  # Docker's non-stream reading has a precpu from a second before
        async for first in stream(g.containers.Stats(gw.StatsRequest(containers=[cid], one_shot=True))):
            prev = (first.containers[0].stats, system_cpu_ns()) if first.containers else None
        await asyncio.sleep(0.5)
        req = gw.StatsRequest(containers=[cid], one_shot=True)
    async for reading in stream(g.containers.Stats(req)):
        for usage in reading.containers:
            system = system_cpu_ns()
            await resp.write(json.dumps(docker_stats(usage.stats, system, prev)).encode() + b"\n")
            prev = (usage.stats, system)
    await resp.write_eof()
    return resp
