"""The HTTP application: Docker's paths (plain and ``/v1.xx/``-versioned), errors as Docker's JSON,
and the headers Docker's clients read on every answer."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import structlog
from aiohttp import web

from teu_api.errors import TeuError
from teu_common import httpauthz as authz
from teu_dockerapi import archive, attach, builds, containers, errors, execs, images, resources, stats, system
from teu_dockerapi.gateway import GATEWAY, Gateway

log = structlog.get_logger()
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
MAX_BODY = 16 << 20  # a create body is a few KiB; an upload endpoint streams instead


@web.middleware
async def docker_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Teu's errors and aiohttp's own (no such path, wrong method, body too large) as Docker's JSON;
    a versioned path's version checked against what is served."""
    wanted = request.match_info.get("version")
    if wanted is not None:
        if system.version_tuple(wanted) > system.version_tuple(system.API_VERSION):
            return errors.response(
                400, f"client version {wanted} is too new. Maximum supported API version is {system.API_VERSION}"
            )
        if system.version_tuple(wanted) < system.version_tuple(system.MIN_API_VERSION):
            return errors.response(
                400, f"client version {wanted} is too old. Minimum supported API version is {system.MIN_API_VERSION}, "
                "please upgrade your client to a newer version",
            )  # fmt: skip
    try:
        return await handler(request)
    except TeuError as exc:
        status = errors.status_of(exc)
        log.info("api_error", method=request.method, path=request.path, status=status, error=exc.message)
        return errors.response(status, exc.message)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        message = "page not found" if exc.status == 404 else exc.reason
        return errors.response(exc.status, message)


async def _headers(request: web.Request, response: web.StreamResponse) -> None:
    response.headers.update(system.HEADERS)


def build(gateway: Gateway) -> web.Application:
    """The application, every route twice: ``/path`` and ``/v{version}/path``."""
    app = web.Application(middlewares=[docker_errors, authz.identify], client_max_size=MAX_BODY)
    app[GATEWAY] = gateway
    execs.setup(app)
    attach.setup(app)
    for table in (
        system.routes,
        containers.routes,
        images.routes,
        builds.routes,
        resources.routes,
        execs.routes,
        stats.routes,
        archive.routes,
        attach.routes,
    ):
        for route in table:
            assert isinstance(route, web.RouteDef)
            app.router.add_route(route.method, route.path, route.handler)
            app.router.add_route(route.method, r"/v{version:[0-9]+\.[0-9]+}" + route.path, route.handler)
    app.on_response_prepare.append(_headers)
    return app
