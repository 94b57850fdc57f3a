"""A leak audit: what an engine still holds for containers it no longer knows, seen from the host.

For the chaos tests and the soak (and an operator who wonders): root filesystem mounts, OCI runtime
states and their ``init`` processes, cgroups, bundles, snapshots and logs, each by the path or pid
that shows it. Every one of them names its container's id, so what belongs to a live container is
told apart from what was left behind.
"""

from __future__ import annotations

import os
from collections.abc import Collection
from pathlib import Path

from teu_api.ids import is_full_id
from teu_runtime import cgroups


def container_of(text: str) -> str:
    """The first full container id among the path components of ``text``, or ""."""
    return next((part for part in text.replace(":", "/").split("/") if is_full_id(part)), "")


def leftovers(
    root: Path, run_dir: Path, live: Collection[str], runtime_pid: int, cgroup_parent: str = cgroups.PARENT
) -> dict[str, list[str]]:
    """What the engine with state under ``root`` and ``run_dir`` holds for containers not in ``live``,
    by kind; empty when nothing was left behind. ``runtime_pid`` and ``cgroup_parent`` locate the
    containers' cgroups (they nest under the runtime service's own)."""

    def gone(name: str) -> bool:
        return name not in live

    cgroup_dirs = [d for parent in cgroups.parent_dirs(Path(f"/proc/{runtime_pid}"), cgroup_parent) for d in _dirs(parent)]
    ours = {d.name for d in cgroup_dirs}  # the ids this engine's runtime made cgroups for
    found = {
        "mounts": [p for p in _mount_points() if p.startswith(f"{root}/") and gone(container_of(p))],
        "runtime states": [str(p) for p in _dirs(run_dir / "runc") + _dirs(run_dir / "crun") if gone(p.name)],
        "init processes": [pid for pid, cid in _runtime_inits() if cid in ours and gone(cid)],
        "cgroups": [str(d) for d in cgroup_dirs if is_full_id(d.name) and gone(d.name)],
        "bundles": [str(p) for p in _dirs(root / "runtime" / "containers") if gone(p.name)],
        "snapshots": [str(p) for p in _dirs(root / "storage" / "snapshots") if gone(p.name)],
        "logs": [str(p) for p in _dirs(root / "logs") if is_full_id(p.name) and gone(p.name)],
    }
    return {kind: items for kind, items in found.items() if items}


def _dirs(base: Path) -> list[Path]:
    try:
        return [p for p in base.iterdir() if p.is_dir()]
    except FileNotFoundError:
        return []


def _mount_points() -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f]


def _runtime_inits() -> list[tuple[str, str]]:
    """(pid, container id) of OCI runtime ``init`` processes (a container created but not started)."""
    out = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/cmdline", "rb") as f:
                cmd = f.read().split(b"\0")
            with open(f"/proc/{entry.name}/cgroup") as f:
                groups = f.read()
        except OSError:
            continue
        if (cmd[1:2] == [b"init"] and os.path.basename(cmd[0]) in (b"runc", b"crun")) or cmd[0].startswith(b"runc:[2:INIT]"):
            out.append((entry.name, container_of(groups)))
    return out
