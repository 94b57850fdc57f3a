"""Docker's prune filters (until=, label=, label!=), shared by the gateway and storage. Pure."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from teu_api import times
from teu_api.errors import InvalidArgument

__all__ = ["labelled", "prune_filter"]


def labelled(labels: Mapping[str, str], want: str) -> bool:
    """Whether ``labels`` has ``want``: "key" (any value) or "key=value"."""
    key, eq, value = want.partition("=")
    return key in labels and (not eq or labels[key] == value)


def prune_filter(filters: Sequence[str], now_ns: int) -> Callable[[int, Mapping[str, str]], bool]:
    """Docker's prune filters as a test of (creation time in Unix ns, labels): made before every
    until=, with every label= and none of label!=; InvalidArgument for any other filter."""
    untils, has, lacks = [], [], []
    for f in filters:
        key, eq, value = f.partition("=")
        if key == "until" and eq:
            untils.append(times.time_ns(value, now_ns))
        elif key == "label" and eq:
            has.append(value)
        elif key == "label!" and eq:
            lacks.append(value)
        else:
            raise InvalidArgument(f"invalid filter {f[:100]!r}: prune takes until=, label= and label!=")

    def kept(created: int, labels: Mapping[str, str]) -> bool:
        return (
            all(created < u for u in untils)
            and all(labelled(labels, v) for v in has)
            and not any(labelled(labels, v) for v in lacks)
        )

    return kept
