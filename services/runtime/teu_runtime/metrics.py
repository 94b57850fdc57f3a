"""Per-container Prometheus series on the runtime's metrics endpoint, read when scraped.

The records are read on the service's event loop (the one thread that uses the database); the
cgroup files of the running containers in the scraping thread. Names follow Prometheus conventions;
every series carries ``id``, ``name`` and ``image``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Final

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from teu_api.runtime.v1 import runtime_pb2
from teu_api.types.v1 import types_pb2
from teu_runtime import stats
from teu_runtime.database import Store

STATES: Final = {types_pb2.CONTAINER_STATE_CREATED: "created", types_pb2.CONTAINER_STATE_RUNNING: "running",
                 types_pb2.CONTAINER_STATE_EXITED: "exited"}  # fmt: skip
LABELS: Final = ["id", "name", "image"]
SCRAPE_TIMEOUT: Final = 5.0


class ContainerCollector(Collector):
    """teu_container_* series and teu_containers{state} of one runtime."""

    def __init__(self, store: Store, loop: asyncio.AbstractEventLoop) -> None:
        self._store = store
        self._loop = loop

    async def _records(self) -> list[runtime_pb2.Container]:
        return self._store.list()

    def describe(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        """The series without samples (what registering asks, on the event loop: no records read then)."""
        return self._families([])

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        """One scrape: the records as the event loop has them, then each running container's cgroups."""
        return self._families(asyncio.run_coroutine_threadsafe(self._records(), self._loop).result(SCRAPE_TIMEOUT))

    def _families(self, containers: list[runtime_pb2.Container]) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        state = GaugeMetricFamily("teu_container_state", "1 for the state the container is in", labels=[*LABELS, "state"])
        restarts = CounterMetricFamily("teu_container_restarts", "Times the container was started again", labels=LABELS)
        cpu = CounterMetricFamily("teu_container_cpu_seconds", "CPU time used by the container", labels=LABELS)
        memory = GaugeMetricFamily("teu_container_memory_usage_bytes", "Memory the container uses", labels=LABELS)
        working = GaugeMetricFamily("teu_container_memory_working_set_bytes", "Usage less inactive file pages (the kubelet's)",
                                    labels=LABELS)  # fmt: skip
        limit = GaugeMetricFamily("teu_container_memory_limit_bytes", "The container's memory limit (the host's without one)",
                                  labels=LABELS)  # fmt: skip
        pids = GaugeMetricFamily("teu_container_pids", "Processes in the container", labels=LABELS)
        rx = CounterMetricFamily("teu_container_network_receive_bytes", "Bytes received, all interfaces", labels=LABELS)
        tx = CounterMetricFamily("teu_container_network_transmit_bytes", "Bytes sent, all interfaces", labels=LABELS)
        oom = CounterMetricFamily("teu_container_oom_events", "Processes of it the kernel's OOM killer killed", labels=LABELS)
        by_state = GaugeMetricFamily("teu_containers", "Containers by state", labels=["state"])
        counts = dict.fromkeys(STATES.values(), 0)
        for c in containers:
            key = [c.id, c.name, c.spec.image_ref]
            name = STATES.get(c.state, "unknown")
            counts[name] = counts.get(name, 0) + 1
            state.add_metric([*key, name], 1)
            restarts.add_metric(key, c.restart_count)
            oom.add_metric(key, c.oom_kills)
            if c.state != types_pb2.CONTAINER_STATE_RUNNING or c.pid <= 0:
                continue
            s = stats.read(c.id, c.name, c.pid, c.paused)
            cpu.add_metric(key, s.cpu_ns / 1e9)
            memory.add_metric(key, s.memory_usage)
            working.add_metric(key, s.memory_working_set)
            limit.add_metric(key, s.memory_limit)
            pids.add_metric(key, s.pids)
            rx.add_metric(key, sum(n.rx_bytes for n in s.networks))
            tx.add_metric(key, sum(n.tx_bytes for n in s.networks))
        for name, count in counts.items():
            by_state.add_metric([name], count)
        yield from (state, restarts, cpu, memory, working, limit, pids, rx, tx, oom, by_state)
