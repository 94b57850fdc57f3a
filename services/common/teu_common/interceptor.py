"""The one place where Teu errors become gRPC statuses, and where every RPC is counted and timed."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeAlias

import grpc
import structlog
from prometheus_client import Counter, Histogram

from teu_api.errors import Internal, TeuError, to_status
from teu_common.rpctypes import Ctx, Handler

log = structlog.get_logger()

RPCS = Counter("teu_rpc_requests_total", "RPCs handled, by method and status code.", ["method", "code"])
LATENCY = Histogram(
    "teu_rpc_duration_seconds",
    "RPC handling time, by method.",
    ["method"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)


#: The longest error message a status carries, in UTF-8 bytes (gRPC percent-encodes it in its
#: metadata, capped at 8 KiB: 1 KiB stays within that even when every byte is encoded).
MAX_MESSAGE = 1024
# How long a refused client-streaming call keeps reading what its client still sends (see _drain).
DRAIN_PATIENCE = 60.0


Wrap: TypeAlias = Callable[[Any, str], Any]


def rewrap(handler: Handler, method: str, unary: Wrap, stream: Wrap) -> Handler:
    """``handler`` with its behaviour wrapped for ``method``: by ``unary`` where the call answers once,
    by ``stream`` where it streams its answers (the request side does not matter to a wrapper)."""
    kw = {"request_deserializer": handler.request_deserializer, "response_serializer": handler.response_serializer}
    if handler.unary_unary:
        return grpc.unary_unary_rpc_method_handler(unary(handler.unary_unary, method), **kw)
    if handler.stream_unary:
        return grpc.stream_unary_rpc_method_handler(unary(_draining(handler.stream_unary), method), **kw)
    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(stream(handler.unary_stream, method), **kw)
    return grpc.stream_stream_rpc_method_handler(stream(handler.stream_stream, method), **kw)


class ErrorInterceptor(grpc.aio.ServerInterceptor):
    """Maps TeuError to status codes, logs unexpected failures, records metrics."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler | None]],
        details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        handler = await continuation(details)
        if handler is None:
            return handler
        return rewrap(handler, details.method, _unary, _stream)


class _Outcome:
    """Tracks the status code of one call for the metrics."""

    def __init__(self, method: str) -> None:
        self.method = method
        self.code = grpc.StatusCode.OK
        self.start = time.perf_counter()
        structlog.contextvars.bind_contextvars(request_id=uuid.uuid4().hex[:12], method=method)

    async def fail(self, context: Ctx, exc: BaseException) -> None:
        """Aborts the call with the status that reports ``exc``."""
        if not isinstance(exc, TeuError):
            log.error("rpc_failed", exc_info=exc)
            exc = Internal(f"internal error: {exc}")
        else:
            log.info("rpc_error", error=exc.message, error_type=type(exc).__name__)
        self.code = to_status(exc)
        await context.abort(self.code, _bounded(exc.message))

    def done(self) -> None:
        """Records the call in the metrics."""
        RPCS.labels(self.method, self.code.name).inc()
        LATENCY.labels(self.method).observe(time.perf_counter() - self.start)


def _bounded(message: str) -> str:
    """An error message short enough for a status (gRPC's metadata is capped): a value quoted whole
    from a huge request must not turn a clear refusal into an INTERNAL error."""
    raw = message.encode()
    if len(raw) <= MAX_MESSAGE:
        return message
    return raw[: MAX_MESSAGE - 3].decode(errors="ignore") + "..."


def _draining(behavior: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    """``behavior`` of a client-streaming call that, when it fails, first reads the rest of the request.

    grpc's asyncio client reports a write that races the server's status as INTERNAL ("Internal error
    from Core", grpc/grpc#36066), so a refusal after the first message would reach the gateway, itself
    such a client of the back ends, as an internal error half of the time. Answering only once the client
    has finished sending (or after DRAIN_PATIENCE) gives every client the status the server meant."""

    async def wrapper(requests: AsyncIterator[Any], context: Ctx) -> Any:
        try:
            return await behavior(requests, context)
        except Exception:
            await _drain(requests)
            raise

    return wrapper


async def _drain(requests: AsyncIterator[Any]) -> None:
    """Reads and drops the messages a client still sends, for at most DRAIN_PATIENCE seconds."""

    async def rest() -> None:
        async for _ in requests:
            pass

    with contextlib.suppress(Exception):
        await asyncio.wait_for(rest(), DRAIN_PATIENCE)


def _unary(behavior: Callable[..., Awaitable[Any]], method: str) -> Callable[..., Awaitable[Any]]:
    async def wrapper(request: Any, context: Ctx) -> Any:
        outcome = _Outcome(method)
        try:
            return await behavior(request, context)
        except Exception as exc:
            if isinstance(exc, grpc.aio.AbortError):
                raise
            await outcome.fail(context, exc)
        finally:
            outcome.done()

    return wrapper


def _stream(behavior: Callable[..., AsyncIterator[Any]], method: str) -> Callable[..., AsyncIterator[Any]]:
    async def wrapper(request: Any, context: Ctx) -> AsyncIterator[Any]:
        outcome = _Outcome(method)
        try:
            async for item in behavior(request, context):
                yield item
        except Exception as exc:
            if isinstance(exc, grpc.aio.AbortError):
                raise
            await outcome.fail(context, exc)
        finally:
            outcome.done()

    return wrapper
