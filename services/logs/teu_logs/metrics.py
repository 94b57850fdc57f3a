"""The logs service's Prometheus series, read when scraped (in the scraping thread).

The series of a container carry its ``name`` and ``image``, which only the runtime knows: a scrape
asks the runtime for them (one ListContainers, at most 2 s; without an answer they are empty).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Mapping

import grpc
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from teu_api.runtime.v1 import runtime_pb2, runtime_pb2_grpc
from teu_logs.logdirs import LogStore

NAMES_TIMEOUT = 2.0


class LogCollector(Collector):
    """teu_container_log_bytes_total{id, name, image} and teu_disk_bytes{kind="logs"}."""

    def __init__(self, store: LogStore, runtime: grpc.aio.Channel, loop: asyncio.AbstractEventLoop) -> None:
        self._store = store
        self._runtime = runtime_pb2_grpc.RuntimeServiceStub(runtime)
        self._loop = loop

    def describe(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        """The series without samples (registering asks; nothing is read then)."""
        return self._families({}, {}, 0)

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        """One scrape: each log's position, the containers' names, and the bytes the log files take."""
        written = self._store.written()
        return self._families(written, self._names() if written else {}, self._store.disk_bytes())

    def _names(self) -> dict[str, tuple[str, str]]:
        async def ask() -> runtime_pb2.ListContainersResponse:
            return await self._runtime.ListContainers(runtime_pb2.ListContainersRequest(all=True), timeout=NAMES_TIMEOUT)

        try:
            listed = asyncio.run_coroutine_threadsafe(ask(), self._loop).result(NAMES_TIMEOUT + 1)
        except (grpc.aio.AioRpcError, TimeoutError):
            return {}
        return {c.id: (c.name, c.spec.image_ref) for c in listed.containers}

    def _families(
        self, written: Mapping[str, int], names: Mapping[str, tuple[str, str]], disk: int
    ) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        logged = CounterMetricFamily(
            "teu_container_log_bytes",
            "Bytes the container has logged (stdout and stderr, in the log's format)",
            labels=["id", "name", "image"],
        )
        for cid, end in sorted(written.items()):
            logged.add_metric([cid, *names.get(cid, ("", ""))], end)
        used = GaugeMetricFamily("teu_disk_bytes", "Bytes on disk, by kind", labels=["kind"])
        used.add_metric(["logs"], disk)
        yield from (logged, used)
