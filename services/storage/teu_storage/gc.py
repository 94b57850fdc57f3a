"""Garbage collection by reachability: layers no image reaches, snapshot dirs no row owns.

Roots are the images (an image is deleted only by RemoveImage/Prune, and never while a snapshot uses
it) and the layers that operations in flight have pinned (unpacked but not yet recorded). A layer
nothing reaches from a root is garbage, whether it is recorded in the database or only on disk
(a crash between unpacking and recording). :func:`mark` and :func:`plan` are the pure decision;
:class:`Collector` applies it.

What a caller may rely on: :meth:`Collector.collect` never removes a layer that an image lists or
that is pinned in a :meth:`LayerStore.pinning` block, since it decides and removes while holding
the layer store still; it is safe to run at any time, from any thread.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable, Set
from dataclasses import dataclass
from pathlib import Path

import structlog

from teu_storage.layers import remove_tree
from teu_storage.layerstore import LayerStore
from teu_storage.metadata import Store

__all__ = ["Collector", "Plan", "mark", "plan"]

log = structlog.get_logger()


def mark(image_layers: Iterable[Iterable[str]], pinned: Iterable[str]) -> set[str]:
    """Diff ids reachable from the images' layer lists and the pinned layers."""
    live = set(pinned)
    for layers in image_layers:
        live.update(layers)
    return live


@dataclass(frozen=True)
class Plan:
    """What a sweep removes: database rows and on-disk layer dirs."""

    rows: frozenset[str]
    dirs: frozenset[str]


def plan(live: Set[str], recorded: Iterable[str], on_disk: Iterable[str]) -> Plan:
    """Recorded layers and layer dirs outside ``live`` go."""
    return Plan(
        rows=frozenset(d for d in recorded if d not in live),
        dirs=frozenset(d for d in on_disk if d not in live),
    )


class Collector:
    """Removes what nothing references from ``layers`` and from the snapshot dirs under ``snapshots``."""

    def __init__(self, store: Store, layers: LayerStore, snapshots: Path) -> None:
        self._store = store
        self._layers = layers
        self._snapshots = snapshots

    def collect(self) -> int:
        """Deletes layers no image reaches (rows, dirs, links, tar-splits); returns bytes reclaimed."""
        dirs = self._layers.dirs
        with self._layers.exclusive() as pinned:
            live = mark(self._store.layer_lists(), pinned)
            recorded = self._store.layer_sizes()
            on_disk = dirs.on_disk()
            doomed = plan(live, recorded, on_disk)
            self._store.delete_layers(sorted(doomed.rows))
            trash = [dirs.take_out(d) for d in sorted(doomed.dirs)]
            dirs.tidy(live & on_disk)
        for t in trash:  # out of the lock: the trees are out of view already
            remove_tree(t)
        reclaimed = sum(recorded.get(d, 0) for d in doomed.dirs)
        if doomed.dirs or doomed.rows:
            log.info("layers_collected", layers=len(doomed.dirs), rows=len(doomed.rows), reclaimed=reclaimed)
        return reclaimed

    def sweep_snapshots(self) -> None:
        """Removes snapshot dirs no row owns (a crash in the middle of a create or remove); for start-up."""
        keys = self._store.snapshot_keys()
        for entry in self._snapshots.iterdir():
            if entry.name not in keys:
                log.warning("orphan_snapshot_removed", path=str(entry))
                shutil.rmtree(entry)
