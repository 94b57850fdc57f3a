"""What the page's route modules share: the gateway, reading a JSON body, and a WebSocket fed by a stream."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from teu_api.errors import InvalidArgument, TeuError
from teu_common.frontdoor import Gateway

GATEWAY = web.AppKey("gateway", Gateway)


def gateway(request: web.Request) -> Gateway:
    """The gateway of the app serving ``request``."""
    return request.app[GATEWAY]


async def body(request: web.Request) -> dict[str, Any]:
    """The request's JSON object; InvalidArgument when it is not one."""
    try:
        doc = await request.json()
    except ValueError:
        raise InvalidArgument("the body is not JSON") from None
    if not isinstance(doc, dict):
        raise InvalidArgument("the body must be a JSON object")
    return doc


def text(doc: dict[str, Any], key: str, required: bool = False) -> str:
    """``doc[key]`` as a stripped string ("" when absent); InvalidArgument when it is not a string, or
    is empty and ``required``."""
    value = doc.get(key)
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise InvalidArgument(f"{key} must be a string")
    if required and not value.strip():
        raise InvalidArgument(f"{key} is required")
    return value.strip()


async def pump(request: web.Request, messages: AsyncIterator[str]) -> web.WebSocketResponse:
    """A WebSocket sending ``messages`` until they end (an error as ``{"error": ...}``) or the page
    goes away (then the stream behind them is cancelled at once)."""
    ws = web.WebSocketResponse(heartbeat=30)
    await ws.prepare(request)

    async def send() -> None:
        try:
            async for message in messages:
                await ws.send_str(message)
        except TeuError as exc:
            await ws.send_str(json.dumps({"error": exc.message}))

    sender = asyncio.ensure_future(send())
    closed = asyncio.ensure_future(ws.receive())  # the page sends nothing: this ends when it closes
    try:
        await asyncio.wait({sender, closed}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (sender, closed):
            task.cancel()
        await asyncio.gather(sender, closed, return_exceptions=True)
        await ws.close()
    return ws
