"""The page's JSON and WebSocket API over the gateway's public API, and the page itself.

    GET  /                                   the page (static/index.html, app.js, style.css)
    GET  /api/containers                     every container, as the page lists them
    POST /api/containers                     run one in the background: {image, name, cmd, ports, env, volumes}
    GET  /api/containers/{id}                one container's inspect (Docker's shape)
    POST /api/containers/{id}/{action}       start, stop, restart, kill, pause, unpause
    DELETE /api/containers/{id}              remove (force)
    GET  /api/containers/{id}/logs?tail=N    the last lines (all with tail=0)
    GET  /api/containers/{id}/logs/follow    WebSocket: the lines, then each new one as it is written
    GET  /api/containers/{id}/terminal       WebSocket: a shell (exec sh with a terminal): keys in, screen out
    GET  /api/images                         every image
    GET  /api/events                         WebSocket: the engine's events as they happen

Errors are ``{"message": ...}`` with the HTTP status of Teu's error (teu_common.frontdoor). Served
beyond loopback, every request needs the token the service printed and wrote next to its socket.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import shlex
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import structlog
from aiohttp import WSMsgType, web

from teu import mounts
from teu.cli import format as fmt
from teu.cli import parse
from teu_api.errors import InvalidArgument, TeuError, Unauthenticated
from teu_api.gateway.v1 import gateway_pb2 as gw
from teu_api.types.v1 import types_pb2
from teu_common.frontdoor import Gateway, call, status_of, stream
from teu_common.gatewaystreams import Frames, exec_requests, output_frames

log = structlog.get_logger()
STATIC = Path(__file__).parent / "static"
GATEWAY = web.AppKey("gateway", Gateway)
TOKEN = web.AppKey("token", str)
ACTIONS = ("start", "stop", "restart", "kill", "pause", "unpause")
STATES = {
    types_pb2.CONTAINER_STATE_CREATED: "created",
    types_pb2.CONTAINER_STATE_RUNNING: "running",
    types_pb2.CONTAINER_STATE_EXITED: "exited",
}
MAX_TAIL = 10_000
routes = web.RouteTableDef()
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Teu's errors, and the server's own (no such page, a wrong method), as ``{"message": ...}``
    with their HTTP status."""
    try:
        return await handler(request)
    except TeuError as exc:
        return web.json_response({"message": exc.message}, status=status_of(exc))
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return web.json_response({"message": exc.reason}, status=exc.status)


@web.middleware
async def token(request: web.Request, handler: Handler) -> web.StreamResponse:
    """With a token (served beyond loopback), a request must carry it: ``Authorization: Bearer``, the
    ``teu_token`` cookie, or ``?token=`` (which sets the cookie, so the page's own requests carry it)."""
    expected = request.app[TOKEN]
    if not expected:
        return await handler(request)
    given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip() or request.cookies.get("teu_token", "")
    from_query = request.query.get("token", "")
    if not hmac.compare_digest((from_query or given).encode(), expected.encode()):
        raise Unauthenticated("a token is required: open the address `teu web` printed (it carries ?token=...)")
    response = await handler(request)
    if from_query and not response.prepared:
        response.set_cookie("teu_token", expected, httponly=True, samesite="Strict")
    return response


def build(gateway: Gateway, token_value: str = "") -> web.Application:
    """The application; ``token_value``: the token every request must carry ("" on loopback)."""
    app = web.Application(middlewares=[errors, token])
    app[GATEWAY] = gateway
    app[TOKEN] = token_value
    app.add_routes(routes)
    app.router.add_static("/static/", STATIC, show_index=False)
    return app


def _g(request: web.Request) -> Gateway:
    return request.app[GATEWAY]


@routes.get("/")
async def index(request: web.Request) -> web.StreamResponse:
    return web.FileResponse(STATIC / "index.html")


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
    found = await call(_g(request).containers.List(gw.ListRequest(all=True)))
    now = time.time_ns()
    return web.json_response([summary(c, now) for c in found.containers])


@routes.post("/api/containers")
async def run(request: web.Request) -> web.Response:
    """Runs a container in the background from the page's form; its id. The fields take what the CLI
    takes: ``cmd`` split as a shell would, ports as ``-p``, env as ``-e``, volumes as ``-v``."""
    try:
        body = await request.json()
    except ValueError:
        raise InvalidArgument("the body is not JSON") from None
    if not isinstance(body, dict) or not isinstance(body.get("image"), str) or not body["image"].strip():
        raise InvalidArgument("an image is required")

    def strings(key: str) -> list[str]:
        value = body.get(key) or []
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise InvalidArgument(f"{key} must be a list of strings")
        return [v.strip() for v in value if v.strip()]

    try:
        cmd = shlex.split(str(body.get("cmd") or ""))
    except ValueError as exc:
        raise InvalidArgument(f"the command cannot be split: {exc}") from None
    config = gw.ContainerConfig(
        image=body["image"].strip(),
        name=str(body.get("name") or "").strip(),
        cmd=cmd,
        env=strings("env"),
        ports=[p for spec in strings("ports") for p in parse.ports(spec)],
        mounts=[mounts.volume(spec) for spec in strings("volumes")],
    )
    async for frame in stream(_g(request).containers.Run(gw.RunRequest(config=config, detach=True))):
        if frame.WhichOneof("event") == "created":
            return web.json_response({"id": frame.created.id, "name": frame.created.name}, status=201)
    raise InvalidArgument("the run ended without a container")


