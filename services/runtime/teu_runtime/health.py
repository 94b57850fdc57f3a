"""Healthchecks: Docker's rules for a container's health (pure), and one check run in it.

A check runs the test as a process of the container (``<runtime> exec``, with the container's user,
environment and confinement), with no exec session, conmon or log of its own: its output is kept in
the result (at most 4 KiB) and nowhere else. One that outlives its timeout is killed.

Status: ``starting`` until the first success; ``healthy`` after a success; ``unhealthy`` once
``retries`` checks in a row failed. Failures inside the start period do not count (a success there
ends it), and checks there come every start interval instead of every interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
from pathlib import Path
from typing import Any, Final

from teu_api.types.v1 import types_pb2

DEFAULT_INTERVAL: Final = 30 * 10**9
DEFAULT_TIMEOUT: Final = 30 * 10**9
DEFAULT_START_INTERVAL: Final = 5 * 10**9
DEFAULT_RETRIES: Final = 3
KEEP: Final = 5  # results kept, as Docker
MAX_OUTPUT: Final = 4096
STARTING, HEALTHY, UNHEALTHY = "starting", "healthy", "unhealthy"


def argv(cfg: types_pb2.HealthConfig) -> list[str]:
    """The check's command: CMD's arguments, or CMD-SHELL's command under /bin/sh -c."""
    return ["/bin/sh", "-c", cfg.test[1]] if cfg.test[0] == "CMD-SHELL" else list(cfg.test[1:])


def record(h: types_pb2.Health, result: types_pb2.HealthResult, cfg: types_pb2.HealthConfig, started_ns: int) -> None:
    """Adds ``result`` to ``h`` and moves its status by Docker's rules (``started_ns``: when the
    container started, for the start period)."""
    h.log.append(result)
    del h.log[:-KEEP]
    if result.exit_code == 0:
        h.status, h.failing_streak = HEALTHY, 0
        return
    if result.start - started_ns < cfg.start_period_ns and h.status == STARTING:
        return  # a failure while it starts does not count
    h.failing_streak += 1
    if h.failing_streak >= (cfg.retries or DEFAULT_RETRIES):
        h.status = UNHEALTHY


def next_check_ns(h: types_pb2.Health, cfg: types_pb2.HealthConfig, started_ns: int, now_ns: int) -> int:
    """How long until the next check: the start interval while starting inside the start period, else the interval."""
    if h.status == STARTING and now_ns - started_ns < cfg.start_period_ns:
        return cfg.start_interval_ns or DEFAULT_START_INTERVAL
    return cfg.interval_ns or DEFAULT_INTERVAL


async def check(
    runtime: str, runtime_root: Path, cid: str, process: dict[str, Any], workdir: Path, timeout_ns: int
) -> types_pb2.HealthResult:
    """Runs one check in container ``cid`` (``process``: its OCI process) and returns its result:
    exit code -1 when it timed out or could not run."""
    workdir.mkdir(exist_ok=True)
    spec, pidfile = workdir / "process.json", workdir / "pid"
    spec.write_text(json.dumps(process))
    pidfile.unlink(missing_ok=True)
    start = time.time_ns()
    proc = await asyncio.create_subprocess_exec(
        runtime, f"--root={runtime_root}", "exec", "--process", str(spec), "--pid-file", str(pidfile), cid,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), (timeout_ns or DEFAULT_TIMEOUT) / 1e9)
        code = proc.returncode if proc.returncode is not None else -1
        text = out[:MAX_OUTPUT].decode(errors="replace")
    except TimeoutError:
        _kill_check(pidfile)
        proc.kill()
        await proc.wait()
        code, text = -1, f"Health check exceeded timeout ({(timeout_ns or DEFAULT_TIMEOUT) / 1e9:g}s)"
    return types_pb2.HealthResult(start=start, end=time.time_ns(), exit_code=code, output=text)


def _kill_check(pidfile: Path) -> None:
    """Kills the check's process inside the container (the OCI runtime's exec left it there)."""
    with contextlib.suppress(OSError, ValueError):
        os.kill(int(pidfile.read_text().strip()), signal.SIGKILL)
