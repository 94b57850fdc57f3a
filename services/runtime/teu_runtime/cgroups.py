"""Detects the host's cgroup layout: v2 (unified), v1, or hybrid (v1 plus a cgroup2 mount)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class CgroupLayout:
    """What the host's /sys/fs/cgroup looks like."""

    version: int
    hybrid: bool
    v2_controllers: tuple[str, ...]

    def describe(self) -> str:
        """A short human description, e.g. "v1 (hybrid: hugetlb on cgroup2)"."""
        if self.version == 2:
            return "v2"
        if self.hybrid:
            held = ",".join(self.v2_controllers) or "none"
            return f"v1 (hybrid: {held} on cgroup2)"
        return "v1"


def detect(root: Path = Path("/sys/fs/cgroup")) -> CgroupLayout:
    """Reads the layout under ``root``."""
    unified = root / "cgroup.controllers"
    if unified.exists():
        return CgroupLayout(2, False, tuple(unified.read_text().split()))
    hybrid = root / "unified" / "cgroup.controllers"
    if hybrid.exists():
        return CgroupLayout(1, True, tuple(hybrid.read_text().split()))
    return CgroupLayout(1, False, ())


def swap_limit(layout: CgroupLayout, root: Path = Path("/sys/fs/cgroup")) -> bool:
    """Whether the kernel accounts swap, so a container's memory-plus-swap can be limited (v1 needs
    swapaccount; v2 has memory.swap.max in every cgroup but the root when it does)."""
    if layout.version == 2:
        own = Path("/proc/self/cgroup").read_text().strip().rpartition("::")[2].lstrip("/")
        return (root / own / "memory.swap.max").exists() or any(root.glob("*/memory.swap.max"))
    return (root / "memory" / "memory.memsw.limit_in_bytes").exists()


PARENT = "teu"  # containers' cgroups are PARENT/<id>, relative to this service's own cgroups


def parent_dirs(proc: Path = Path("/proc/self")) -> list[Path]:
    """The directories the OCI runtime makes containers' cgroups in: PARENT under this process's
    cgroup in every mounted hierarchy (a relative cgroupsPath is resolved that way)."""
    mounts: dict[str, list[tuple[str, Path]]] = {}  # hierarchy key -> (mount root, mount point)
    for line in (proc / "mountinfo").read_text().splitlines():
        fields, _, tail = line.partition(" - ")
        fstype, _, options = (tail.split() + ["", "", ""])[:3]
        parts = fields.split()
        if fstype == "cgroup2":
            key = ""
        elif fstype == "cgroup":
            key = ",".join(sorted(o for o in options.split(",") if o not in ("rw", "ro")))
        else:
            continue
        mounts.setdefault(key, []).append((parts[3], Path(parts[4])))
    dirs = []
    for line in (proc / "cgroup").read_text().splitlines():
        _, controllers, own = line.split(":", 2)
        for root, point in mounts.get(",".join(sorted(controllers.split(","))) if controllers else "", []):
            if own == root or own.startswith(root.rstrip("/") + "/"):
                dirs.append(point / own[len(root.rstrip("/")) :].lstrip("/") / PARENT)
                break
    return dirs


def open_parents() -> None:
    """Makes existing parent directories 0755: a container's root, which may be an unprivileged host
    uid under user namespace remapping, must pass through them to its own cgroup (an engine that
    ran its OCI runtime under umask 077 left them 0700)."""
    for d in parent_dirs():
        try:
            if d.is_dir():
                os.chmod(d, 0o755)
        except OSError:
            continue
