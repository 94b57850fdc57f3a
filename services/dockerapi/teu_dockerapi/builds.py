"""POST /build: Docker's classic builder endpoint, over the gateway's Build stream.

The body is the context tar (plain or compressed), sent on as it arrives; the answer is dockerd's
stream of JSON lines: ``{"stream": ...}`` for each line of progress and output, ``{"aux": {"ID":
...}}`` for the image, and ``{"errorDetail": ...}`` when a step fails (with a RUN's exit code as
its ``code``, so the docker CLI exits with it). BuildKit's session protocol (``version=2``) and
remote contexts are refused as not served.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from teu_api.errors import InvalidArgument, TeuError, Unimplemented
from teu_api.gateway.v1 import gateway_pb2 as gw
from teu_api.types.v1 import types_pb2
from teu_dockerapi.archive import CHUNK
from teu_dockerapi.containers import flag
from teu_dockerapi.gateway import of, stream
from teu_dockerapi.images import credentials, header_json

routes = web.RouteTableDef()
_EXIT = re.compile(r"returned a non-zero code: (\d+)")


def _json_map(request: web.Request, key: str) -> dict[str, str]:
    """A query parameter holding a JSON object of strings (null values left out)."""
    text = request.query.get(key, "")
    if not text:
        return {}
    try:
        doc = json.loads(text)
    except ValueError:
        raise InvalidArgument(f"{key} is not JSON") from None
    if not isinstance(doc, dict):
        raise InvalidArgument(f"{key} must be a JSON object")
    return {str(k): str(v) for k, v in doc.items() if v is not None}


def _registry_config(request: web.Request) -> dict[str, types_pb2.RegistryAuth]:
    """X-Registry-Config: credentials by registry."""
    doc = header_json(request, "X-Registry-Config") or {}
    return {
        str(registry).removeprefix("https://").removeprefix("http://").split("/")[0]: credentials(creds)
        for registry, creds in doc.items()
        if isinstance(creds, dict)
    }


def options_of(request: web.Request) -> gw.BuildOptions:
    """The build's options from dockerd's query parameters."""
    q = request.query
    if q.get("version") == "2":
        raise Unimplemented("BuildKit (version=2) is not served: Teu builds with the classic builder (DOCKER_BUILDKIT=0)")
    if q.get("remote"):
        raise Unimplemented("remote build contexts (git or URL) are not supported yet: send the context as the body")
    network = q.get("networkmode", "")
    return gw.BuildOptions(
        tags=q.getall("t", []),
        dockerfile=q.get("dockerfile", ""),
        build_args=_json_map(request, "buildargs"),
        target=q.get("target", ""),
        no_cache=flag(request, "nocache"),
        pull=flag(request, "pull"),
        labels=_json_map(request, "labels"),
        network="" if network == "default" else network,
        insecure=True,  # registries on this machine over plain HTTP, as dockerd treats them
        auth=_registry_config(request),
    )


@routes.post("/build")
async def build(request: web.Request) -> web.StreamResponse:
    options = options_of(request)
    quiet = flag(request, "q")

    async def parts() -> AsyncIterator[gw.BuildRequest]:
        yield gw.BuildRequest(options=options)
        while chunk := await request.content.read(CHUNK):
            yield gw.BuildRequest(chunk=chunk)

    responses = stream(of(request).images.Build(parts()))
    resp = web.StreamResponse(headers={"Content-Type": "application/json"})
    await resp.prepare(request)

    async def say(doc: dict[str, Any]) -> None:
        await resp.write(json.dumps(doc).encode() + b"\r\n")

    try:
        async for r in responses:
            part = r.WhichOneof("part")
            if part == "result":
                await say({"aux": {"ID": r.result.image_id}})
                if quiet:
                    await say({"stream": r.result.image_id + "\n"})
            elif quiet:
                continue
            elif part == "status":
                await say({"stream": r.status + "\n"})
            else:
                await say({"stream": r.output.decode(errors="replace")})
    except TeuError as exc:  # the headers are gone: dockerd tells a failed build in the stream
        m = _EXIT.search(exc.message)
        detail: dict[str, Any] = {"message": exc.message}
        if m:
            detail["code"] = int(m.group(1))
        await say({"errorDetail": detail, "error": exc.message})
    await resp.write_eof()
    return resp
