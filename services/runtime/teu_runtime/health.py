"""Healthchecks: Docker's rules for a container's health (pure). The checks run in the container
through its prober (prober.py), with no exec session, conmon or log of their own: a check's output
is kept in its result (at most 4 KiB) and nowhere else. One that outlives its timeout is killed.

Status: ``starting`` until the first success; ``healthy`` after a success; ``unhealthy`` once
``retries`` checks in a row failed. Failures inside the start period do not count (a success there
ends it), and checks there come every start interval instead of every interval.
"""

from __future__ import annotations

from typing import Final

from teu_api.types.v1 import types_pb2

DEFAULT_INTERVAL: Final = 30 * 10**9
DEFAULT_TIMEOUT: Final = 30 * 10**9
DEFAULT_START_INTERVAL: Final = 5 * 10**9
DEFAULT_RETRIES: Final = 3
KEEP: Final = 5  # results kept, as Docker
STARTING, HEALTHY, UNHEALTHY = "starting", "healthy", "unhealthy"


def argv(cfg: types_pb2.HealthConfig) -> list[str]:
    """The check's command: CMD's arguments, or CMD-SHELL's command under /bin/sh -c."""
    return ["/bin/sh", "-c", cfg.test[1]] if cfg.test[0] == "CMD-SHELL" else list(cfg.test[1:])


def record(h: types_pb2.Health, result: types_pb2.HealthResult, cfg: types_pb2.HealthConfig, started_ns: int) -> None:
    """Adds ``result`` to ``h`` and moves its status by Docker's rules (``started_ns``: when the
    container started, for the start period)."""
    h.log.append(result)
    del h.log[:-KEEP]
    if result.exit_code == 0:
        h.status, h.failing_streak = HEALTHY, 0
        return
    if result.start - started_ns < cfg.start_period_ns and h.status == STARTING:
        return  # a failure while it starts does not count
    h.failing_streak += 1
    if h.failing_streak >= (cfg.retries or DEFAULT_RETRIES):
        h.status = UNHEALTHY


def next_check_ns(h: types_pb2.Health, cfg: types_pb2.HealthConfig, started_ns: int, now_ns: int) -> int:
    """How long until the next check: the start interval while starting inside the start period, else the interval."""
    if h.status == STARTING and now_ns - started_ns < cfg.start_period_ns:
        return cfg.start_interval_ns or DEFAULT_START_INTERVAL
    return cfg.interval_ns or DEFAULT_INTERVAL
