"""Docker's health rules, decided without a container or a clock."""

from __future__ import annotations

from teu_api.types.v1 import types_pb2 as t
from teu_runtime import health

S = 10**9


def result(code: int, at: int) -> t.HealthResult:
    return t.HealthResult(start=at, end=at + 1, exit_code=code)


def test_status_moves_by_docker_rules() -> None:
    cfg = t.HealthConfig(test=["CMD", "true"], retries=2, start_period_ns=10 * S)
    h = t.Health(status=health.STARTING)
    health.record(h, result(1, 1 * S), cfg, 0)  # inside the start period: does not count
    assert (h.status, h.failing_streak) == ("starting", 0)
    health.record(h, result(0, 2 * S), cfg, 0)
    assert h.status == "healthy"
    health.record(h, result(1, 3 * S), cfg, 0)  # a failure after a success counts, start period or not
    assert (h.status, h.failing_streak) == ("healthy", 1)
    health.record(h, result(1, 4 * S), cfg, 0)
    assert (h.status, h.failing_streak) == ("unhealthy", 2)
    for i in range(10):
        health.record(h, result(0, (5 + i) * S), cfg, 0)
    assert (h.status, h.failing_streak, len(h.log)) == ("healthy", 0, health.KEEP)


def test_intervals_and_commands() -> None:
    cfg = t.HealthConfig(
        test=["CMD-SHELL", "curl -f localhost"], interval_ns=30 * S, start_interval_ns=1 * S, start_period_ns=60 * S
    )
    starting = t.Health(status=health.STARTING)
    assert health.next_check_ns(starting, cfg, 0, 5 * S) == 1 * S
    assert health.next_check_ns(starting, cfg, 0, 70 * S) == 30 * S
    assert health.next_check_ns(t.Health(status="healthy"), t.HealthConfig(), 0, 0) == health.DEFAULT_INTERVAL
    assert health.argv(cfg) == ["/bin/sh", "-c", "curl -f localhost"]
    assert health.argv(t.HealthConfig(test=["CMD", "true", "x"])) == ["true", "x"]
