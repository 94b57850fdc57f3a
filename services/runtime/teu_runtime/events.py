"""The runtime's events, in Docker's spelling: what they say about a container or a network. Pure."""

from __future__ import annotations

from collections.abc import Sequence

from teu_api.runtime.v1 import runtime_pb2
from teu_api.types.v1 import types_pb2
from teu_common.journal import Event


def container(c: runtime_pb2.Container, action: str, **extra: str) -> Event:
    """An event of container ``c``: its labels, name and image, then ``extra`` (exitCode, signal...)."""
    image = c.spec.image_ref or c.spec.image_id
    return Event("container", action, c.id, {**c.spec.labels, "name": c.name, "image": image, **extra})


def died(c: runtime_pb2.Container) -> list[Event]:
    """The events of an exit recorded in ``c``: oom first when the kernel killed it for memory."""
    out = [container(c, "oom")] if c.oom_killed else []
    return [*out, container(c, "die", exitCode=str(c.exit_code))]


def exec_action(kind: str, args: Sequence[str]) -> str:
    """Docker's action of an exec event: ``exec_start: sh -c date``."""
    return f"{kind}: {' '.join(args)}".strip()


def network(n: types_pb2.Network, action: str, **extra: str) -> Event:
    """An event of network ``n`` (create, destroy, connect, disconnect)."""
    return Event("network", action, n.id, {"name": n.name, "type": "bridge", **extra})
