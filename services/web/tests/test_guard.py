"""Who may use the page: served beyond loopback, only requests that carry the token; always, only
requests from the page itself (not another site's, not through a re-bound name)."""

from __future__ import annotations

import asyncio

from aiohttp.test_utils import TestClient, TestServer
from teu_web import app as appmod


class _NoGateway:
    """The page itself asks nothing of the gateway."""


def test_requests_without_the_token_are_refused() -> None:
    async def check() -> None:
        app = appmod.build(_NoGateway(), "s3cret")  # type: ignore[arg-type]
        async with TestClient(TestServer(app)) as client:
            refused = await client.get("/")
            assert refused.status == 401 and "token is required" in (await refused.json())["message"]
            assert (await client.get("/api/containers")).status == 401
            assert (await client.get("/", headers={"Authorization": "Bearer wrong"})).status == 401
            assert (await client.get("/", headers={"Authorization": "Bearer s3cret"})).status == 200
            first = await client.get("/?token=s3cret")  # the address `teu web` prints: the cookie follows
            assert first.status == 200 and first.cookies["teu_token"].value == "s3cret"
            assert (await client.get("/")).status == 200  # the page's own requests carry the cookie

    asyncio.run(check())


def test_on_loopback_no_token_is_asked() -> None:
    async def check() -> None:
        async with TestClient(TestServer(appmod.build(_NoGateway(), ""))) as client:  # type: ignore[arg-type]
            assert (await client.get("/")).status == 200

    asyncio.run(check())


def test_requests_from_another_site_are_refused() -> None:
    """A page of another site may post a form or open a WebSocket to loopback: the browser names it in Origin."""

    async def check() -> None:
        async with TestClient(TestServer(appmod.build(_NoGateway(), ""))) as client:  # type: ignore[arg-type]
            here = f"http://{client.host}:{client.port}"
            evil = await client.post("/api/containers/x/kill", headers={"Origin": "http://evil.example"})
            assert evil.status == 403 and "another site" in (await evil.json())["message"]
            assert (await client.get("/api/events", headers={"Origin": "null"})).status == 403
            assert (await client.get("/", headers={"Origin": here.replace("http:", "https:", 1) + "1"})).status == 403
            assert (await client.get("/", headers={"Origin": here})).status == 200  # the page itself

    asyncio.run(check())


def test_a_name_rebound_to_loopback_is_refused() -> None:
    """DNS rebinding: a site's own name made to resolve to 127.0.0.1 reaches the page as a same-origin request."""

    async def check() -> None:
        async with TestClient(TestServer(appmod.build(_NoGateway(), ""))) as client:  # type: ignore[arg-type]
            rebound = await client.get("/", headers={"Host": f"evil.example:{client.port}"})
            assert rebound.status == 403 and "loopback only" in (await rebound.json())["message"]
            for host in ("localhost", "127.0.0.1", "[::1]"):
                assert (await client.get("/", headers={"Host": f"{host}:{client.port}"})).status == 200

    asyncio.run(check())
