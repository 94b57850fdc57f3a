"""Channels from one service to another, over their unix sockets, and the message size limit every
server and channel of the engine shares.

A back end that restarts (the supervisor brings it back within a second) must not fail the calls made
meanwhile: a channel waits up to its ``patience`` for the service to accept connections, then sends the
call (with gRPC's wait-for-ready when the connection was made just now, so a call that could not be
sent waits instead of failing with "connection refused"). Calls are never sent twice: one that was in
flight when the service died still fails, and its caller decides whether it may be repeated.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import grpc

from teu_common.config import Config

MESSAGE_SIZES = [("grpc.max_receive_message_length", 16 << 20), ("grpc.max_send_message_length", 16 << 20)]
#: How long a call waits for a service that does not accept connections (it restarts in about a second).
PATIENCE = 10.0


class _WhenReady(
    grpc.aio.UnaryUnaryClientInterceptor,
    grpc.aio.UnaryStreamClientInterceptor,
    grpc.aio.StreamUnaryClientInterceptor,
    grpc.aio.StreamStreamClientInterceptor,
):
    """Holds each call until its channel is connected (at most ``patience`` seconds), then sends it
    (with wait-for-ready when it had to wait); UNAVAILABLE, as for any unreachable service, once the
    patience runs out."""

    def __init__(self, service: str, patience: float) -> None:
        self.service = service
        self.patience = patience
        self.channel: grpc.aio.Channel | None = None

    async def _ready(self, details: Any) -> grpc.aio.ClientCallDetails:
        channel = self.channel
        fresh = False
        if channel is not None and channel.get_state(try_to_connect=True) != grpc.ChannelConnectivity.READY:
            try:
                await asyncio.wait_for(channel.channel_ready(), self.patience)
            except TimeoutError:
                raise grpc.aio.AioRpcError(
                    grpc.StatusCode.UNAVAILABLE, grpc.aio.Metadata(), grpc.aio.Metadata(),
                    f"the {self.service} service did not accept connections for {self.patience:g} s",
                ) from None  # fmt: skip
            fresh = True
        # Wait-for-ready only on a connection made just now. A channel that said READY may not know
        # yet that its service died: wait-for-ready would then hold the call until the service is
        # back, for ever if it never comes back; failing at once lets the caller decide.
        return grpc.aio.ClientCallDetails(details.method, details.timeout, details.metadata, details.credentials, fresh)

    async def intercept_unary_unary(self, continuation: Callable[..., Any], details: Any, request: Any) -> Any:
        return await continuation(await self._ready(details), request)

    async def intercept_unary_stream(self, continuation: Callable[..., Any], details: Any, request: Any) -> Any:
        return await continuation(await self._ready(details), request)

    async def intercept_stream_unary(self, continuation: Callable[..., Any], details: Any, requests: Any) -> Any:
        return await continuation(await self._ready(details), requests)

    async def intercept_stream_stream(self, continuation: Callable[..., Any], details: Any, requests: Any) -> Any:
        return await continuation(await self._ready(details), requests)


def connect(cfg: Config, service: str, patience: float = PATIENCE) -> grpc.aio.Channel:
    """An async channel to ``service``; it reconnects by itself when the service comes back, and its
    calls wait up to ``patience`` seconds for it (0: they fail at once while it is down)."""
    options = [*MESSAGE_SIZES, ("grpc.initial_reconnect_backoff_ms", 100), ("grpc.max_reconnect_backoff_ms", 1000)]
    if patience <= 0:
        return grpc.aio.insecure_channel(f"unix:{cfg.socket(service)}", options=options)
    when_ready = _WhenReady(service, patience)
    channel = grpc.aio.insecure_channel(f"unix:{cfg.socket(service)}", options=options, interceptors=[when_ready])
    when_ready.channel = channel
    return channel
