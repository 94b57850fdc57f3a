"""/images/...: the image endpoints of Docker's API, over the gateway's ImagesService."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from teu import changes as teu_changes
from teu.auth import plain_http
from teu.cli import format as fmt
from teu_api.errors import InvalidArgument, TeuError, Unimplemented
from teu_api.gateway.v1 import gateway_pb2 as gw
from teu_api.types.v1 import types_pb2
from teu_dockerapi import shapes
from teu_dockerapi.archive import CHUNK
from teu_dockerapi.containers import filters_of, flag
from teu_dockerapi.gateway import call, of, send_tar, stream

routes = web.RouteTableDef()


@routes.get("/images/json")
async def list_(request: web.Request) -> web.Response:
    found = await call(of(request).images.ListImages(gw.ListImagesRequest(all=flag(request, "all"))))
    return web.json_response([shapes.image_summary(i) for i in found.images])


@routes.get("/images/{name:.+}/json")
async def inspect(request: web.Request) -> web.Response:
    image = await call(of(request).images.InspectImage(gw.InspectImageRequest(image=request.match_info["name"])))
    return web.json_response(fmt.image_json(image.image))


@routes.delete("/images/{name:.+}")
async def remove(request: web.Request) -> web.Response:
    req = gw.RemoveImageRequest(image=request.match_info["name"], force=request.query.get("force", "").lower() in ("1", "true"))
    done = await call(of(request).images.RemoveImage(req))
    return web.json_response([*({"Untagged": r} for r in done.untagged), *({"Deleted": i} for i in done.deleted)])


@routes.post("/images/{name:.+}/tag")
async def tag(request: web.Request) -> web.Response:
    repo, tag_ = request.query.get("repo", ""), request.query.get("tag", "")
    if not repo:
        raise InvalidArgument("repo is required")
    target = f"{repo}:{tag_}" if tag_ else repo
    await call(of(request).images.Tag(gw.TagRequest(source=request.match_info["name"], target=target)))
    return web.Response(status=201)


@routes.get("/images/{name:.+}/history")
async def history(request: web.Request) -> web.Response:
    found = await call(of(request).images.History(gw.HistoryRequest(image=request.match_info["name"])))
    return web.json_response([
        {"Id": e.id or "<missing>", "Created": e.created_at // 10**9, "CreatedBy": e.created_by, "Tags": None, "Size": e.size,
         "Comment": e.comment} for e in found.entries
    ])  # fmt: skip


@routes.post("/images/prune")
async def prune(request: web.Request) -> web.Response:
    """Unused images: dangling ones, every unused one with dangling=false; of those, the ones the
    until, label and label! filters choose (any other filter is refused, never ignored)."""
    filters = filters_of(request)
    dangling = [f.partition("=")[2] for f in filters if f.startswith("dangling=")]
    rest = [f for f in filters if not f.startswith("dangling=")]
    done = await call(of(request).images.PruneImages(gw.PruneImagesRequest(all=dangling == ["false"], filters=rest)))
    return web.json_response({"ImagesDeleted": [{"Deleted": i} for i in done.deleted] or None, "SpaceReclaimed": done.reclaimed})


def header_json(request: web.Request, name: str) -> dict[str, Any] | None:
    """A header holding base64url-encoded JSON of an object (X-Registry-Auth, X-Registry-Config); None without it."""
    header = request.headers.get(name, "")
    if not header:
        return None
    try:
        doc = json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))
    except (binascii.Error, ValueError):
        raise InvalidArgument(f"{name} is not base64-encoded JSON") from None
    if not isinstance(doc, dict):
        raise InvalidArgument(f"{name} must hold a JSON object")
    return doc


def credentials(doc: dict[str, Any]) -> types_pb2.RegistryAuth:
    """Docker's {"username", "password"} or {"identitytoken"} as Teu's credentials."""
    return types_pb2.RegistryAuth(username=str(doc.get("username") or ""), password=str(doc.get("password") or ""),
                                  identity_token=str(doc.get("identitytoken") or ""))  # fmt: skip


def registry_auth(request: web.Request) -> types_pb2.RegistryAuth | None:
    """X-Registry-Auth: the credentials of one registry; None without it."""
    doc = header_json(request, "X-Registry-Auth")
    return None if doc is None else credentials(doc)


@routes.post("/images/create")
async def create(request: web.Request) -> web.StreamResponse:
    """Pulls ``fromImage`` (with ``tag``), streaming Docker's JSON progress; or imports ``fromSrc``
    (``-``: the body is the tar; else an http(s) URL the engine fetches) as ``repo:tag``."""
    if request.query.get("fromSrc"):
        return await _import(request)
    image, tag = request.query.get("fromImage", ""), request.query.get("tag", "")
    if not image:
        raise InvalidArgument("fromImage is required")
    ref = f"{image}@{tag}" if tag.startswith("sha256:") else f"{image}:{tag}" if tag and "@" not in image else image
    req = gw.PullRequest(image=ref, insecure=plain_http(ref), auth=registry_auth(request))
    responses = stream(of(request).images.Pull(req))
    resp = web.StreamResponse(headers={"Content-Type": "application/json"})
    await resp.prepare(request)

    async def say(doc: dict[str, Any]) -> None:
        await resp.write(json.dumps(doc).encode() + b"\n")

    await say({"status": f"Pulling from {image}", "id": tag or "latest"})
    try:
        async for r in responses:
            if r.HasField("progress"):
                p = r.progress
                detail = {"current": p.done, "total": p.total} if p.total else {}
                await say(
                    {"status": p.status or "Downloading", "progressDetail": detail, "id": p.digest.removeprefix("sha256:")[:12]}
                )
            else:
                await say({"status": f"Digest: {r.image.id}"})
                await say({"status": f"Status: Downloaded newer image for {ref}"})
    except TeuError as exc:  # the headers are gone: Docker tells a failed pull in the stream
        await say({"errorDetail": {"message": exc.message}, "error": exc.message})
    await resp.write_eof()
    return resp


async def _import(request: web.Request) -> web.Response:
    q = request.query
    source, repo, tag = q["fromSrc"], q.get("repo", ""), q.get("tag", "")
    ref = f"{repo}:{tag}" if repo and tag else repo
    config = teu_changes.changes(q.getall("changes", []))
    header = gw.ImportHeader(ref=ref, config=config, url="" if source == "-" else source)

    async def parts() -> AsyncIterator[gw.ImportRequest]:
        yield gw.ImportRequest(header=header)
        while source == "-" and (chunk := await request.content.read(CHUNK)):
            yield gw.ImportRequest(chunk=chunk)

    done = await call(of(request).images.Import(parts()))
    return web.Response(body=json.dumps({"status": done.image.id}).encode() + b"\n", content_type="application/json")


@routes.get("/images/search")
async def search(request: web.Request) -> web.Response:
    raise Unimplemented("searching a registry is not served: Teu reaches only the registries it is given by name")


@routes.post("/images/{name:.+}/push")
async def push(request: web.Request) -> web.StreamResponse:
    """Pushes ``name`` (with ``tag``) to its registry, streaming Docker's JSON progress; the manifest's
    digest last, as dockerd says it."""
    name, tag = request.match_info["name"], request.query.get("tag", "")
    ref = f"{name}:{tag}" if tag else name
    responses = stream(of(request).images.Push(gw.PushRequest(image=ref, insecure=plain_http(ref), auth=registry_auth(request))))
    first = await anext(responses)  # an unknown image or a refused registry is an error before the headers go
    resp = web.StreamResponse(headers={"Content-Type": "application/json"})
    await resp.prepare(request)

    async def say(doc: dict[str, Any]) -> None:
        await resp.write(json.dumps(doc).encode() + b"\n")

    await say({"status": f"The push refers to repository [{name}]"})
    try:
        async for r in _chain(first, responses):
            if r.HasField("progress"):
                p = r.progress
                short = p.digest.removeprefix("sha256:")[:12]
                detail = {"current": p.done, "total": p.total} if p.total else {}
                await say({"status": {"exists": "Layer already exists", "done": "Pushed"}.get(p.status, "Pushing"),
                           "progressDetail": detail, "id": short})  # fmt: skip
            else:
                await say({"status": f"{tag or 'latest'}: digest: {r.digest}"})
                await say({"progressDetail": {}, "aux": {"Tag": tag or "latest", "Digest": r.digest}})
    except TeuError as exc:  # the headers are gone: Docker tells a failed push in the stream
        await say({"errorDetail": {"message": exc.message}, "error": exc.message})
    await resp.write_eof()
    return resp


async def _chain(first: gw.PushResponse, rest: AsyncIterator[gw.PushResponse]) -> AsyncIterator[gw.PushResponse]:
    yield first
    async for r in rest:
        yield r


@routes.get("/images/get")
async def save_many(request: web.Request) -> web.StreamResponse:
    """``docker save`` of one or more images (``names``), as a docker-archive tar."""
    return await _save(request, request.query.getall("names", []))


@routes.get("/images/{name:.+}/get")
async def save_one(request: web.Request) -> web.StreamResponse:
    return await _save(request, [request.match_info["name"]])


async def _save(request: web.Request, names: list[str]) -> web.StreamResponse:
    if not names:
        raise InvalidArgument("no image named: give names=")
    chunks = stream(of(request).images.Save(gw.SaveRequest(images=names)))
    first = await anext(chunks, None)  # an unknown image is an error before the headers go
    return await send_tar(request, first.chunk if first is not None else b"", chunks, {})


@routes.post("/images/load")
async def load(request: web.Request) -> web.Response:
    """``docker load``: a docker-archive or OCI archive in the body; what was loaded, in Docker's
    JSON messages, a ``stream`` line each (``quiet`` only silences progress, as dockerd's, and
    there is none: the archive is read whole)."""

    async def parts() -> AsyncIterator[gw.LoadRequest]:
        while chunk := await request.content.read(CHUNK):
            yield gw.LoadRequest(chunk=chunk)

    done = await call(of(request).images.Load(parts()))
    lines = [f"Loaded image: {tag}\n" for image in done.images for tag in image.repo_tags]
    lines += [f"Loaded image ID: {image.id}\n" for image in done.images if not image.repo_tags]
    body = "".join(json.dumps({"stream": line}) + "\n" for line in lines)
    return web.Response(body=body.encode(), content_type="application/json")
