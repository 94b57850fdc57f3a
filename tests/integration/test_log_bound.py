"""A log's disk use stays within its bound whatever the writer's speed, with or without the logs service."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import Engine
from teu.client import Client, ContainerOptions
from teu.testing import wait_until
from teu_runtime import conmon

MIB = 1 << 20
# --log-opt max-size=1m --log-opt max-files=2: the rotated log keeps 2 MiB; conmon itself starts anew a
# file that is not rotated at 16 MiB (the backstop: 4 x max-size, at least 16 MiB). With the logs service
# up the disk holds no more than the sum; with it down, a rotation it left half-done (the file renamed,
# the reopen not asked) lets conmon fill the renamed file to the backstop and a new one after it: twice.
RETAINED = 2 * MIB
BACKSTOP = 16 * MIB


def log_bytes(log_dir: Path) -> int:
    """Bytes of every file of a container's log, as they are now."""
    total = 0
    for p in log_dir.glob("*.log"):
        try:
            total += p.stat().st_size
        except FileNotFoundError:  # rotated or deleted meanwhile
            pass
    return total


def peak_while(log_dir: Path, seconds: float) -> int:
    """The most the log held, sampled every 5 ms for ``seconds``."""
    peak = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        peak = max(peak, log_bytes(log_dir))
        time.sleep(0.005)
    return peak


@pytest.fixture()
def yes(client: Client, engine: Engine) -> Iterator[tuple[str, Path]]:
    """A container running ``yes`` (as fast as conmon can log) with a 2 x 1 MiB log, and its log directory."""
    cid = client.run_detached(ContainerOptions(image="busybox", cmd=["yes"], log_opts={"max-size": "1m", "max-files": "2"}))
    try:
        yield cid, engine.root / "logs" / cid
    finally:
        client.remove(cid, force=True)


def test_a_fast_writer_stays_within_the_bound(client: Client, yes: tuple[str, Path]) -> None:
    """With the logs service up, a log under ``yes`` never holds more than what it keeps plus conmon's
    backstop, and once the container stops no more than max-size x max-files, its newest lines still there."""
    cid, log_dir = yes
    peak = peak_while(log_dir, 4)
    client.stop(cid, timeout=0)
    wait_until(lambda: log_bytes(log_dir) <= RETAINED, timeout=10, what="retention after the exit")
    assert peak <= RETAINED + BACKSTOP
    tail = [line.data for line in client.logs(cid, tail=100)]
    assert tail == [b"y\n"] * 100


def conmon_bounds_logs() -> bool:
    """Whether this host's conmon may bound a log itself (2.1.9 or later, see teu_runtime.conmon)."""
    line = subprocess.run(["conmon", "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    return conmon.bounds_logs_safely(line)


@pytest.mark.skipif(not conmon_bounds_logs(), reason="conmon before 2.1.9 cannot bound a log without losing lines")
def test_the_bound_holds_while_the_logs_service_is_down(client: Client, engine: Engine, yes: tuple[str, Path]) -> None:
    """With the logs service killed (and not restarted), conmon's backstop alone keeps ``yes`` within the
    bound; once the service is back, retention brings the stopped container's log down to its bound."""
    cid, log_dir = yes
    assert engine.proc is not None
    os.kill(engine.proc.pid, signal.SIGSTOP)  # the supervisor would restart the logs service at once
    try:
        os.kill(engine.service_pid("logs"), signal.SIGKILL)
        peak = peak_while(log_dir, 3)
    finally:
        os.kill(engine.proc.pid, signal.SIGCONT)
    client.stop(cid, timeout=0)
    assert peak <= RETAINED + 2 * BACKSTOP
    wait_until(lambda: log_bytes(log_dir) <= RETAINED, timeout=20, what="retention once the logs service is back")


def test_a_fast_writer_loses_no_line_past_conmons_own_bound(client: Client) -> None:
    """18 MB of numbered lines as fast as conmon logs them, rotated at 1 MiB: every line is in the log
    (more than conmon's 16 MiB backstop went through, which must never cut a log it reopened)."""
    n = 2_600_000
    cid = client.create(
        ContainerOptions(image="busybox", cmd=["seq", str(n)], log_opts={"max-size": "1m", "max-files": "1000"})
    ).id
    try:
        client.start(cid)
        client.wait(cid)
        numbers = b"".join(line.data for line in client.logs(cid)).split()
        assert len(numbers) == n and numbers[0] == b"1" and numbers[-1] == str(n).encode()
        assert numbers == [str(i).encode() for i in range(1, n + 1)]
    finally:
        client.remove(cid, force=True)
