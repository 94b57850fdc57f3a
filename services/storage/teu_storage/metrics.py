"""The storage service's Prometheus series, read when scraped (in the scraping thread).

Counts and the layers' bytes are read from the database at each scrape. The bytes of volumes and of
containers' writable layers need a walk of their files: it runs in a thread of its own at most once
a minute, and a scrape reports the last walk's result (none before the first walk ends).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from teu_storage.storage import Storage

WALK_EVERY = 60.0  # seconds between two walks of the volumes and writable layers


class StorageCollector(Collector):
    """teu_images, teu_snapshots, teu_volumes and teu_disk_bytes{kind="images"} (the unpacked layers)."""

    def __init__(self, storage: Storage) -> None:
        self._storage = storage
        self._walked: tuple[int, int] | None = None  # bytes of volumes, of writable layers
        self._walked_at = -WALK_EVERY
        self._walker: threading.Thread | None = None

    def describe(self) -> Iterator[GaugeMetricFamily]:
        """The series without samples (registering asks; nothing is read then)."""
        return self._families(0, 0, 0, 0, None)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """One scrape: counts from the database and the volumes directory, layer sizes as recorded."""
        images, snapshots = self._storage.store.counts()
        layers = sum(self._storage.store.layer_sizes().values())
        return self._families(images, snapshots, len(self._storage.list_volumes()), layers, self._walk())

    def _walk(self) -> tuple[int, int] | None:
        """The last walk's (volumes, writable layers) bytes, starting a new walk when it is due."""
        due = time.monotonic() - self._walked_at >= WALK_EVERY
        if due and (self._walker is None or not self._walker.is_alive()):
            self._walked_at = time.monotonic()
            self._walker = threading.Thread(target=self._measure, name="disk-walk", daemon=True)
            self._walker.start()
        return self._walked

    def _measure(self) -> None:
        s = self._storage
        volumes = sum(max(s.volumes.size(v), 0) for v in s.list_volumes())
        layers = sum(s.snapshot_sizes(sorted(s.store.snapshot_keys())).values())
        self._walked = (volumes, layers)

    def _families(
        self, images: int, snapshots: int, volumes: int, layers: int, walked: tuple[int, int] | None
    ) -> Iterator[GaugeMetricFamily]:
        yield GaugeMetricFamily("teu_images", "Images stored", value=images)
        yield GaugeMetricFamily("teu_snapshots", "Containers' copy-on-write snapshots", value=snapshots)
        yield GaugeMetricFamily("teu_volumes", "Named and anonymous volumes", value=volumes)
        used = GaugeMetricFamily("teu_disk_bytes", "Bytes on disk, by kind", labels=["kind"])
        used.add_metric(["images"], layers)
        if walked is not None:
            used.add_metric(["volumes"], walked[0])
            used.add_metric(["containers"], walked[1])
        yield used
