"""The gateway's view of the three backing services: stubs, and their errors as Teu errors."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar, cast

import grpc
import structlog
from grpc_health.v1 import health_pb2, health_pb2_grpc

from teu_api.errors import TeuError, Unavailable, from_status
from teu_api.logs.v1 import logs_pb2_grpc
from teu_api.runtime.v1 import runtime_pb2_grpc
from teu_api.storage.v1 import storage_pb2_grpc
from teu_common.channels import connect
from teu_common.config import Config

T = TypeVar("T")
log = structlog.get_logger()
_CORE_ERROR = "Internal error from Core"


class HealthCheck(Protocol):
    """The part of grpc's health service the gateway calls (its stubs leave the methods untyped)."""

    def Check(self, request: health_pb2.HealthCheckRequest) -> Awaitable[health_pb2.HealthCheckResponse]:
        """The service's serving status."""
        ...


@dataclass
class Backends:
    """Stubs of the runtime, storage and logs services."""

    runtime: runtime_pb2_grpc.RuntimeServiceAsyncStub
    storage: storage_pb2_grpc.StorageServiceAsyncStub
    logs: logs_pb2_grpc.LogsServiceAsyncStub
    logs_health: HealthCheck
    channels: tuple[grpc.aio.Channel, ...]

    async def close(self) -> None:
        """Closes the channels."""
        for ch in self.channels:
            await ch.close()


def open_backends(cfg: Config) -> Backends:
    """Channels to the three services (they connect lazily and reconnect by themselves)."""
    rt, st, lg = connect(cfg, "runtime"), connect(cfg, "storage"), connect(cfg, "logs")
    return Backends(
        runtime_pb2_grpc.RuntimeServiceStub(rt),
        storage_pb2_grpc.StorageServiceStub(st),
        logs_pb2_grpc.LogsServiceStub(lg),
        cast(HealthCheck, health_pb2_grpc.HealthStub(lg)),
        (rt, st, lg),
    )


def unreachable(exc: grpc.aio.AioRpcError) -> bool:
    """Whether a call failed because its service could not be reached (it is down or restarting)."""
    return exc.code() == grpc.StatusCode.UNAVAILABLE or (exc.code() == grpc.StatusCode.INTERNAL and exc.details() == _CORE_ERROR)


def translate(exc: grpc.aio.AioRpcError, service: str) -> TeuError:
    """A backend's status as the Teu error the gateway reports. A service that cannot be reached is
    one message whatever the transport said (its words are logged): the connection was refused,
    reset, or broke in the middle of a write (which grpc's asyncio client reports as INTERNAL
    "Internal error from Core")."""
    details = exc.details() or ""
    if unreachable(exc):
        log.warning("backend_unavailable", service=service, code=exc.code().name, details=details)
        return Unavailable(f"the {service} service is not answering (it may be restarting): try again")
    return from_status(exc.code(), details)


async def call(service: str, awaitable: Awaitable[T]) -> T:
    """Awaits a unary backend call, translating its errors."""
    try:
        return await awaitable
    except grpc.aio.AioRpcError as exc:
        raise translate(exc, service) from None


async def stream(service: str, responses: AsyncIterable[T]) -> AsyncIterator[T]:
    """Iterates a server-streaming backend call, translating its errors."""
    try:
        async for item in responses:
            yield item
    except grpc.aio.AioRpcError as exc:
        raise translate(exc, service) from None


#: How long a call that may be repeated is repeated while its service restarts.
IDEMPOTENT_PATIENCE = 30.0


async def idempotent(service: str, make: Callable[[], Awaitable[T]]) -> T:
    """A call that may be sent twice (a read, or a write whose repeat changes nothing), repeated when
    its service dies during it, for up to IDEMPOTENT_PATIENCE seconds."""
    return await retry_unavailable(service, make, IDEMPOTENT_PATIENCE)


async def retry_unavailable(service: str, make: Callable[[], Awaitable[T]], patience: float = 120.0) -> T:
    """Calls ``make()`` until the service answers, for long waits that must survive its restart: it
    is called again while the service cannot be reached, for up to ``patience`` seconds from the first
    failure (a wait may have run for hours before it)."""
    loop = asyncio.get_running_loop()
    deadline = 0.0
    while True:
        try:
            return await make()
        except grpc.aio.AioRpcError as exc:
            deadline = deadline or loop.time() + patience
            if not unreachable(exc) or loop.time() > deadline:
                raise translate(exc, service) from None
            await asyncio.sleep(0.2)
