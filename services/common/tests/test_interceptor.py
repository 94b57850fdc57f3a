"""A refused client-streaming call reaches an asyncio client with its own status, never INTERNAL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc

from teu_api.errors import FailedPrecondition
from teu_common.interceptor import ErrorInterceptor

METHOD = "/teu.test.Upload/Put"


async def _refuse(requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext) -> bytes:
    async for _ in requests:
        raise FailedPrecondition("the target is read-only")
    return b""


def _handler(_details: Any) -> grpc.RpcMethodHandler:
    return grpc.stream_unary_rpc_method_handler(_refuse)


class _Handlers(grpc.GenericRpcHandler):  # type: ignore[misc]
    def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        return _handler(details) if details.method == METHOD else None


async def _codes(sock: Path, calls: int) -> list[grpc.StatusCode]:
    server = grpc.aio.server(interceptors=[ErrorInterceptor()])
    server.add_generic_rpc_handlers([_Handlers()])
    server.add_insecure_port(f"unix:{sock}")
    await server.start()
    codes = []
    try:
        async with grpc.aio.insecure_channel(f"unix:{sock}") as channel:
            put = channel.stream_unary(METHOD)

            async def chunks() -> AsyncIterator[bytes]:
                for _ in range(64):
                    yield b"x" * 65536

            for _ in range(calls):
                try:
                    await put(chunks())
                    codes.append(grpc.StatusCode.OK)
                except grpc.aio.AioRpcError as exc:
                    codes.append(exc.code())
    finally:
        await server.stop(None)
    return codes


def test_an_early_refusal_keeps_its_status_for_an_asyncio_client(tmp_path: Path) -> None:
    """A server that refuses after the first of many messages is heard as FAILED_PRECONDITION each time
    (grpc's asyncio client reports a write that races the status as INTERNAL; the server waits for the
    client to finish sending before it answers)."""
    codes = asyncio.run(_codes(tmp_path / "s.sock", 200))
    assert set(codes) == {grpc.StatusCode.FAILED_PRECONDITION}
