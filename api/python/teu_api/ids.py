"""The form of a container's full id (64 lowercase hex digits, as the gateway makes them), shared
by the services and front doors that must tell an id from a name. Pure."""

from __future__ import annotations

import re
from typing import Final

__all__ = ["is_full_id"]

_FULL_ID: Final = re.compile(r"[0-9a-f]{64}")


def is_full_id(text: str) -> bool:
    """Whether ``text`` has the form of a full container id."""
    return _FULL_ID.fullmatch(text) is not None
