"""The page (static files) and its JSON and WebSocket API over the gateway's public API.

The routes are in containers.py, images.py and resources.py; who may use them in guard.py. Errors
are ``{"message": ...}`` with the HTTP status of Teu's error (teu_common.frontdoor).
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from teu_common import httpauthz
from teu_common.frontdoor import Gateway
from teu_web import containers, guard, images, resources
from teu_web.shared import GATEWAY

STATIC = Path(__file__).parent / "static"
routes = web.RouteTableDef()


@routes.get("/")
async def index(request: web.Request) -> web.StreamResponse:
    return web.FileResponse(STATIC / "index.html")


def build(gateway: Gateway, token_value: str = "") -> web.Application:
    """The application; ``token_value``: the token every request must carry ("" on loopback)."""
    app = web.Application(middlewares=[guard.errors, guard.same_origin, guard.token, httpauthz.identify])
    app[GATEWAY] = gateway
    app[guard.TOKEN] = token_value
    for table in (routes, containers.routes, images.routes, resources.routes):
        app.add_routes(table)
    app.router.add_static("/static/", STATIC, show_index=False)
    return app
