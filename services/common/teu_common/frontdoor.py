"""What the front doors share (the services that are clients of the gateway's public API only, such as
the Docker API and the CRI): the gateway's stubs over one channel, and its failures as Teu errors."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Sequence
from typing import TypeVar

import grpc

from teu_api.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    TeuError,
    Unauthenticated,
    Unavailable,
    Unimplemented,
    from_status,
)
from teu_api.gateway.v1 import gateway_pb2_grpc as g
from teu_common.channels import MESSAGE_SIZES
from teu_common.config import Config

T = TypeVar("T")


class Gateway:
    """Stubs of the gateway's five services over one channel to its unix socket."""

    def __init__(self, cfg: Config, interceptors: Sequence[grpc.aio.ClientInterceptor] = ()) -> None:
        self.channel = grpc.aio.insecure_channel(
            f"unix:{cfg.socket('gateway')}", options=MESSAGE_SIZES, interceptors=interceptors
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


_HTTP_STATUS: dict[type[TeuError], int] = {
    NotFound: 404,
    AlreadyExists: 409,
    FailedPrecondition: 409,
    InvalidArgument: 400,
    Unauthenticated: 401,
    PermissionDenied: 403,
    Unavailable: 503,
    Unimplemented: 501,
}


def status_of(exc: TeuError) -> int:
    """The HTTP status an HTTP front door answers ``exc`` with (Docker's codes; 500 for anything unforeseen)."""
    return next((code for kind, code in _HTTP_STATUS.items() if isinstance(exc, kind)), 500)
