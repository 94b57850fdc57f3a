"""The logs service's Prometheus series, read when scraped (in the scraping thread)."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from teu_logs.logdirs import LogStore


class LogCollector(Collector):
    """teu_container_log_bytes_total{id} and teu_disk_bytes{kind="logs"}."""

    def __init__(self, store: LogStore) -> None:
        self._store = store

    def describe(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        """The series without samples (registering asks; nothing is read then)."""
        return self._families({}, 0)

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        """One scrape: each log's position, and the bytes the log files take."""
        return self._families(self._store.written(), self._store.disk_bytes())

    def _families(self, written: dict[str, int], disk: int) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        logged = CounterMetricFamily(
            "teu_container_log_bytes", "Bytes the container has logged (stdout and stderr, in the log's format)", labels=["id"]
        )
        for cid, end in sorted(written.items()):
            logged.add_metric([cid], end)
        used = GaugeMetricFamily("teu_disk_bytes", "Bytes on disk, by kind", labels=["kind"])
        used.add_metric(["logs"], disk)
        yield from (logged, used)
