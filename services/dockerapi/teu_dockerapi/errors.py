"""Teu's errors as Docker's API answers them: ``{"message": ...}`` with Docker's status codes."""

from __future__ import annotations

from aiohttp import web

from teu_common.frontdoor import status_of

__all__ = ["response", "status_of"]


def response(status: int, message: str) -> web.Response:
    """Docker's error body."""
    return web.json_response({"message": message}, status=status)
