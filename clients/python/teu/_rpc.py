"""The SDK's one translation of gRPC failures into Teu errors."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

import grpc

from teu.errors import TeuError, Unavailable, from_status


def error(exc: grpc.RpcError) -> TeuError:
    """The Teu error for a failed call; a gateway that cannot be reached gets a hint."""
    details = exc.details() or ""
    if exc.code() == grpc.StatusCode.UNAVAILABLE and details.startswith("failed to connect"):
        # a TLS listener that refuses a client certificate just closes the connection: say so too
        return Unavailable(
            "cannot reach the Teu engine: is it running? (make start); over TCP, are your --tls-* "
            f"certificates signed by the engine's CA? [{details}]"
        )
    return from_status(exc.code(), details)


Req = TypeVar("Req")
Resp = TypeVar("Resp")


def unary(method: Callable[[Req], Resp], request: Req) -> Resp:
    """Calls a unary (or client-streaming) method; its failure as a Teu error."""
    try:
        return method(request)
    except grpc.RpcError as exc:
        raise error(exc) from None


def stream(responses: Iterable[Resp]) -> Iterator[Resp]:
    """A server stream's messages; its failure as a Teu error."""
    try:
        yield from responses
    except grpc.RpcError as exc:
        raise error(exc) from None


def resumed(open_: Callable[[], Iterable[Resp]], resumable: Callable[[], bool], patience: float) -> Iterator[Resp]:
    """A server stream that ``open_`` opens again (from where the caller recorded, between messages,
    that it got to) when the gateway cannot be reached, while ``resumable()``, for up to ``patience``
    seconds per outage."""
    deadline = 0.0
    while True:
        attempt = time.monotonic()
        try:
            for item in stream(open_()):
                deadline = 0.0
                yield item
            return
        except Unavailable:
            if time.monotonic() - attempt > 1.0:
                deadline = 0.0  # the stream was up (a quiet one sends nothing): a new outage
            deadline = deadline or time.monotonic() + patience
            if not resumable() or time.monotonic() > deadline:
                raise
            time.sleep(0.2)
