"""/volumes, /networks and /events: the engine's other objects, in Docker's JSON."""

from __future__ import annotations

import json
import time

from aiohttp import web

from teu.cli import parse
from teu.cli.system import event_json, network_json
from teu.cli.volumes import volume_json
from teu_api.errors import FailedPrecondition
from teu_api.gateway.v1 import gateway_pb2 as gw
from teu_dockerapi import system
from teu_dockerapi.containers import details, filters_of, flag, json_body
from teu_dockerapi.gateway import call, of, stream
from teu_dockerapi.shapes import RUNNING_STATE as RUNNING

routes = web.RouteTableDef()


@routes.get("/volumes")
async def volumes(request: web.Request) -> web.Response:
    found = await call(of(request).volumes.ListVolumes(gw.ListVolumesRequest(filters=filters_of(request))))
    return web.json_response({"Volumes": [volume_json(v) for v in found.volumes], "Warnings": []})


@routes.post("/volumes/create")
async def create_volume(request: web.Request) -> web.Response:
    body = await json_body(request)
    req = gw.CreateVolumeRequest(name=body.get("Name") or "", driver=body.get("Driver") or "",
                                 labels=body.get("Labels") or {}, options=body.get("DriverOpts") or {})  # fmt: skip
    made = await call(of(request).volumes.CreateVolume(req))
    return web.json_response(volume_json(made.volume), status=201)


@routes.post("/volumes/prune")
async def prune_volumes(request: web.Request) -> web.Response:
    """Unused volumes matching the label filters: anonymous ones, and named ones too with the filter
    all=true (API 1.42's rule) or for a client of an older API (where prune took every unused volume)."""
    filters = filters_of(request)
    version = request.match_info.get("version")
    older = version is not None and system.version_tuple(version) < (1, 42)
    req = gw.PruneVolumesRequest(all="all=true" in filters or older, filters=[f for f in filters if not f.startswith("all=")])
    done = await call(of(request).volumes.PruneVolumes(req))
    return web.json_response({"VolumesDeleted": list(done.deleted) or None, "SpaceReclaimed": done.reclaimed})


@routes.get("/volumes/{name}")
async def volume(request: web.Request) -> web.Response:
    found = await call(of(request).volumes.InspectVolume(gw.InspectVolumeRequest(name=request.match_info["name"])))
    return web.json_response(volume_json(found.volume))


@routes.delete("/volumes/{name}")
async def remove_volume(request: web.Request) -> web.Response:
    req = gw.RemoveVolumeRequest(name=request.match_info["name"], force=flag(request, "force"))
    await call(of(request).volumes.RemoveVolume(req))
    return web.Response(status=204)


@routes.get("/networks")
async def networks(request: web.Request) -> web.Response:
    found = await call(of(request).networks.ListNetworks(gw.ListNetworksRequest(filters=filters_of(request))))
    return web.json_response([network_json(n) for n in found.networks])


@routes.post("/networks/create")
async def create_network(request: web.Request) -> web.Response:
    body = await json_body(request)
    ipam = ((body.get("IPAM") or {}).get("Config") or [{}])[0] or {}
    req = gw.CreateNetworkRequest(name=body.get("Name") or "", subnet=ipam.get("Subnet") or "", gateway=ipam.get("Gateway") or "",
                                  ip_range=ipam.get("IPRange") or "", internal=bool(body.get("Internal")),
                                  labels=body.get("Labels") or {})  # fmt: skip
    made = await call(of(request).networks.CreateNetwork(req))
    return web.json_response({"Id": made.network.id, "Warning": ""}, status=201)


@routes.post("/networks/prune")
async def prune_networks(request: web.Request) -> web.Response:
    """The user networks no container is on, matching the filters (until, label, label!)."""
    done = await call(of(request).networks.PruneNetworks(gw.PruneNetworksRequest(filters=filters_of(request))))
    return web.json_response({"NetworksDeleted": list(done.deleted) or None})


@routes.post("/build/prune")
async def prune_build_cache(request: web.Request) -> web.Response:
    """Nothing to delete: Teu's build cache is the intermediate images of its builds (the classic
    builder's), which go with the images (image prune), as with dockerd's classic builder."""
    return web.json_response({"CachesDeleted": None, "SpaceReclaimed": 0})


@routes.get("/networks/{id}")
async def network(request: web.Request) -> web.Response:
    found = await call(of(request).networks.InspectNetwork(gw.InspectNetworkRequest(network=request.match_info["id"])))
    return web.json_response(network_json(found.network))


@routes.post("/networks/{id}/connect")
async def connect(request: web.Request) -> web.Response:
    """Connects a container through the gateway (a created one joins at its start). The network a
    created container was created on is already its own: docker-compose asks that before the start,
    and its aliases came with the create."""
    body = await json_body(request)
    g, net = of(request), request.match_info["id"]
    c = await details(g, str(body.get("Container") or ""))
    endpoint = body.get("EndpointConfig") or {}
    aliases = [a for a in endpoint.get("Aliases") or [] if isinstance(a, str)]
    ip = ((endpoint.get("IPAMConfig") or {}).get("IPv4Address")) or ""
    if c.summary.state != RUNNING:
        found = (await call(g.networks.InspectNetwork(gw.InspectNetworkRequest(network=net)))).network
        if c.config.network in (found.name, found.id):
            missing = set(aliases) - set(c.config.network_aliases) - {c.summary.id[:12], c.summary.name}
            if missing:
                raise FailedPrecondition(
                    f"container {c.summary.name} is not running: aliases {sorted(missing)} on the network it was "
                    "created on can be given at its create only"
                )
            return web.Response(status=200)
    req = gw.ConnectNetworkRequest(network=net, container=c.summary.id, ip=ip, aliases=aliases)
    await call(g.networks.ConnectNetwork(req))
    return web.Response(status=200)


@routes.post("/networks/{id}/disconnect")
async def disconnect(request: web.Request) -> web.Response:
    body = await json_body(request)
    req = gw.DisconnectNetworkRequest(network=request.match_info["id"], container=str(body.get("Container") or ""),
                                      force=bool(body.get("Force")))  # fmt: skip
    await call(of(request).networks.DisconnectNetwork(req))
    return web.Response(status=200)


@routes.delete("/networks/{id}")
async def remove_network(request: web.Request) -> web.Response:
    await call(of(request).networks.RemoveNetwork(gw.RemoveNetworkRequest(network=request.match_info["id"])))
    return web.Response(status=204)


@routes.get("/events")
async def events(request: web.Request) -> web.StreamResponse:
    now = time.time_ns()
    since, until = parse.when(request.query.get("since", ""), now), parse.when(request.query.get("until", ""), now)
    req = gw.EventsRequest(since_unix_nano=since, until_unix_nano=until, filters=filters_of(request))
    responses = stream(of(request).system.Events(req))
    first = await anext(responses)  # a bad filter or time is an error before the headers go
    resp = web.StreamResponse(headers={"Content-Type": "application/json"})
    await resp.prepare(request)
    if first.HasField("event"):
        await resp.write(json.dumps(event_json(first)).encode() + b"\n")
    async for r in responses:
        await resp.write(json.dumps(event_json(r)).encode() + b"\n")
    await resp.write_eof()
    return resp
