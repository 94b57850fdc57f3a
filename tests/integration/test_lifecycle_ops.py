"""pause/unpause, rename, top, stop -s and container prune through the public client."""

from __future__ import annotations

import time

import pytest

from teu.client import Client, ContainerOptions
from teu.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from teu.testing import wait_until
from teu_api.types.v1 import types_pb2

EXITED = types_pb2.CONTAINER_STATE_EXITED
COUNTER = "i=0; while :; do i=$((i+1)); echo $i > /tmp/n; sleep 0.05; done"


def count(client: Client, cid: str) -> int:
    """The counter the container writes to /tmp/n, read through cp (0 before its first write)."""
    try:
        return int(client.copy_from(cid, "/tmp/n")["n"].decode().strip() or 0)
    except NotFound:
        return 0


def test_pause_freezes_a_counter_and_unpause_resumes_it(client: Client) -> None:
    cid = client.run_detached(ContainerOptions(image="busybox", cmd=["sh", "-c", COUNTER]))
    try:
        wait_until(lambda: count(client, cid) > 2)
        client.pause(cid)
        assert client.inspect(cid).paused and client.list(filters=["status=paused"])[0].id == cid
        frozen = count(client, cid)
        time.sleep(0.5)
        assert count(client, cid) == frozen
        with pytest.raises(FailedPrecondition, match="already paused"):
            client.pause(cid)
        client.unpause(cid)
        wait_until(lambda: count(client, cid) > frozen + 2)
        with pytest.raises(FailedPrecondition, match="not paused"):
            client.unpause(cid)
        client.pause(cid)
        client.stop(cid, timeout=2)  # a paused container stops
        assert client.inspect(cid).summary.state == EXITED and not client.inspect(cid).paused
        with pytest.raises(FailedPrecondition, match="not running"):
            client.pause(cid)
    finally:
        client.remove(cid, force=True)


def test_rename_top_and_stop_signal(client: Client) -> None:
    cid = client.run_detached(
        ContainerOptions(image="busybox", cmd=["sh", "-c", 'trap "exit 9" USR1; sleep 300 & wait'], name="before")
    )
    other = client.create(ContainerOptions(image="busybox", cmd=["true"], name="taken")).id
    try:
        client.rename("before", "after")
        assert client.inspect(cid).summary.name == "after"
        with pytest.raises(AlreadyExists):
            client.rename("after", "taken")
        with pytest.raises(InvalidArgument):
            client.rename("after", "bad name!")
        top = client.top("after")
        assert "PID" in top.titles and any("sleep 300" in " ".join(p.columns) for p in top.processes)
        assert len(top.processes) == 2  # sh and sleep, nothing of the host's
        narrow = client.top("after", ["-o", "pid,comm"])
        assert list(narrow.titles) == ["PID", "COMMAND"]
        with pytest.raises(InvalidArgument, match="PID"):
            client.top("after", ["-o", "comm"])
        client.stop("after", timeout=5, signal="SIGUSR1")
        assert client.wait(cid).exit_code == 9
    finally:
        client.remove(cid, force=True)
        client.remove(other, force=True)


def test_container_prune_removes_what_does_not_run(client: Client) -> None:
    keep = client.run_detached(ContainerOptions(image="busybox", cmd=["sleep", "60"], labels={"prune": "yes"}))
    gone = client.run(ContainerOptions(image="busybox", cmd=["true"], labels={"prune": "yes"})).id
    labelled_no = client.run(ContainerOptions(image="busybox", cmd=["true"], labels={"prune": "no"})).id
    try:
        deleted = client.prune_containers(["label=prune=yes"])
        assert gone in deleted and keep not in deleted and labelled_no not in deleted
        assert labelled_no not in client.prune_containers(["until=1h"])  # made seconds ago: not before an hour ago
        with pytest.raises(InvalidArgument):
            client.prune_containers(["colour=red"])
    finally:
        client.remove(keep, force=True)
        client.remove(labelled_no, force=True)


ORPHANS = "for i in $(seq 100); do sh -c 'sleep 0.3 &'; done; exec sleep 300"  # then PID 1 (or 2) is a sleep: it reaps nothing
ZOMBIES = ["sh", "-c", "grep -l '^State:.*Z' /proc/[0-9]*/status 2>/dev/null | wc -l"]


def zombies_after_orphans(client: Client, init: bool) -> int:
    """Zombies in a container whose 100 orphans have exited, a second later."""
    cid = client.run_detached(ContainerOptions(image="busybox", cmd=["sh", "-c", ORPHANS], init=init))
    try:
        time.sleep(1.5)
        return int(client.exec_run(cid, ZOMBIES).stdout)
    finally:
        client.remove(cid, force=True)


def test_init_reaps_orphans_and_forwards_signals(client: Client) -> None:
    """100 orphans that exit: with --init none is left a zombie; without it PID 1 (a sleep that does
    not wait) keeps them all. tini is PID 1 and hands SIGTERM on."""
    assert zombies_after_orphans(client, init=True) == 0
    assert zombies_after_orphans(client, init=False) >= 100
    r = client.run(ContainerOptions(image="busybox", cmd=["cat", "/proc/1/cmdline"], init=True, remove=True))
    assert r.stdout.split(b"\0")[:2] == [b"/sbin/docker-init", b"--"]
    cid = client.run_detached(ContainerOptions(image="busybox", cmd=["sleep", "300"], init=True))
    try:
        started = time.monotonic()
        client.stop(cid, timeout=10)
        assert time.monotonic() - started < 5  # sleep as PID 2 gets the SIGTERM through tini and dies at once
        assert client.wait(cid).exit_code == 143
    finally:
        client.remove(cid, force=True)


def test_update_changes_limits_live_and_the_restart_policy(client: Client) -> None:
    from pathlib import Path

    from teu.errors import NotFound

    cid = client.run_detached(ContainerOptions(image="busybox", cmd=["sleep", "300"], memory=64 << 20, pids_limit=50))
    try:
        client.update(cid, memory_bytes=128 << 20, pids_limit=80, cpu_shares=512, restart="unless-stopped")
        pid = client.inspect(cid).pid
        v2 = Path("/sys/fs/cgroup/cgroup.controllers").exists()
        for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
            _, ctrl, path = line.split(":", 2)
            if v2 and ctrl == "":
                assert (Path("/sys/fs/cgroup") / path.lstrip("/") / "memory.max").read_text().strip() == str(128 << 20)
            elif ctrl == "memory":
                assert (Path("/sys/fs/cgroup/memory") / path.lstrip("/") / "memory.limit_in_bytes").read_text().strip() == str(
                    128 << 20
                )
            elif ctrl == "pids":
                assert (Path("/sys/fs/cgroup/pids") / path.lstrip("/") / "pids.max").read_text().strip() == "80"
        d = client.inspect(cid)
        assert (d.config.resources.memory_bytes, d.config.resources.pids_limit, d.config.restart.name) == (
            128 << 20, 80, "unless-stopped",
        )  # fmt: skip
        with pytest.raises(InvalidArgument, match="memory"):
            client.update(cid, memory_bytes=1 << 10)
        with pytest.raises(InvalidArgument, match="--rm"):
            rm = client.create(ContainerOptions(image="busybox", cmd=["true"], remove=True)).id
            try:
                client.update(rm, restart="always")
            finally:
                client.remove(rm, force=True)
    finally:
        client.remove(cid, force=True)
    with pytest.raises(NotFound):
        client.update(cid, memory_bytes=128 << 20)
