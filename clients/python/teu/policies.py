"""Docker's spelling of a restart policy, ``--restart no|always|unless-stopped|on-failure[:N]``. Pure."""

from __future__ import annotations

from teu.errors import InvalidArgument
from teu_api.types.v1 import types_pb2


def restart_policy(text: str) -> types_pb2.RestartPolicy:
    """The API message for ``text`` (the engine checks the name and the count)."""
    name, colon, count = text.partition(":")
    if not colon:
        return types_pb2.RestartPolicy(name=name)
    try:
        retries = int(count)
    except ValueError:
        raise InvalidArgument(f"invalid restart policy {text[:40]!r}: the maximum retry count must be a number") from None
    if not -(2**31) <= retries < 2**31:
        raise InvalidArgument(f"invalid restart policy {text[:40]!r}: the maximum retry count is out of range")
    return types_pb2.RestartPolicy(name=name, maximum_retry_count=retries)
