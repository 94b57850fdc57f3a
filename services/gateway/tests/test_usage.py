"""Docker's derived stats: CPU percent between two readings, memory percent of the limit."""

from __future__ import annotations

from teu_api.types.v1 import types_pb2 as t
from teu_gateway.usage import usage


def test_cpu_and_memory_percent() -> None:
    prev = t.ContainerStats(id="x", read_at=1_000_000_000, cpu_ns=5_000_000_000)
    cur = t.ContainerStats(id="x", read_at=2_000_000_000, cpu_ns=5_500_000_000, memory_usage=25, memory_limit=100)
    u = usage(cur, prev)
    assert (round(u.cpu_percent), u.memory_percent) == (50, 25.0)
    assert usage(cur, None).cpu_percent == 0.0
