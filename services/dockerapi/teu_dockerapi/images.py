"""/images/...: the image endpoints of Docker's API, over the gateway's ImagesService."""

from __future__ import annotations

from aiohttp import web

from teu.cli import format as fmt
from teu_api.gateway.v1 import gateway_pb2 as gw
from teu_dockerapi import shapes
from teu_dockerapi.gateway import call, of

routes = web.RouteTableDef()


@routes.get("/images/json")
async def list_(request: web.Request) -> web.Response:
    found = await call(of(request).images.ListImages(gw.ListImagesRequest()))
    return web.json_response([shapes.image_summary(i) for i in found.images])


@routes.get("/images/{name:.+}/json")
async def inspect(request: web.Request) -> web.Response:
    image = await call(of(request).images.InspectImage(gw.InspectImageRequest(image=request.match_info["name"])))
    return web.json_response(fmt.image_json(image.image))
