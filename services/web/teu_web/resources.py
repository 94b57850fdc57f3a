"""The page's volume, network and event routes.

GET    /api/volumes            every volume: {name, driver, mountpoint, created, size, used_by, labels}
POST   /api/volumes            {name}: a new local volume (a random name when empty)
DELETE /api/volumes/{name}     remove (refused while a container uses it)
GET    /api/networks           every network: {name, id, driver, subnet, gateway, containers, internal}
POST   /api/networks           {name, subnet}: a new bridge network
DELETE /api/networks/{name}    remove (refused while a container is on it)
GET    /api/events             WebSocket: the engine's events as they happen
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from teu_api.gateway.v1 import gateway_pb2 as gw
from teu_api.types.v1 import types_pb2
from teu_common.frontdoor import call, stream
from teu_web.shared import body, gateway, pump, text

routes = web.RouteTableDef()


@routes.get("/api/volumes")
async def volumes(request: web.Request) -> web.Response:
    found = await call(gateway(request).volumes.ListVolumes(gw.ListVolumesRequest()))
    return web.json_response([_volume(v) for v in found.volumes])


def _volume(v: gw.Volume) -> dict[str, Any]:
    return {
        "name": v.name,
        "driver": v.driver,
        "mountpoint": v.mountpoint,
        "created": v.created_at // 10**9,
        "size": v.size,
        "used_by": list(v.used_by),
        "labels": dict(v.labels),
    }


@routes.post("/api/volumes")
async def create_volume(request: web.Request) -> web.Response:
    made = await call(gateway(request).volumes.CreateVolume(gw.CreateVolumeRequest(name=text(await body(request), "name"))))
    return web.json_response({"name": made.volume.name}, status=201)


@routes.delete("/api/volumes/{name}")
async def remove_volume(request: web.Request) -> web.Response:
    await call(gateway(request).volumes.RemoveVolume(gw.RemoveVolumeRequest(name=request.match_info["name"])))
    return web.json_response({"name": request.match_info["name"]})


@routes.get("/api/networks")
async def networks(request: web.Request) -> web.Response:
    found = await call(gateway(request).networks.ListNetworks(gw.ListNetworksRequest()))
    return web.json_response([_network(n) for n in found.networks])


def _network(n: types_pb2.Network) -> dict[str, Any]:
    return {
        "name": n.name,
        "id": n.id,
        "driver": n.driver,
        "subnet": n.subnet,
        "gateway": n.gateway,
        "containers": dict(n.containers),
        "internal": n.internal,
        "created": n.created_at // 10**9,
    }


@routes.post("/api/networks")
async def create_network(request: web.Request) -> web.Response:
    doc = await body(request)
    req = gw.CreateNetworkRequest(name=text(doc, "name", required=True), subnet=text(doc, "subnet"))
    made = await call(gateway(request).networks.CreateNetwork(req))
    return web.json_response({"name": made.network.name, "id": made.network.id}, status=201)


@routes.delete("/api/networks/{name}")
async def remove_network(request: web.Request) -> web.Response:
    await call(gateway(request).networks.RemoveNetwork(gw.RemoveNetworkRequest(network=request.match_info["name"])))
    return web.json_response({"name": request.match_info["name"]})


@routes.get("/api/events")
async def events(request: web.Request) -> web.WebSocketResponse:
    req = gw.EventsRequest(since_unix_nano=time.time_ns())

    async def happenings() -> AsyncIterator[str]:
        async for r in stream(gateway(request).system.Events(req)):
            if r.HasField("event"):
                e = r.event
                yield json.dumps({"type": e.type, "action": e.action, "id": e.actor_id, "time": e.time_unix_nano,
                                  "name": e.attributes.get("name", "")})  # fmt: skip

    return await pump(request, happenings())
