"""Who may do what through an HTTP front door's TCP listener (the Docker API's, the web page's): the
gateway's roles, from the same mutual-TLS client certificates (``teu_common.authz``: the Subject's CN
names the client, its OU the role).

A request that came over TLS runs with its caller in :data:`CALLER` (the :func:`identify` middleware);
every call the front door then makes to the gateway is checked against that caller's role by the
:func:`interceptors`, with the gateway's own tiers, so an endpoint allows exactly what its gateway
methods allow. Requests over a unix socket or loopback have no caller: they are trusted as the
gateway's unix socket is. Endpoints that take the connection over check their method before they
answer (:func:`require`).
"""

from __future__ import annotations

import ssl
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import Any

import grpc
from aiohttp import web

from teu_common import authz
from teu_common.config import TlsListen

#: The TLS client of the request being served; None when it did not come over TLS.
CALLER: ContextVar[authz.Peer | None] = ContextVar("front_door_caller", default=None)


def server_context(tls: TlsListen) -> ssl.SSLContext:
    """TLS 1.2 or later, the server's certificate, and a client certificate signed by the CA required."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(tls.ca))
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(str(tls.cert), str(tls.key))
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def peer_of(request: web.Request) -> authz.Peer | None:
    """The TLS client of ``request`` (its certificate's CN and the role its OU names); None when the
    request did not come over TLS."""
    transport = request.transport
    ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
    if ssl_object is None:
        return None
    cert: Any = ssl_object.getpeercert() or {}
    return authz.peer_of_subject((_TYPES.get(kind, kind), value) for rdn in cert.get("subject", ()) for kind, value in rdn)


_TYPES = {"commonName": "CN", "organizationalUnitName": "OU"}  # the attributes a role is read from


@web.middleware
async def identify(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
    """Runs the handler with the request's TLS client as :data:`CALLER`."""
    token = CALLER.set(peer_of(request))
    try:
        return await handler(request)
    finally:
        CALLER.reset(token)


def require(method: str) -> None:
    """PermissionDenied (or Unauthenticated) unless the caller may call the gateway's ``method``."""
    peer = CALLER.get()
    if peer is not None:
        authz.authorize(method, peer)


def _check(details: Any) -> None:
    require(details.method.decode() if isinstance(details.method, bytes) else str(details.method))


class _Unary(grpc.aio.UnaryUnaryClientInterceptor):
    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        _check(details)
        return await continuation(details, request)


class _UnaryStream(grpc.aio.UnaryStreamClientInterceptor):
    async def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        _check(details)
        return await continuation(details, request)


class _StreamUnary(grpc.aio.StreamUnaryClientInterceptor):
    async def intercept_stream_unary(self, continuation: Any, details: Any, requests: Any) -> Any:
        _check(details)
        return await continuation(details, requests)


class _StreamStream(grpc.aio.StreamStreamClientInterceptor):
    async def intercept_stream_stream(self, continuation: Any, details: Any, requests: Any) -> Any:
        _check(details)
        return await continuation(details, requests)


def interceptors() -> list[grpc.aio.ClientInterceptor]:
    """The checks of every kind of call to the gateway."""
    return [_Unary(), _UnaryStream(), _StreamUnary(), _StreamStream()]
