"""A container's healthcheck: the user's --health-* over the image's HEALTHCHECK, checked with
Docker's rules. Pure."""

from __future__ import annotations

from typing import Final

from teu_api.errors import InvalidArgument
from teu_api.types.v1 import types_pb2

MIN_DURATION_NS: Final = 1_000_000  # Docker: "should be at least 1ms"
_DURATIONS: Final = ("interval_ns", "timeout_ns", "start_period_ns", "start_interval_ns")


def merged(user: types_pb2.HealthConfig, image: types_pb2.HealthConfig) -> types_pb2.HealthConfig:
    """The healthcheck in force: the image's, each field the user gave replacing its own; none for
    ``--no-healthcheck`` (test ["NONE"]) or without a test. INVALID_ARGUMENT for a bad one."""
    if list(user.test[:1]) == ["NONE"]:
        return types_pb2.HealthConfig()
    out = types_pb2.HealthConfig()
    out.CopyFrom(image)
    if user.test:
        out.test[:] = list(user.test)
    for name in (*_DURATIONS, "retries"):
        if value := getattr(user, name):
            setattr(out, name, value)
    if not out.test or out.test[0] == "NONE":
        return types_pb2.HealthConfig()
    kind = out.test[0]
    if kind not in ("CMD", "CMD-SHELL") or len(out.test) < 2 or (kind == "CMD-SHELL" and len(out.test) != 2):
        raise InvalidArgument('invalid healthcheck test: want ["CMD", arg...], ["CMD-SHELL", command] or ["NONE"]')
    for name in _DURATIONS:
        value = getattr(out, name)
        if value and value < MIN_DURATION_NS:
            flag = "--health-" + name.removesuffix("_ns").replace("_", "-")
            raise InvalidArgument(f"{flag} should be at least 1ms, got {value} ns")
    if out.retries < 0:
        raise InvalidArgument(f"--health-retries should be at least 0, got {out.retries}")
    return out
