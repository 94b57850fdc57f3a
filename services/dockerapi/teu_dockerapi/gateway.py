"""The gateway's public API, as this service calls it: async stubs, failures as Teu errors."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Mapping
from typing import Protocol, TypeVar

import grpc
from aiohttp import web

from teu_api.errors import TeuError, Unavailable, from_status
from teu_api.gateway.v1 import gateway_pb2_grpc as g
from teu_common.channels import MESSAGE_SIZES
from teu_common.config import Config
from teu_dockerapi import authz

T = TypeVar("T")


class Gateway:
    """Stubs of the gateway's five services over one channel to its unix socket."""

    def __init__(self, cfg: Config) -> None:
        self.channel = grpc.aio.insecure_channel(
            f"unix:{cfg.socket('gateway')}", options=MESSAGE_SIZES, interceptors=authz.interceptors()
        )
        self.containers = g.ContainersServiceStub(self.channel)
        self.images = g.ImagesServiceStub(self.channel)
        self.system = g.SystemServiceStub(self.channel)
        self.networks = g.NetworksServiceStub(self.channel)
        self.volumes = g.VolumesServiceStub(self.channel)

    async def close(self) -> None:
        """Closes the channel."""
        await self.channel.close()


def _error(exc: grpc.aio.AioRpcError) -> TeuError:
    if exc.code() == grpc.StatusCode.UNAVAILABLE:
        return Unavailable(f"the Teu engine is not answering: {exc.details() or ''}")
    return from_status(exc.code(), exc.details() or "")


async def call(awaitable: Awaitable[T]) -> T:
    """A unary call's answer; its failure as a Teu error."""
    try:
        return await awaitable
    except grpc.aio.AioRpcError as exc:
        raise _error(exc) from None


async def stream(responses: AsyncIterable[T]) -> AsyncIterator[T]:
    """A server stream's messages; its failure as a Teu error."""
    try:
        async for item in responses:
            yield item
    except grpc.aio.AioRpcError as exc:
        raise _error(exc) from None


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
