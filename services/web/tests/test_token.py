"""Served beyond loopback, the page and its API answer only requests that carry the token."""

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
