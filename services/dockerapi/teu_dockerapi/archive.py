"""/containers/{id}/archive: ``docker cp`` both ways (GET and HEAD read, PUT writes), over the
gateway's CopyFrom and CopyTo streams.

Docker answers a read with the path's stat in ``X-Docker-Container-Path-Stat`` (base64 of
{name, size, mode, mtime, linkTarget}); it is taken from the first header of the tar that CopyFrom
streams (the path itself comes first), so HEAD reads that header and stops.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import stat
import tarfile
from collections.abc import AsyncIterator

from aiohttp import web

from teu_api.errors import InvalidArgument
from teu_api.gateway.v1 import gateway_pb2 as gw
from teu_dockerapi.gateway import call, of, send_tar, stream

routes = web.RouteTableDef()
CHUNK = 1 << 20


def path_stat(header: bytes) -> str:
    """X-Docker-Container-Path-Stat of a tar's first header block: base64 of Docker's JSON."""
    info = tarfile.TarInfo.frombuf(header[: tarfile.BLOCKSIZE], tarfile.ENCODING, "surrogateescape")
    kind = {tarfile.DIRTYPE: stat.S_IFDIR, tarfile.SYMTYPE: stat.S_IFLNK}.get(info.type, stat.S_IFREG)
    mode = info.mode | (0x80000000 if kind == stat.S_IFDIR else 0x8000000 if kind == stat.S_IFLNK else 0)  # Go's FileMode bits
    mtime = dt.datetime.fromtimestamp(info.mtime, dt.UTC).isoformat().replace("+00:00", "Z")
    doc = {"name": info.name.rstrip("/").rsplit("/", 1)[-1], "size": info.size, "mode": mode, "mtime": mtime,
           "linkTarget": info.linkname}  # fmt: skip
    return base64.b64encode(json.dumps(doc).encode()).decode()


async def _tar(request: web.Request) -> tuple[bytes, AsyncIterator[gw.CopyFromResponse]]:
    """The tar's first block(s) and the rest of the stream; NotFound etc. before any header goes."""
    path = request.query.get("path", "")
    if not path:
        raise InvalidArgument("path is required")
    chunks = stream(of(request).containers.CopyFrom(gw.CopyFromRequest(container=request.match_info["id"], path=path)))
    head = b""
    async for part in chunks:
        head += part.chunk
        if len(head) >= tarfile.BLOCKSIZE:
            break
    if len(head) < tarfile.BLOCKSIZE:
        raise InvalidArgument(f"nothing to read at {path[:200]!r}")
    return head, chunks


@routes.head("/containers/{id}/archive")
async def head(request: web.Request) -> web.Response:
    first, rest = await _tar(request)
    await rest.aclose()  # type: ignore[attr-defined]
    return web.Response(headers={"X-Docker-Container-Path-Stat": path_stat(first), "Content-Type": "application/x-tar"})


@routes.get("/containers/{id}/archive")
async def get(request: web.Request) -> web.StreamResponse:
    first, rest = await _tar(request)
    return await send_tar(request, first, rest, {"X-Docker-Container-Path-Stat": path_stat(first)})


@routes.put("/containers/{id}/archive")
async def put(request: web.Request) -> web.Response:
    path = request.query.get("path", "")
    if not path:
        raise InvalidArgument("path is required")

    async def parts() -> AsyncIterator[gw.CopyToRequest]:
        yield gw.CopyToRequest(header=gw.CopyToHeader(container=request.match_info["id"], path=path))
        while chunk := await request.content.read(CHUNK):
            yield gw.CopyToRequest(chunk=chunk)

    await call(of(request).containers.CopyTo(parts()))
    return web.Response(status=200)
