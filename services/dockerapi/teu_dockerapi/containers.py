"""/containers/...: the container endpoints of Docker's API, over the gateway's ContainersService."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from aiohttp import web

from teu import changes as teu_changes
from teu.cli import format as fmt
from teu_api.errors import FailedPrecondition, InvalidArgument, NotFound
from teu_api.gateway.v1 import gateway_pb2 as gw
from teu_api.ids import is_full_id
from teu_dockerapi import shapes
from teu_dockerapi.framing import frame
from teu_dockerapi.gateway import PENDING, Gateway, call, of, send_tar, stream

routes = web.RouteTableDef()


def flag(request: web.Request, key: str, default: bool = False) -> bool:
    """A boolean query parameter as Docker reads them: 1, true, True (absent: ``default``)."""
    value = request.query.get(key)
    return default if value is None else value.lower() in ("1", "true", "yes")


def seconds(request: web.Request, key: str) -> int | None:
    """An integer query parameter (None when absent); INVALID_ARGUMENT when it is not one."""
    value = request.query.get(key)
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError:
        raise InvalidArgument(f"invalid value for {key}: {value[:40]!r}") from None


async def details(g: Gateway, ref: str) -> gw.ContainerDetails:
    return (await call(g.containers.Inspect(gw.InspectRequest(container=ref)))).container


@routes.get("/containers/json")
async def list_(request: web.Request) -> web.Response:
    filters = [f"{k}={v}" for k, values in _filters(request).items() for v in values]
    req = gw.ListRequest(
        all=flag(request, "all"), filters=filters, size=flag(request, "size"), last=seconds(request, "limit") or 0
    )
    found = await call(of(request).containers.List(req))
    return web.json_response([shapes.summary(c) for c in found.containers])


def filters_of(request: web.Request) -> list[str]:
    """Docker's ``filters`` parameter ({"key": ["value", ...]} or {"key": {"value": true}}) as the
    API's "key=value" strings."""
    return [f"{k}={v}" for k, values in _filters(request).items() for v in values]


def _filters(request: web.Request) -> dict[str, list[str]]:
    raw = request.query.get("filters")
    if not raw:
        return {}
    try:
        parsed = json.loads(raw)
    except ValueError:
        raise InvalidArgument("filters must be JSON") from None
    if not isinstance(parsed, dict):
        raise InvalidArgument("filters must be a JSON object")
    return {str(k): list(v) if isinstance(v, (list, dict)) else [str(v)] for k, v in parsed.items()}


async def json_body(request: web.Request) -> dict[str, Any]:
    """The request's JSON object ({} without a body); InvalidArgument for anything else."""
    try:
        body = await request.json() if request.can_read_body else {}
    except ValueError:
        raise InvalidArgument("the body is not valid JSON") from None
    if not isinstance(body, dict):
        raise InvalidArgument("the body must be a JSON object")
    return body


@routes.post("/containers/create")
async def create(request: web.Request) -> web.Response:
    config = shapes.create_config(await json_body(request), request.query.get("name", ""))
    created = await call(of(request).containers.Create(gw.CreateRequest(config=config)))
    return web.json_response({"Id": created.id, "Warnings": []}, status=201)


@routes.get("/containers/{id}/json")
async def inspect(request: web.Request) -> web.Response:
    doc = fmt.inspect_json(await details(of(request), request.match_info["id"]))
    # Docker's clients read a container's logs back only from the drivers that keep them readable
    # (json-file, journald: docker-py's run returns nothing otherwise); Teu's logs always are.
    doc["HostConfig"]["LogConfig"]["Type"] = "json-file"
    return web.json_response(doc)


