"""Configuration from one place: flags override ``TEU_*`` environment, which overrides defaults.

A test starts a whole private engine by pointing ``TEU_ROOT`` and ``TEU_RUN`` at a temp dir.
The gateway's optional mutual-TLS listener is configured by ``--tls-*`` flags or ``TEU_TLS_*``
(:func:`load_tls`); only the supervisor and the gateway read them: no other service listens on TCP.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path

SERVICES = ("storage", "logs", "runtime", "gateway")
_DEFAULT_METRICS_PORTS = {"gateway": 9471, "runtime": 9472, "storage": 9473, "logs": 9474, "cri": 9475}
#: Services beyond the four that serve /metrics (front doors), after them in the port order.
FRONT_DOORS = ("cri",)


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
        return self.metrics_port_base + (*SERVICES, *FRONT_DOORS).index(service)


def load(root: str | None = None, run_dir: str | None = None) -> Config:
    """Reads the configuration; explicit arguments win over the environment."""
    port = os.environ.get("TEU_METRICS_PORT_BASE")
    return Config(
        root=Path(root or os.environ.get("TEU_ROOT") or "/var/lib/teu"),
        run_dir=Path(run_dir or os.environ.get("TEU_RUN") or "/run/teu"),
        metrics_port_base=int(port) if port is not None else None,
    )


@dataclass(frozen=True)
class TlsListen:
    """The gateway's TCP listener: ``address`` (HOST:PORT) speaks only mutual TLS, clients must
    present a certificate signed by ``ca``; ``cert`` and ``key`` are the server's own."""

    address: str
    ca: Path
    cert: Path
    key: Path

    def argv(self) -> list[str]:
        """The flags that hand this listener to the gateway."""
        return ["--tls-listen", self.address, "--tls-ca", str(self.ca), "--tls-cert", str(self.cert), "--tls-key", str(self.key)]


def add_tls_flags(parser: argparse.ArgumentParser) -> None:
    """The flags of the gateway's mutual-TLS listener (shared with ``teu-engine``)."""
    parser.add_argument("--tls-listen", metavar="HOST:PORT", help="also serve the API on TCP, mutual TLS only ($TEU_TLS_LISTEN)")
    parser.add_argument("--tls-ca", metavar="PEM", help="CA that signs client certificates ($TEU_TLS_CA)")
    parser.add_argument("--tls-cert", metavar="PEM", help="the server's certificate ($TEU_TLS_CERT)")
    parser.add_argument("--tls-key", metavar="PEM", help="the server's private key ($TEU_TLS_KEY)")


def load_tls(
    listen: str | None = None, ca: str | None = None, cert: str | None = None, key: str | None = None
) -> TlsListen | None:
    """The TLS listener, None when neither ``--tls-listen`` nor ``TEU_TLS_LISTEN`` asks for one;
    explicit arguments win over the environment. ValueError for an incomplete or unusable setting."""
    address = listen or os.environ.get("TEU_TLS_LISTEN")
    if not address:
        return None
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"--tls-listen wants HOST:PORT, got {address!r}")
    given = {
        "ca": ca or os.environ.get("TEU_TLS_CA"),
        "cert": cert or os.environ.get("TEU_TLS_CERT"),
        "key": key or os.environ.get("TEU_TLS_KEY"),
    }
    if missing := [f"--tls-{k} (TEU_TLS_{k.upper()})" for k, v in given.items() if not v]:
        raise ValueError(f"--tls-listen needs {', '.join(missing)}")
    paths = {k: Path(str(v)).absolute() for k, v in given.items()}
    if unreadable := [str(p) for p in paths.values() if not p.is_file()]:
        raise ValueError(f"TLS file not found: {', '.join(unreadable)}")
    return TlsListen(address, paths["ca"], paths["cert"], paths["key"])
