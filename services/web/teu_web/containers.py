"""The page's container routes.

GET  /api/containers                     every container, as the page lists them
POST /api/containers                     run one in the background: {image, name, cmd, ports, env, volumes}
GET  /api/containers/{id}                one container's inspect (Docker's shape)
POST /api/containers/{id}/{action}       start, stop, restart, kill, pause, unpause
DELETE /api/containers/{id}              remove (force)
GET  /api/containers/{id}/logs           ?tail=N (0: all) &grep=REGEX: the lines
GET  /api/containers/{id}/logs/follow    WebSocket, same query: the lines, then each new one as it is written
GET  /api/containers/{id}/diff           what changed in its filesystem: [{kind: A|C|D, path}]
GET  /api/containers/{id}/top            its processes: {titles, processes}
GET  /api/containers/{id}/terminal       WebSocket: a shell (exec sh with a terminal): keys in, screen out
GET  /api/stats                          WebSocket: every second, each running container's CPU and memory
"""

from __future__ import annotations

import asyncio
import json
import shlex
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from aiohttp import WSMsgType, web

from teu import mounts
from teu.cli import format as fmt
from teu.cli import parse
from teu_api.errors import InvalidArgument, TeuError
from teu_api.gateway.v1 import gateway_pb2 as gw
from teu_api.types.v1 import types_pb2
from teu_common.frontdoor import call, stream
from teu_common.gatewaystreams import Frames, exec_requests, output_frames
from teu_web.shared import body, gateway, pump, text

routes = web.RouteTableDef()
ACTIONS = ("start", "stop", "restart", "kill", "pause", "unpause")
STATES = {
    types_pb2.CONTAINER_STATE_CREATED: "created",
    types_pb2.CONTAINER_STATE_RUNNING: "running",
    types_pb2.CONTAINER_STATE_EXITED: "exited",
}
MAX_TAIL = 10_000
MAX_GREP = 1_000


def summary(c: gw.ContainerSummary, now_ns: int) -> dict[str, Any]:
    """One container as the page lists it."""
    return {
        "id": c.id,
        "name": c.name,
        "image": c.image,
        "state": "paused" if c.paused else STATES.get(c.state, "unknown"),
        "status": fmt.status(c),
        "health": c.health,
        "ports": [f"{p.host_ip or '0.0.0.0'}:{p.host_port}->{p.container_port}/{p.protocol}" for p in c.ports if p.host_port],
        "uptime_s": (now_ns - c.started_at) // 10**9 if c.state == types_pb2.CONTAINER_STATE_RUNNING and c.started_at else None,
        "created": c.created_at // 10**9,
    }


@routes.get("/api/containers")
async def containers(request: web.Request) -> web.Response:
    found = await call(gateway(request).containers.List(gw.ListRequest(all=True)))
    now = time.time_ns()
    return web.json_response([summary(c, now) for c in found.containers])


@routes.post("/api/containers")
async def run(request: web.Request) -> web.Response:
    """Runs a container in the background from the page's form; its id. The fields take what the CLI
    takes: ``cmd`` split as a shell would, ports as ``-p``, env as ``-e``, volumes as ``-v``."""
    doc = await body(request)

    def strings(key: str) -> list[str]:
        value = doc.get(key) or []
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise InvalidArgument(f"{key} must be a list of strings")
        return [v.strip() for v in value if v.strip()]

    try:
        cmd = shlex.split(text(doc, "cmd"))
    except ValueError as exc:
        raise InvalidArgument(f"the command cannot be split: {exc}") from None
    config = gw.ContainerConfig(
        image=text(doc, "image", required=True),
        name=text(doc, "name"),
        cmd=cmd,
        env=strings("env"),
        ports=[p for spec in strings("ports") for p in parse.ports(spec)],
        mounts=[mounts.volume(spec) for spec in strings("volumes")],
    )
    async for frame in stream(gateway(request).containers.Run(gw.RunRequest(config=config, detach=True))):
        if frame.WhichOneof("event") == "created":
            return web.json_response({"id": frame.created.id, "name": frame.created.name}, status=201)
    raise InvalidArgument("the run ended without a container")


@routes.get("/api/containers/{id}")
async def inspect(request: web.Request) -> web.Response:
    found = await call(gateway(request).containers.Inspect(gw.InspectRequest(container=request.match_info["id"])))
    return web.json_response(fmt.inspect_json(found.container))


@routes.post("/api/containers/{id}/{action}")
async def act(request: web.Request) -> web.Response:
    c, ref, action = gateway(request).containers, request.match_info["id"], request.match_info["action"]
    if action not in ACTIONS:
        raise InvalidArgument(f"unknown action {action[:40]!r}: want one of {', '.join(ACTIONS)}")
    calls: dict[str, Callable[[], Awaitable[Any]]] = {
        "start": lambda: c.Start(gw.StartRequest(container=ref)),
        "stop": lambda: c.Stop(gw.StopRequest(container=ref)),
        "restart": lambda: c.Restart(gw.RestartRequest(container=ref)),
        "kill": lambda: c.Kill(gw.KillRequest(container=ref)),
        "pause": lambda: c.Pause(gw.PauseRequest(container=ref)),
        "unpause": lambda: c.Unpause(gw.UnpauseRequest(container=ref)),
    }
    await call(calls[action]())
    return web.json_response({"id": ref, "done": action})


@routes.delete("/api/containers/{id}")
async def remove(request: web.Request) -> web.Response:
    done = await call(gateway(request).containers.Remove(gw.RemoveRequest(container=request.match_info["id"], force=True)))
    return web.json_response({"id": done.id})