@routes.post("/containers/{id}/start")
async def start(request: web.Request) -> web.Response:
    """Starts the container (304 if it runs), or, when an attach waits for this start (the docker
    CLI's run), lets that attach start it. The container is looked up only when its name was given
    while attaches wait, or when the start is refused (is it running?)."""
    g, ref = of(request), request.match_info["id"]
    pending = request.app[PENDING]
    attached = pending.get(ref)
    if attached is None and pending and not is_full_id(ref):
        attached = pending.get((await details(g, ref)).summary.id)
    if attached is None:
        try:
            await call(g.containers.Start(gw.StartRequest(container=ref)))
        except FailedPrecondition:
            if (await details(g, ref)).summary.state == shapes.RUNNING_STATE:
                return web.Response(status=304)
            raise
        return web.Response(status=204)
    d = await details(g, ref)
    if d.summary.state == shapes.RUNNING_STATE:
        return web.Response(status=304)
    attached.set()  # an attach waits for this start: it starts the container, seeing every byte
    for _ in range(200):
        try:
            d = await details(g, d.summary.id)
        except NotFound:  # it started, ended and was removed already (auto-remove)
            return web.Response(status=204)
        if d.summary.state != shapes.CREATED_STATE or d.error:
            break
        await asyncio.sleep(0.05)
    if d.error:
        raise FailedPrecondition(f"container {d.summary.name} could not start: {d.error}")
    return web.Response(status=204)


@routes.post("/containers/{id}/stop")
async def stop(request: web.Request) -> web.Response:
    g, ref = of(request), request.match_info["id"]
    if (await details(g, ref)).summary.state != shapes.RUNNING_STATE:
        return web.Response(status=304)
    req = gw.StopRequest(container=ref, signal=request.query.get("signal", ""))
    if (t := seconds(request, "t")) is not None:
        req.timeout_seconds = t
    await call(g.containers.Stop(req))
    return web.Response(status=204)


@routes.post("/containers/{id}/restart")
async def restart(request: web.Request) -> web.Response:
    req = gw.RestartRequest(container=request.match_info["id"])
    if (t := seconds(request, "t")) is not None:
        req.timeout_seconds = t
    await call(of(request).containers.Restart(req))
    return web.Response(status=204)


@routes.post("/containers/{id}/kill")
async def kill(request: web.Request) -> web.Response:
    req = gw.KillRequest(container=request.match_info["id"], signal=request.query.get("signal", "SIGKILL"))
    await call(of(request).containers.Kill(req))
    return web.Response(status=204)


@routes.post("/containers/{id}/wait")
async def wait(request: web.Request) -> web.StreamResponse:
    g, ref = of(request), request.match_info["id"]
    found = (await details(g, ref)).summary  # a 404 before the headers go
    condition = request.query.get("condition", "")
    resp = web.StreamResponse(headers={"Content-Type": "application/json"})
    await resp.prepare(request)  # the headers now, the exit when it comes (Docker's clients wait for them)
    try:
        done = await call(g.containers.Wait(gw.WaitRequest(container=found.id, condition=condition)))
        answer: dict[str, Any] = {"StatusCode": done.exit_code, "Error": None}
    except NotFound:  # removed before the wait reached it (`run --rm` of a quick process): its exit is in the journal
        answer = await _recorded_exit(g, found.id, found.created_at)
    await resp.write(json.dumps(answer).encode() + b"\n")
    await resp.write_eof()
    return resp


async def _recorded_exit(g: Gateway, cid: str, since_ns: int) -> dict[str, Any]:
    """Docker's wait answer from the last ``die`` event of container ``cid``."""
    req = gw.EventsRequest(since_unix_nano=since_ns, until_unix_nano=time.time_ns(), filters=[f"container={cid}", "event=die"])
    code = None
    async for r in stream(g.system.Events(req)):
        if r.HasField("event"):
            code = int(r.event.attributes.get("exitCode", "-1"))
    if code is None:
        return {"StatusCode": -1, "Error": {"Message": f"container {cid[:12]} was removed before its exit was seen"}}
    return {"StatusCode": code, "Error": None}


@routes.post("/containers/{id}/pause")
async def pause(request: web.Request) -> web.Response:
    await call(of(request).containers.Pause(gw.PauseRequest(container=request.match_info["id"])))
    return web.Response(status=204)


@routes.post("/containers/{id}/unpause")
async def unpause(request: web.Request) -> web.Response:
    await call(of(request).containers.Unpause(gw.UnpauseRequest(container=request.match_info["id"])))
    return web.Response(status=204)


@routes.post("/containers/{id}/rename")
async def rename(request: web.Request) -> web.Response:
    req = gw.RenameRequest(container=request.match_info["id"], name=request.query.get("name", ""))
    await call(of(request).containers.Rename(req))
    return web.Response(status=204)


