"""A log's disk use stays within its bound whatever the writer's speed, with or without the logs service."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import Engine
from teu.client import Client, ContainerOptions
from teu.testing import wait_until
from teu_api.types.v1 import types_pb2

MIB = 1 << 20
# --log-opt max-size=1m --log-opt max-files=2: the rotated log keeps 2 MiB; no log file grows past 64 MiB
# (the backstop: 4 x max-size, at least 64 MiB, conmon's RLIMIT_FSIZE). Whether the logs service is up
# or down, the disk holds no more than the sum, and the overshoot of the rotation under way when the
# service died: the file it had just renamed holds what conmon wrote between the check and the rename
# (seen: 0.2 MiB under `yes`), at most one max-size more.
RETAINED = 2 * MIB
BACKSTOP = 64 * MIB
IN_FLIGHT = MIB


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
    # the last rotation after the exit may still be under way (a read then once found no line): the lines
    # must be there once it is done
    wait_until(lambda: [line.data for line in client.logs(cid, tail=100)] == [b"y\n"] * 100, timeout=10, what="the last lines")


def test_the_bound_holds_while_the_logs_service_is_down(client: Client, engine: Engine, yes: tuple[str, Path]) -> None:
    """With the logs service killed (and not restarted), the backstop alone keeps ``yes`` within the
    bound: conmon, the container and its log outlive the outage, and once the service is back the log
    rotates again, its newest lines written after the outage, and the stopped container's log comes
    down to its bound."""
    cid, log_dir = yes
    assert engine.proc is not None
    os.kill(engine.proc.pid, signal.SIGSTOP)  # the supervisor would restart the logs service at once
    try:
        os.kill(engine.service_pid("logs"), signal.SIGKILL)
        peak = peak_while(log_dir, 3)
    finally:
        os.kill(engine.proc.pid, signal.SIGCONT)
    assert peak <= RETAINED + BACKSTOP + IN_FLIGHT
    wait_until(lambda: log_bytes(log_dir) < BACKSTOP, timeout=20, what="rotation once the logs service is back")
    assert client.inspect(cid).summary.state == types_pb2.CONTAINER_STATE_RUNNING
    client.stop(cid, timeout=0)
    wait_until(lambda: log_bytes(log_dir) <= RETAINED, timeout=20, what="retention once the logs service is back")
    assert [line.data for line in client.logs(cid, tail=100)] == [b"y\n"] * 100


def test_a_container_has_no_file_size_limit_of_its_conmon(client: Client) -> None:
    """The log's backstop is conmon's own limit: the container gets the engine's (unlimited here) and
    SIGXFSZ's default action, as under Docker, and can write a file larger than the backstop."""
    out = client.run(
        ContainerOptions(
            image="busybox",
            cmd=[
                "sh",
                "-c",
                """ulimit -f; grep SigIgn /proc/self/status;
        dd if=/dev/zero of=/tmp/big bs=1M count=80 2>/dev/null; wc -c < /tmp/big""",
            ],
            remove=True,
        )
    )
    limit, ignored, size = out.stdout.decode().split("\n")[:3]
    assert limit == "unlimited"
    assert not int(ignored.split()[1], 16) >> (signal.SIGXFSZ - 1) & 1
    assert int(size) == 80 * MIB


def test_a_fast_writer_loses_no_line(client: Client) -> None:
    """18 MB of numbered lines as fast as conmon logs them, rotated at 1 MiB (18 rotations): every line
    is in the log, in order."""
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
