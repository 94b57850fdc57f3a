"""Client-streaming and bidirectional RPCs start with one opening message; this reads it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from teu_api.errors import InvalidArgument


async def first_message(requests: AsyncIterator[Any], part: str) -> Any:
    """The opening message (its ``part`` oneof set); INVALID_ARGUMENT if the stream starts otherwise."""
    try:
        first = await anext(requests)
    except StopAsyncIteration:
        raise InvalidArgument(f"the stream must start with a {part} message") from None
    if first.WhichOneof("part") != part:
        raise InvalidArgument(f"the stream must start with a {part} message")
    return first
