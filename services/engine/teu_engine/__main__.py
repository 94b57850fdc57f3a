"""``teu-engine``: starts the four services (and the front doors: the Docker API unless
``TEU_DOCKER_API=0``, the Kubernetes CRI unless ``TEU_CRI=0``, the web page unless ``TEU_WEB=0``), restarts
any that dies, stops them on SIGTERM.

Containers do not depend on it or on any service: each has its own conmon. Stopping the engine
stops the services only. ``--tls-listen`` (with ``--tls-ca/--tls-cert/--tls-key``, or ``TEU_TLS_*``)
is handed to the gateway alone: it serves the API on TCP too, mutual TLS only. ``--docker-tls-listen``
(``TEU_DOCKER_TLS_LISTEN``) does the same for the Docker API service, and ``--web-tls-listen``
(``TEU_WEB_TLS_LISTEN``) for the web page, with the same files and roles.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from teu_common import config as configmod
from teu_common import perms
from teu_common.config import SERVICES, Config, TlsListen

#: Delays before restarting a service that died, growing while it keeps dying (back to the first once
#: it stayed up 30 s): a service that cannot start costs one attempt every 2 s, not a busy loop, and
#: the longest wait stays well within how long the gateway's calls wait for a back end (10 s).
RESTART_BACKOFF = (0.2, 0.5, 1.0, 2.0)
#: The front doors (clients of the gateway's public API) and the setting that turns each off ("0").
FRONT_DOORS = {"dockerapi": "TEU_DOCKER_API", "cri": "TEU_CRI", "web": "TEU_WEB"}


@dataclass
class Child:
    """One supervised service."""

    name: str
    args: list[str] = field(default_factory=list)
    proc: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    started: float = field(default=0.0)
    restart_at: float | None = None  # when a dead service is due to start again


def _spawn(child: Child, cfg: Config, logs: Path, first: bool = False) -> None:
    """Starts one service; ``first``: this is the engine starting, not a service restarted (the
    runtime then applies Docker's engine-start rule of restart policies)."""
    out = open(logs / f"{child.name}.log", "ab")  # noqa: SIM115 - handed to the child
    child.proc = subprocess.Popen(
        [sys.executable, "-m", f"teu_{child.name}", "--root", str(cfg.root), "--run-dir", str(cfg.run_dir), *child.args],
        env={**os.environ, "TEU_ENGINE_START": "1" if first else "0"},
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


def supervise(cfg: Config, tls: TlsListen | None = None, doors: Mapping[str, TlsListen] | None = None) -> int:
    """Runs until SIGTERM/SIGINT; returns the exit status. ``tls`` goes to the gateway only, each of
    ``doors`` (a front door's mutual-TLS listener: the Docker API's, the web page's) to its front door."""
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
    names = [*SERVICES, *(name for name, setting in FRONT_DOORS.items() if os.environ.get(setting, "1") != "0")]
    listeners = {"gateway": tls, **(doors or {})}
    children = [Child(name, listener.argv() if (listener := listeners.get(name)) else []) for name in names]
    for child in children:
        _spawn(child, cfg, logs, first=True)
    while not stopping:
        time.sleep(0.1)
        now = time.monotonic()
        for child in children:
            assert child.proc is not None
            if stopping:
                break
            if child.restart_at is not None:
                if now >= child.restart_at:  # each service on its own clock: one's delay holds up no other
                    child.restart_at = None
                    child.restarts += 1
                    _spawn(child, cfg, logs)
                continue
            code = child.proc.poll()
            if code is None:
                continue
            if now - child.started > 30:
                child.restarts = 0
            delay = RESTART_BACKOFF[min(child.restarts, len(RESTART_BACKOFF) - 1)]
            _say(f"{child.name} exited with {code}; restarting in {delay}s")
            child.restart_at = now + delay
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
    parser.add_argument("--docker-tls-listen", metavar="HOST:PORT",
                        help="serve Docker's API on TCP too, mutual TLS, the --tls-* files ($TEU_DOCKER_TLS_LISTEN)")  # fmt: skip
    parser.add_argument("--web-listen", metavar="HOST:PORT",
                        help="the web page's address, loopback or (with a token) not ($TEU_WEB_LISTEN)")  # fmt: skip
    parser.add_argument("--web-tls-listen", metavar="HOST:PORT",
                        help="serve the web page there too, mutual TLS, the --tls-* files ($TEU_WEB_TLS_LISTEN)")  # fmt: skip
    args = parser.parse_args()
    try:
        tls = configmod.load_tls(args.tls_listen, args.tls_ca, args.tls_cert, args.tls_key)
        wanted = {"dockerapi": args.docker_tls_listen or os.environ.get("TEU_DOCKER_TLS_LISTEN"),
                  "web": args.web_tls_listen or os.environ.get("TEU_WEB_TLS_LISTEN")}  # fmt: skip
        doors = {door: listener for door, address in wanted.items() if address
                 if (listener := configmod.load_tls(address, args.tls_ca, args.tls_cert, args.tls_key))}  # fmt: skip
    except ValueError as exc:
        parser.error(str(exc))
    if args.web_listen:
        os.environ["TEU_WEB_LISTEN"] = args.web_listen  # the web page's service reads it, as it reads the variable
    sys.exit(supervise(configmod.load(args.root, args.run_dir), tls, doors))


if __name__ == "__main__":
    main()