@routes.get("/api/containers/{id}")
async def inspect(request: web.Request) -> web.Response:
    found = await call(_g(request).containers.Inspect(gw.InspectRequest(container=request.match_info["id"])))
    return web.json_response(fmt.inspect_json(found.container))


@routes.post("/api/containers/{id}/{action}")
async def act(request: web.Request) -> web.Response:
    c, ref, action = _g(request).containers, request.match_info["id"], request.match_info["action"]
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
    done = await call(_g(request).containers.Remove(gw.RemoveRequest(container=request.match_info["id"], force=True)))
    return web.json_response({"id": done.id})


def _tail(request: web.Request) -> int:
    text = request.query.get("tail", "200")
    if not text.isdigit() or int(text) > MAX_TAIL:
        raise InvalidArgument(f"tail must be a number from 0 (all) to {MAX_TAIL}")
    return int(text)


def _line(line: gw.LogLine) -> dict[str, Any]:
    stream_name = "stderr" if line.stream == types_pb2.STREAM_STDERR else "stdout"
    return {"time": line.timestamp, "stream": stream_name, "text": line.data.decode(errors="replace")}


@routes.get("/api/containers/{id}/logs")
async def logs(request: web.Request) -> web.Response:
    req = gw.LogsRequest(
        containers=[request.match_info["id"]], tail=_tail(request), timestamps=True, grep=request.query.get("grep", "")
    )
    lines = [_line(line) async for batch in stream(_g(request).containers.Logs(req)) for line in batch.lines]
    return web.json_response(lines)


@routes.get("/api/containers/{id}/logs/follow")
async def follow(request: web.Request) -> web.WebSocketResponse:
    req = gw.LogsRequest(containers=[request.match_info["id"]], tail=_tail(request), follow=True, timestamps=True)

    async def lines() -> AsyncIterator[str]:
        async for batch in stream(_g(request).containers.Logs(req)):
            for line in batch.lines:
                yield json.dumps(_line(line))

    return await _pump(request, lines())


async def _pump(request: web.Request, messages: AsyncIterator[str]) -> web.WebSocketResponse:
    """A WebSocket sending ``messages`` until they end (an error as ``{"error": ...}``) or the page
    goes away (then the stream behind them is cancelled at once)."""
    ws = web.WebSocketResponse(heartbeat=30)
    await ws.prepare(request)

    async def send() -> None:
        try:
            async for text in messages:
                await ws.send_str(text)
        except TeuError as exc:
            await ws.send_str(json.dumps({"error": exc.message}))

    sender = asyncio.ensure_future(send())
    closed = asyncio.ensure_future(ws.receive())  # the page sends nothing: this ends when it closes
    try:
        await asyncio.wait({sender, closed}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (sender, closed):
            task.cancel()
        await asyncio.gather(sender, closed, return_exceptions=True)
        await ws.close()
    return ws


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
            async for frame in output_frames(_g(request).containers.Exec(exec_requests(start, frames))):
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
    text = request.query.get(key, "")
    if not text:
        return default
    if not text.isdigit() or not 0 < int(text) <= 1000:
        raise InvalidArgument(f"{key} must be a number from 1 to 1000")
    return int(text)


@routes.get("/api/images")
async def images(request: web.Request) -> web.Response:
    found = await call(_g(request).images.ListImages(gw.ListImagesRequest()))
    return web.json_response(
        [
            {"id": i.id, "tags": list(i.repo_tags), "size": i.size, "created": i.created_at // 10**9, "layers": len(i.layers)}
            for i in found.images
        ]
    )


@routes.get("/api/events")
async def events(request: web.Request) -> web.WebSocketResponse:
    req = gw.EventsRequest(since_unix_nano=time.time_ns())

    async def happenings() -> AsyncIterator[str]:
        async for r in stream(_g(request).system.Events(req)):
            if r.HasField("event"):
                e = r.event
                yield json.dumps({"type": e.type, "action": e.action, "id": e.actor_id, "time": e.time_unix_nano,
                                  "name": e.attributes.get("name", "")})  # fmt: skip

    return await _pump(request, happenings())
