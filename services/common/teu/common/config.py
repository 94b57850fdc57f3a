"""Configuration from one place: flags override ``TEU_*`` environment, which overrides defaults.

A test starts a whole private engine by pointing ``TEU_ROOT`` and ``TEU_RUN`` at a temp dir.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

SERVICES = ("storage", "logs", "runtime", "gateway")
_DEFAULT_METRICS_PORTS = {"gateway": 9471, "runtime": 9472, "storage": 9473, "logs": 9474}


@dataclass(frozen=True)
class Config:
    """Where an engine keeps its state and sockets."""

    root: Path
    run_dir: Path
    metrics_port_base: int | None

    def socket(self, service: str) -> Path:
        """Unix socket of ``service``."""
        return self.run_dir / f"{service}.sock"

    def state_dir(self, service: str) -> Path:
        """State directory owned by ``service``."""
        return self.root / service

    def metrics_port(self, service: str) -> int:
        """Loopback port of ``service``'s /metrics endpoint; 0 picks a free one."""
        if self.metrics_port_base is None:
            return _DEFAULT_METRICS_PORTS[service]
        if self.metrics_port_base == 0:
            return 0
        return self.metrics_port_base + SERVICES.index(service)


def load(root: str | None = None, run_dir: str | None = None) -> Config:
    """Reads the configuration; explicit arguments win over the environment."""
    port = os.environ.get("TEU_METRICS_PORT_BASE")
    return Config(
        root=Path(root or os.environ.get("TEU_ROOT") or "/var/lib/teu"),
        run_dir=Path(run_dir or os.environ.get("TEU_RUN") or "/run/teu"),
        metrics_port_base=int(port) if port is not None else None,
    )
