"""Detects the host's cgroup layout: v2 (unified), v1, or hybrid (v1 plus a cgroup2 mount)."""

from __future__ import annotations

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
