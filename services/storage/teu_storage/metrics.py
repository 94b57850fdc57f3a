"""The storage service's Prometheus series, read when scraped (in the scraping thread)."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from teu_storage.storage import Storage


class StorageCollector(Collector):
    """teu_images, teu_snapshots, teu_volumes and teu_disk_bytes{kind="images"} (the unpacked layers)."""

    def __init__(self, storage: Storage) -> None:
        self._storage = storage

    def describe(self) -> Iterator[GaugeMetricFamily]:
        """The series without samples (registering asks; nothing is read then)."""
        return self._families(0, 0, 0, 0)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """One scrape: counts from the database and the volumes directory, layer sizes as recorded."""
        images, snapshots = self._storage.store.counts()
        layers = sum(self._storage.store.layer_sizes().values())
        return self._families(images, snapshots, len(self._storage.list_volumes()), layers)

    def _families(self, images: int, snapshots: int, volumes: int, layers: int) -> Iterator[GaugeMetricFamily]:
        yield GaugeMetricFamily("teu_images", "Images stored", value=images)
        yield GaugeMetricFamily("teu_snapshots", "Containers' copy-on-write snapshots", value=snapshots)
        yield GaugeMetricFamily("teu_volumes", "Named and anonymous volumes", value=volumes)
        used = GaugeMetricFamily("teu_disk_bytes", "Bytes on disk, by kind", labels=["kind"])
        used.add_metric(["images"], layers)
        yield used
