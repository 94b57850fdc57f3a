"""``teu-engine``: starts the four services, restarts any that dies, stops them on SIGTERM.

Containers do not depend on it or on any service: each has its own conmon. Stopping the engine
stops the services only. ``--tls-listen`` (with ``--tls-ca/--tls-cert/--tls-key``, or ``TEU_TLS_*``)
is handed to the gateway alone: it serves the API on TCP too, mutual TLS only.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from teu_common import config as configmod
from teu_common import perms
from teu_common.config import SERVICES, Config, TlsListen

RESTART_BACKOFF = (0.2, 0.5, 1.0, 2.0, 5.0)


@dataclass
class Child:
    """One supervised service."""

    name: str
    args: list[str] = field(default_factory=list)
    proc: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    started: float = field(default=0.0)


def _spawn(child: Child, cfg: Config, logs: Path) -> None:
    out = open(logs / f"{child.name}.log", "ab")  # noqa: SIM115 - handed to the child
    child.proc = subprocess.Popen(
        [sys.executable, "-m", f"teu_{child.name}", "--root", str(cfg.root), "--run-dir", str(cfg.run_dir), *child.args],
        stdin=subprocess.DEVNULL,
        stdout=out,
        stderr=out,
        start_new_session=True,
    )
    out.close()
    child.started = time.monotonic()
    _say(f"started {child.name} (pid {child.proc.pid})")


def _say(msg: str) -> None:
    print(f"teu-engine: {msg}", file=sys.stderr, flush=True)


def supervise(cfg: Config, tls: TlsListen | None = None) -> int:
    """Runs until SIGTERM/SIGINT; returns the exit status. ``tls`` goes to the gateway only."""
    perms.lock_down()
    perms.state_root(cfg.root)
    logs = perms.private_dir(cfg.root / "engine")
    perms.socket_dir(cfg.run_dir)
    pidfile = cfg.run_dir / "engine.pid"
    pidfile.write_text(f"{os.getpid()}\n")
    stopping = False

    def stop(_sig: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    children = [Child(name, tls.argv() if tls and name == "gateway" else []) for name in SERVICES]
    for child in children:
        _spawn(child, cfg, logs)
    while not stopping:
        time.sleep(0.1)
        for child in children:
            assert child.proc is not None
            code = child.proc.poll()
            if code is None or stopping:
                continue
            if time.monotonic() - child.started > 30:
                child.restarts = 0
            delay = RESTART_BACKOFF[min(child.restarts, len(RESTART_BACKOFF) - 1)]
            _say(f"{child.name} exited with {code}; restarting in {delay}s")
            time.sleep(delay)
            child.restarts += 1
            _spawn(child, cfg, logs)
    for child in reversed(children):
        if child.proc and child.proc.poll() is None:
            child.proc.send_signal(signal.SIGTERM)
    for child in reversed(children):
        if child.proc:
            try:
                child.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.proc.kill()
                child.proc.wait()
    pidfile.unlink(missing_ok=True)
    _say("stopped")
    return 0


def main() -> None:
    """Entry point."""
    parser = argparse.ArgumentParser(prog="teu-engine", description="Runs Teu's four services.")
    parser.add_argument("--root", help="state root (default $TEU_ROOT or /var/lib/teu)")
    parser.add_argument("--run-dir", help="socket dir (default $TEU_RUN or /run/teu)")
    configmod.add_tls_flags(parser)
    args = parser.parse_args()
    try:
        tls = configmod.load_tls(args.tls_listen, args.tls_ca, args.tls_cert, args.tls_key)
    except ValueError as exc:
        parser.error(str(exc))
    sys.exit(supervise(configmod.load(args.root, args.run_dir), tls))


if __name__ == "__main__":
    main()