@routes.get("/containers/{id}/top")
async def top(request: web.Request) -> web.Response:
    args = request.query.get("ps_args", "").split()
    found = await call(of(request).containers.Top(gw.TopRequest(container=request.match_info["id"], ps_args=args)))
    return web.json_response({"Titles": list(found.titles), "Processes": [list(p.columns) for p in found.processes]})


_KINDS = {"C": 0, "A": 1, "D": 2}  # Docker's change kinds: modified, added, deleted


@routes.get("/containers/{id}/changes")
async def changes(request: web.Request) -> web.Response:
    found = await call(of(request).containers.Diff(gw.DiffRequest(container=request.match_info["id"])))
    return web.json_response([{"Path": c.path, "Kind": _KINDS.get(c.kind, 0)} for c in found.changes] or None)


@routes.post("/containers/{id}/update")
async def update(request: web.Request) -> web.Response:
    body = await json_body(request)
    req = gw.UpdateRequest(container=request.match_info["id"], resources=shapes.resources(body))
    if (policy := shapes.restart_policy(body)) is not None:
        req.restart.CopyFrom(policy)
    await call(of(request).containers.Update(req))
    return web.json_response({"Warnings": []})


@routes.post("/containers/prune")
async def prune(request: web.Request) -> web.Response:
    done = await call(of(request).containers.PruneContainers(gw.PruneContainersRequest(filters=filters_of(request))))
    return web.json_response({"ContainersDeleted": list(done.deleted) or None, "SpaceReclaimed": 0})


@routes.get("/containers/{id}/export")
async def export(request: web.Request) -> web.StreamResponse:
    g = of(request)
    chunks = stream(g.containers.Export(gw.ExportRequest(container=(await details(g, request.match_info["id"])).summary.id)))
    first = await anext(chunks, None)  # an error before the headers go
    return await send_tar(request, first.chunk if first is not None else b"", chunks, {})


@routes.post("/commit")
async def commit(request: web.Request) -> web.Response:
    q = request.query
    repo, tag = q.get("repo", ""), q.get("tag", "")
    instructions = q.getall("changes", [])
    ref = f"{repo}:{tag}" if repo and tag else repo
    req = gw.CommitRequest(
        container=q.get("container", ""),
        ref=ref,
        message=q.get("comment", ""),
        author=q.get("author", ""),
        changes=teu_changes.changes(instructions),
        changed=teu_changes.fields(instructions),
    )
    done = await call(of(request).containers.Commit(req))
    return web.json_response({"Id": done.image.id}, status=201)


@routes.delete("/containers/{id}")
async def remove(request: web.Request) -> web.Response:
    req = gw.RemoveRequest(container=request.match_info["id"], force=flag(request, "force"), volumes=flag(request, "v"))
    await call(of(request).containers.Remove(req))
    return web.Response(status=204)


@routes.get("/containers/{id}/logs")
async def logs(request: web.Request) -> web.StreamResponse:
    g, ref = of(request), request.match_info["id"]
    out, err = flag(request, "stdout"), flag(request, "stderr")
    if not out and not err:
        raise InvalidArgument("you must choose at least one stream")
    found = await details(g, ref)
    tail = request.query.get("tail", "all")
    if tail != "all" and not tail.lstrip("-").isdigit():
        raise InvalidArgument(f"invalid tail {tail[:20]!r}")
    lines = -1 if tail == "all" else int(tail)  # Docker: negative or "all" is every line, 0 none
    req = gw.LogsRequest(containers=[found.summary.id], follow=flag(request, "follow"), timestamps=True,
                         tail=max(lines, 0),
                         since=(seconds(request, "since") or 0) * 10**9, until=(seconds(request, "until") or 0) * 10**9,
                         stdout_only=out and not err, stderr_only=err and not out)  # fmt: skip
    tty, stamps = found.process.terminal, flag(request, "timestamps")
    kind = "application/vnd.docker.raw-stream" if tty else "application/vnd.docker.multiplexed-stream"
    resp = web.StreamResponse(headers={"Content-Type": kind})
    await resp.prepare(request)
    if lines != 0:
        async for batch in stream(g.containers.Logs(req)):
            for line in batch.lines:
                data = (fmt.rfc3339(line.timestamp).encode() + b" " if stamps else b"") + line.data
                await resp.write(data if tty else frame(line.stream, data))
    await resp.write_eof()
    return resp
