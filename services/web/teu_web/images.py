"""The page's image routes.

    GET    /api/images                 every image: {id, tags, size, created, layers}
    GET    /api/images/{ref}           one image: Docker's inspect shape, and its history (newest step first)
    GET    /api/images/pull?image=REF  WebSocket: the pull's progress ({digest, done, total, status}), then {image: id}
    POST   /api/images/{ref}/tag       {target}: another name for the image
    DELETE /api/images/{ref}           untag, and remove it once no name is left (?force=1: even if containers use it)

``ref`` is a name, an id or an id prefix; a name with a registry's port or a path is sent URL-encoded.
A loopback registry is spoken to over plain HTTP, and credentials are those `teu login` stored for the
engine's user, as the CLI pulls.
"""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator

from aiohttp import web

from teu import auth
from teu.cli import format as fmt
from teu_api.errors import InvalidArgument
from teu_api.gateway.v1 import gateway_pb2 as gw
from teu_common.frontdoor import call, stream
from teu_web.shared import body, gateway, pump, text

routes = web.RouteTableDef()
MAX_REFERENCE = 512


@routes.get("/api/images")
async def images(request: web.Request) -> web.Response:
    found = await call(gateway(request).images.ListImages(gw.ListImagesRequest()))
    return web.json_response(
        [
            {"id": i.id, "tags": list(i.repo_tags), "size": i.size, "created": i.created_at // 10**9, "layers": len(i.layers)}
            for i in found.images
        ]
    )


@routes.get("/api/images/pull")
async def pull(request: web.Request) -> web.WebSocketResponse:
    image = request.query.get("image", "").strip()
    if not image or len(image) > MAX_REFERENCE:
        raise InvalidArgument(f"image is required (at most {MAX_REFERENCE} characters)")
    creds = auth.lookup(auth.registry_of(image), warn=io.StringIO())
    req = gw.PullRequest(image=image, insecure=auth.plain_http(image), auth=creds)

    async def progress() -> AsyncIterator[str]:
        async for part in stream(gateway(request).images.Pull(req)):
            if part.HasField("image"):
                yield json.dumps({"image": part.image.id, "tags": list(part.image.repo_tags)})
            else:
                p = part.progress
                yield json.dumps({"digest": p.digest, "done": p.done, "total": p.total, "status": p.status})

    return await pump(request, progress())


@routes.get("/api/images/{ref:.+}")
async def inspect(request: web.Request) -> web.Response:
    ref, images_api = request.match_info["ref"], gateway(request).images
    found = await call(images_api.InspectImage(gw.InspectImageRequest(image=ref)))
    history = await call(images_api.History(gw.HistoryRequest(image=found.image.id)))
    steps = [
        {"id": h.id, "created": h.created_at // 10**9, "created_by": h.created_by, "size": h.size, "comment": h.comment}
        for h in history.entries
    ]
    return web.json_response({"inspect": fmt.image_json(found.image), "history": steps})


@routes.post("/api/images/{ref:.+}/tag")
async def tag(request: web.Request) -> web.Response:
    target = text(await body(request), "target", required=True)
    await call(gateway(request).images.Tag(gw.TagRequest(source=request.match_info["ref"], target=target)))
    return web.json_response({"tagged": target}, status=201)


@routes.delete("/api/images/{ref:.+}")
async def remove(request: web.Request) -> web.Response:
    force = request.query.get("force", "") in ("1", "true")
    done = await call(gateway(request).images.RemoveImage(gw.RemoveImageRequest(image=request.match_info["ref"], force=force)))
    return web.json_response({"untagged": list(done.untagged), "deleted": list(done.deleted)})
