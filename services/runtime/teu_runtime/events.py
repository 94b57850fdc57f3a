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


def died(c: runtime_pb2.Container, oom_told: bool = False) -> list[Event]:
    """The events of an exit recorded in ``c``: oom first when the kernel killed it for memory and the
    kernel's report of that kill was not told already (``oom_told``, see oomwatch.py)."""
    out = [container(c, "oom")] if c.oom_killed and not oom_told else []
    return [*out, container(c, "die", exitCode=str(c.exit_code))]


def oom(c: runtime_pb2.Container, report: types_pb2.OomKill) -> Event:
    """The oom event of the kernel's report of a kill in ``c``: whose limit, which process, what use."""
    told = {"limit": report.limit, "pid": str(report.pid), "command": report.command}
    if report.cgroup:
        told |= {"cgroup": report.cgroup, "usage": str(report.usage_bytes), "memoryLimit": str(report.limit_bytes)}
    return container(c, "oom", **told)


def volumes(c: runtime_pb2.Container, action: str) -> list[Event]:
    """mount (at a start) or unmount (at an exit) events of the named volumes ``c`` mounts."""
    out = []
    for cm in c.spec.mounts:
        if not cm.volume:
            continue
        told = {"container": c.id, "driver": "local"}
        if action == "mount":
            told |= {"destination": cm.mount.destination, "read/write": str("ro" not in cm.mount.options).lower()}
        out.append(Event("volume", action, cm.volume, told))
    return out


def exec_action(kind: str, args: Sequence[str]) -> str:
    """Docker's action of an exec event: ``exec_start: sh -c date``."""
    return f"{kind}: {' '.join(args)}".strip()


def network(n: types_pb2.Network, action: str, **extra: str) -> Event:
    """An event of network ``n`` (create, destroy, connect, disconnect)."""
    return Event("network", action, n.id, {"name": n.name, "type": "bridge", **extra})
