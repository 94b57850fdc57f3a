"""Teu's errors as Docker's API answers them: ``{"message": ...}`` with Docker's status codes."""

from __future__ import annotations

from aiohttp import web

from teu_api.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    TeuError,
    Unavailable,
    Unimplemented,
)

_STATUS: dict[type[TeuError], int] = {
    NotFound: 404,
    AlreadyExists: 409,
    FailedPrecondition: 409,
    InvalidArgument: 400,
    PermissionDenied: 403,
    Unavailable: 503,
    Unimplemented: 501,
}


def status_of(exc: TeuError) -> int:
    """Docker's HTTP status for ``exc`` (500 for anything unforeseen)."""
    return next((code for kind, code in _STATUS.items() if isinstance(exc, kind)), 500)


def response(status: int, message: str) -> web.Response:
    """Docker's error body."""
    return web.json_response({"message": message}, status=status)
