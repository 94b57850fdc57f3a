"""Garbage collection by reachability: the pure decision, apart from any deleting.

Roots are the images (an image is deleted only by RemoveImage/Prune, and never while a snapshot uses
it) and the layers that operations in flight have pinned (unpacked but not yet recorded). A layer
nothing reaches from a root is garbage, whether it is recorded in the database or only on disk
(a crash between unpacking and recording).
"""

from __future__ import annotations

from collections.abc import Iterable, Set
from dataclasses import dataclass

__all__ = ["Plan", "mark", "plan"]


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
