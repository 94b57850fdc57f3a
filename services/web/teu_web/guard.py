"""Who may use the page, as aiohttp middlewares, outermost first.

- :func:`errors`: Teu's errors, and the server's own (no such page, a wrong method), as ``{"message": ...}``
  with their HTTP status.
- :func:`same_origin`: the page's API answers the page only. A browser lets any web site send requests to
  loopback: a form posted to ``/api/containers/x/kill``, a WebSocket opened to a container's terminal, or a
  name of the site's re-bound to 127.0.0.1 (DNS rebinding). So a request that a browser marks as sent by
  another site (its ``Origin``) is refused, and so is, on loopback, one addressed to a name that is not
  loopback's (its ``Host``).
- :func:`token`: served beyond loopback, every request carries the token (`teu web` prints it), except
  over the mutual-TLS listener, whose client certificate says who is asking.
- ``httpauthz.identify``: over mutual TLS, the certificate's role decides what the page may ask of the
  gateway (a viewer watches, an operator also stops and starts, an admin also runs and opens terminals).
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from aiohttp import web

from teu_api.errors import PermissionDenied, TeuError, Unauthenticated
from teu_common.frontdoor import status_of

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
TOKEN = web.AppKey("token", str)
COOKIE = "teu_token"


def loopback(host: str) -> bool:
    """Whether ``host`` (a name or address, without port) is this machine only."""
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def over_tls(request: web.Request) -> bool:
    transport = request.transport
    return transport is not None and transport.get_extra_info("ssl_object") is not None


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except TeuError as exc:
        return web.json_response({"message": exc.message}, status=status_of(exc))
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return web.json_response({"message": exc.reason}, status=exc.status)


@web.middleware
async def same_origin(request: web.Request, handler: Handler) -> web.StreamResponse:
    origin = request.headers.get("Origin")
    if origin is not None:
        scheme, netloc = urlsplit(origin)[:2]
        if origin == "null" or netloc.lower() != request.host.lower() or scheme not in ("http", "https"):
            raise PermissionDenied(f"a request from another site ({origin[:100]}) is refused: open the page itself")
    if not request.app[TOKEN] and not over_tls(request):
        name = urlsplit("//" + request.host).hostname or ""
        if not loopback(name):
            raise PermissionDenied(f"the page is served on loopback only: address it as 127.0.0.1, not {request.host[:100]!r}")
    return await handler(request)


@web.middleware
async def token(request: web.Request, handler: Handler) -> web.StreamResponse:
    """``Authorization: Bearer``, the ``teu_token`` cookie, or ``?token=`` (which sets the cookie, so
    the page's own requests carry it)."""
    expected = request.app[TOKEN]
    if not expected or over_tls(request):
        return await handler(request)
    given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip() or request.cookies.get(COOKIE, "")
    from_query = request.query.get("token", "")
    if not hmac.compare_digest((from_query or given).encode(), expected.encode()):
        raise Unauthenticated("a token is required: open the address `teu web` printed (it carries ?token=...)")
    response = await handler(request)
    if from_query and not response.prepared:
        response.set_cookie(COOKIE, expected, httponly=True, samesite="Strict")
    return response
