"""The gateway's public API, as this service calls it: async stubs, failures as Teu errors."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Protocol

from aiohttp import web

from teu_common import frontdoor
from teu_common import httpauthz as authz
from teu_common.config import Config
from teu_common.frontdoor import call, stream

__all__ = ["GATEWAY", "PENDING", "Gateway", "call", "of", "send_tar", "stream"]


class Gateway(frontdoor.Gateway):
    """The gateway's stubs, each call carrying the Docker API client's role (teu_common.httpauthz)."""

    def __init__(self, cfg: Config) -> None:
        super().__init__(cfg, authz.interceptors())


GATEWAY = web.AppKey("gateway", Gateway)
#: Attaches waiting for their container's start (attach.py), by container id.
PENDING = web.AppKey("pending_attaches", dict)


def of(request: web.Request) -> Gateway:
    """The gateway of the app serving ``request``."""
    return request.app[GATEWAY]


class Chunk(Protocol):
    """A message of a stream of bytes (Export, CopyFrom)."""

    chunk: bytes


async def send_tar(
    request: web.Request, head: bytes, rest: AsyncIterator[Chunk], headers: Mapping[str, str]
) -> web.StreamResponse:
    """A tar streamed to the client: ``head`` (read before the headers, so that an error could still
    be answered as one), then the stream's chunks."""
    resp = web.StreamResponse(headers={"Content-Type": "application/x-tar", **headers})
    await resp.prepare(request)
    await resp.write(head)
    async for part in rest:
        await resp.write(part.chunk)
    await resp.write_eof()
    return resp