def _logs_request(request: web.Request, follow: bool) -> gw.LogsRequest:
    """The logs the query asks for: ``tail`` (default 200, 0: all) and ``grep`` (a regular expression
    the logs service filters with)."""
    tail = request.query.get("tail", "200")
    if not tail.isdigit() or int(tail) > MAX_TAIL:
        raise InvalidArgument(f"tail must be a number from 0 (all) to {MAX_TAIL}")
    grep = request.query.get("grep", "")
    if len(grep) > MAX_GREP:
        raise InvalidArgument(f"grep is longer than {MAX_GREP} characters")
    return gw.LogsRequest(containers=[request.match_info["id"]], tail=int(tail), follow=follow, timestamps=True, grep=grep)


def _line(line: gw.LogLine) -> dict[str, Any]:
    stream_name = "stderr" if line.stream == types_pb2.STREAM_STDERR else "stdout"
    return {"time": line.timestamp, "stream": stream_name, "text": line.data.decode(errors="replace")}


@routes.get("/api/containers/{id}/logs")
async def logs(request: web.Request) -> web.Response:
    req = _logs_request(request, follow=False)
    lines = [_line(line) async for batch in stream(gateway(request).containers.Logs(req)) for line in batch.lines]
    return web.json_response(lines)


@routes.get("/api/containers/{id}/logs/follow")
async def follow(request: web.Request) -> web.WebSocketResponse:
    req = _logs_request(request, follow=True)

    async def lines() -> AsyncIterator[str]:
        async for batch in stream(gateway(request).containers.Logs(req)):
            for line in batch.lines:
                yield json.dumps(_line(line))

    return await pump(request, lines())


@routes.get("/api/containers/{id}/diff")
async def diff(request: web.Request) -> web.Response:
    found = await call(gateway(request).containers.Diff(gw.DiffRequest(container=request.match_info["id"])))
    return web.json_response([{"kind": c.kind, "path": c.path} for c in found.changes])


@routes.get("/api/containers/{id}/top")
async def top(request: web.Request) -> web.Response:
    found = await call(gateway(request).containers.Top(gw.TopRequest(container=request.match_info["id"])))
    return web.json_response({"titles": list(found.titles), "processes": [list(p.columns) for p in found.processes]})


@routes.get("/api/stats")
async def stats(request: web.Request) -> web.WebSocketResponse:
    """Every second, a list of the running containers' readings: ``{id, name, cpu_percent,
    memory, memory_limit, memory_percent, pids}``."""
    req = gw.StatsRequest(stream=True, interval_ms=1000)

    async def readings() -> AsyncIterator[str]:
        async for r in stream(gateway(request).containers.Stats(req)):
            yield json.dumps([_usage(u) for u in r.containers])

    return await pump(request, readings())


def _usage(u: gw.ContainerUsage) -> dict[str, Any]:
    s = u.stats
    return {
        "id": s.id,
        "name": s.name,
        "cpu_percent": round(u.cpu_percent, 2),
        "memory": s.memory_usage,
        "memory_limit": s.memory_limit,
        "memory_percent": round(u.memory_percent, 2),
        "pids": s.pids,
    }


@routes.get("/api/containers/{id}/terminal")
async def terminal(request: web.Request) -> web.WebSocketResponse:
    """A shell in the container on a terminal: the page's keys in (``{"data": ...}``) and its size
    (``{"resize": [cols, rows]}``), the terminal's bytes out, ``{"exit": code}`` last."""
    size = types_pb2.WindowSize(cols=_dimension(request, "cols", 80), rows=_dimension(request, "rows", 24))
    start = gw.ExecStart(container=request.match_info["id"], cmd=["sh"], tty=True, stdin=True, size=size)
    frames: Frames = asyncio.Queue()
    ws = web.WebSocketResponse(heartbeat=30)
    await ws.prepare(request)

    async def screen() -> None:
        try:
            async for frame in output_frames(gateway(request).containers.Exec(exec_requests(start, frames))):
                if frame.HasField("output"):
                    await ws.send_bytes(frame.output.data)
                elif frame.HasField("exit"):
                    await ws.send_str(json.dumps({"exit": frame.exit.exit_code}))
                    return
        except TeuError as exc:
            await ws.send_str(json.dumps({"error": exc.message}))

    async def keys() -> None:
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                break
            doc = json.loads(msg.data)
            if isinstance(doc.get("data"), str):
                frames.put_nowait(types_pb2.StdinFrame(data=doc["data"].encode()))
            elif isinstance(doc.get("resize"), list) and len(doc["resize"]) == 2:
                cols, rows = (max(1, min(int(v), 1000)) for v in doc["resize"])
                frames.put_nowait(types_pb2.StdinFrame(resize=types_pb2.WindowSize(cols=cols, rows=rows)))

    out, inp = asyncio.ensure_future(screen()), asyncio.ensure_future(keys())
    try:
        await asyncio.wait({out, inp}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        frames.put_nowait(None)  # the shell's input ends: it exits when the page goes away
        inp.cancel()
        await asyncio.gather(inp, return_exceptions=True)
        try:
            await asyncio.wait_for(out, 5)
        except (TimeoutError, asyncio.CancelledError):
            pass
        await ws.close()
    return ws


def _dimension(request: web.Request, key: str, default: int) -> int:
    value = request.query.get(key, "")
    if not value:
        return default
    if not value.isdigit() or not 0 < int(value) <= 1000:
        raise InvalidArgument(f"{key} must be a number from 1 to 1000")
    return int(value)
