"""/_ping, /version, /info: what Docker's clients ask first; /auth, the check of ``docker login``."""

from __future__ import annotations

import asyncio
import os
import platform
import socket

from aiohttp import web

from teu.cli.system import docker_info
from teu.cli.volumes import volume_json
from teu_api import VERSION
from teu_api.errors import FailedPrecondition, InvalidArgument
from teu_api.gateway.v1 import gateway_pb2 as gw
from teu_common import httpauthz as authz
from teu_dockerapi import errors, shapes
from teu_dockerapi.containers import json_body
from teu_dockerapi.gateway import call, of

#: The newest API version whose endpoints are served, and the oldest client accepted.
API_VERSION, MIN_API_VERSION = "1.43", "1.24"
HEADERS = {"Api-Version": API_VERSION, "Docker-Experimental": "false", "Ostype": "linux", "Server": f"Teu/{VERSION}"}


def version_tuple(text: str) -> tuple[int, ...]:
    """An API version ("1.41") as numbers, for comparing."""
    return tuple(int(p) for p in text.split(".") if p.isdigit())


routes = web.RouteTableDef()


@routes.get("/_ping")
@routes.head("/_ping")
async def ping(request: web.Request) -> web.Response:
    return web.Response(text="OK", headers={"Cache-Control": "no-cache, no-store, must-revalidate", "Pragma": "no-cache"})


def _arch() -> str:
    machine = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)


@routes.get("/version")
async def version(request: web.Request) -> web.Response:
    v = await call(of(request).system.Version(gw.VersionRequest()))
    kernel = platform.release()
    engine = {"Name": "Engine", "Version": v.version, "Details": {"ApiVersion": API_VERSION, "MinAPIVersion": MIN_API_VERSION,
              "Os": "linux", "Arch": _arch(), "KernelVersion": kernel, "OCIRuntime": v.oci_runtime_version}}  # fmt: skip
    return web.json_response({
        "Platform": {"Name": "Teu"}, "Components": [engine], "Version": v.version, "ApiVersion": API_VERSION,
        "MinAPIVersion": MIN_API_VERSION, "GitCommit": "", "GoVersion": "", "Os": "linux", "Arch": _arch(),
        "KernelVersion": kernel, "BuildTime": "",
    })  # fmt: skip


@routes.get("/info")
async def info(request: web.Request) -> web.Response:
    i = await call(of(request).system.Info(gw.InfoRequest()))
    return web.json_response({
        **docker_info(i), "ID": socket.gethostname(), "Name": socket.gethostname(), "ContainersPaused": 0,
        "ServerVersion": VERSION, "OperatingSystem": "Teu",
        "MemTotal": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"), "CgroupDriver": "cgroupfs",
        "Runtimes": {i.oci_runtime: {"path": i.oci_runtime}}, "LoggingDriver": "k8s-file", "Labels": [], "Warnings": [],
    })  # fmt: skip


@routes.get("/system/df")
async def disk_usage(request: web.Request) -> web.Response:
    g = of(request)
    usage = await call(g.system.DiskUsage(gw.DiskUsageRequest()))
    images = await call(g.images.ListImages(gw.ListImagesRequest()))
    containers = await call(g.containers.List(gw.ListRequest(all=True, size=True)))
    volumes = await call(g.volumes.ListVolumes(gw.ListVolumesRequest()))
    return web.json_response({
        "LayersSize": usage.images_bytes, "Images": [shapes.image_summary(i) for i in images.images],
        "Containers": [shapes.summary(c) for c in containers.containers],
        "Volumes": [{**volume_json(v), "UsageData": {"Size": v.size, "RefCount": len(v.used_by)}} for v in volumes.volumes],
        "BuildCache": [],
    })  # fmt: skip


@routes.post("/auth")
async def auth(request: web.Request) -> web.Response:
    """``docker login``: the credentials checked against the registry as the CLI's ``teu login`` does
    (they are not kept here: Docker's clients send them with each pull and push); 401 if refused."""
    from teu._login import verify  # only a login pays for the HTTP client

    authz.require("/teu.gateway.v1.ImagesService/Pull")  # it makes the engine reach a registry: as a pull does
    body = await json_body(request)
    server, user, password = (str(body.get(key) or "") for key in ("serveraddress", "username", "password"))
    if not user or not password:
        raise InvalidArgument("username and password are required")
    try:
        await asyncio.to_thread(verify, server, user, password)
    except FailedPrecondition as exc:
        return errors.response(401, exc.message)
    return web.json_response({"Status": "Login Succeeded", "IdentityToken": ""})
