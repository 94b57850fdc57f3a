"""create/start/stop/kill/restart/wait/rm/ps/inspect/logs/info, and what each leaves behind."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from conftest import REPO, Engine
from teu.client import Client, ContainerOptions
from teu.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from teu.testing import wait_until
from teu_api.types.v1 import types_pb2
from teu_runtime import cgroups

RUNNING, EXITED = types_pb2.CONTAINER_STATE_RUNNING, types_pb2.CONTAINER_STATE_EXITED


def sleeper(client: Client, **kw: object) -> str:
    """A detached busybox that sleeps until stopped."""
    return client.run_detached(ContainerOptions(image="busybox", cmd=["sleep", "300"], **kw))  # type: ignore[arg-type]


def leftovers(engine: Engine, cid: str) -> list[str]:
    """Everything of ``cid`` still on the host: mounts, bundle, snapshot, log, cgroups, monitor."""
    found = []
    if cid.encode() in Path("/proc/self/mountinfo").read_bytes():
        found.append("mount")
    for path in (engine.root / "runtime" / "containers" / cid, engine.root / "storage" / "snapshots" / cid,
                 engine.root / "logs" / cid, engine.run_dir / "runc" / cid):  # fmt: skip
        if path.exists():
            found.append(str(path))
    for hierarchy in Path("/sys/fs/cgroup").iterdir():
        if list(hierarchy.glob(f"**/{cid}")):
            found.append(f"cgroup {hierarchy.name}")
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if b"conmon" in (proc / "cmdline").read_bytes() and cid.encode() in (proc / "cmdline").read_bytes():
                    found.append(f"conmon {proc.name}")
            except OSError:
                pass
    return found


def test_run_rm_leaves_nothing(client: Client, engine: Engine) -> None:
    """`run --rm` removes the container, its mount, bundle, snapshot, log, cgroups and monitor."""
    r = client.run(ContainerOptions(image="busybox", cmd=["true"], remove=True))
    assert r.exit_code == 0
    assert leftovers(engine, r.id) == []
    with pytest.raises(NotFound):
        client.inspect(r.id)


def test_rm_force_leaves_nothing(client: Client, engine: Engine) -> None:
    """rm of a running container needs -f; with it, nothing of the container remains."""
    cid = sleeper(client)
    with pytest.raises(FailedPrecondition):
        client.remove(cid)
    assert client.inspect(cid).summary.state == RUNNING
    client.remove(cid, force=True)
    assert leftovers(engine, cid) == []


def test_rm_removes_cgroups_a_cut_short_create_left(client: Client, engine: Engine) -> None:
    """A create cut short by the runtime service's death can leave the container's cgroups where the
    OCI runtime no longer sees them, with a process in them: rm kills that process and removes them."""
    cid = client.create(ContainerOptions(image="busybox", cmd=["true"])).id
    parents = cgroups.parent_dirs(Path(f"/proc/{engine.service_pid('runtime')}"), engine.cgroup_parent)
    stray = subprocess.Popen(["sleep", "300"])
    try:
        for parent in parents:
            for d in (parent / cid, parent / cid / "child"):
                d.mkdir()
                for name in ("cpuset.cpus", "cpuset.mems"):  # a v1 cpuset takes no task until they are set
                    if (d / name).exists():
                        (d / name).write_text((d.parent / name).read_text())
            (parent / cid / "child" / "cgroup.procs").write_text(str(stray.pid))
        client.remove(cid)
        assert stray.wait(timeout=10) == -9
        assert [p for p in parents if (p / cid).exists()] == []
    finally:
        stray.kill()
        stray.wait()
        for parent in parents:
            for d in (parent / cid / "child", parent / cid):
                if d.exists():
                    d.rmdir()


def logged(client: Client, cid: str) -> bytes:
    """Everything the container has written so far."""
    return b"".join(line.data for line in client.logs(cid))


def test_create_start_wait_inspect(client: Client) -> None:
    """create does not run; start runs; wait returns the exit code; inspect shows the story."""
    created = client.create(ContainerOptions(image="busybox", cmd=["sh", "-c", "exit 4"], name="lifecycle1"))
    d = client.inspect("lifecycle1")
    assert (d.summary.id, d.summary.state, d.pid) == (created.id, types_pb2.CONTAINER_STATE_CREATED, 0)
    client.start("lifecycle1")
    assert client.wait("lifecycle1").exit_code == 4
    d = client.inspect(created.id[:12])
    assert (d.summary.state, d.summary.exit_code) == (EXITED, 4)
    assert d.summary.finished_at >= d.summary.started_at > d.summary.created_at
    client.remove("lifecycle1")


def test_inspect_shows_the_overlay_the_container_writes_to(client: Client) -> None:
    """inspect shows the root filesystem mount (Docker's GraphDriver data); a file the container
    writes lands in its upper directory, and a restart runs on the same one."""
    cid = client.create(ContainerOptions(image="busybox", cmd=["sh", "-c", "echo x >> /mark; wc -l < /mark"])).id
    try:
        (mount,) = client.inspect(cid).mounts
        assert (mount.type, mount.destination) == ("overlay", "/")
        upper = Path(next(o for o in mount.options if o.startswith("upperdir=")).removeprefix("upperdir="))
        for expected in (1, 2):
            client.start(cid)
            assert client.wait(cid).exit_code == 0
            assert (upper / "mark").read_text() == "x\n" * expected
        assert b"".join(line.data for line in client.logs(cid)) == b"1\n2\n"
    finally:
        client.remove(cid, force=True)


def test_start_running_is_failed_precondition(client: Client) -> None:
    """Starting a running container is FAILED_PRECONDITION."""
    cid = sleeper(client)
    with pytest.raises(FailedPrecondition):
        client.start(cid)
    client.remove(cid, force=True)


def test_duplicate_name_is_already_exists(client: Client, engine: Engine) -> None:
    """A taken name is ALREADY_EXISTS, and the failed create leaves no snapshot or log."""
    client.create(ContainerOptions(image="busybox", cmd=["true"], name="dup"))
    snapshots = set((engine.root / "storage" / "snapshots").iterdir())
    with pytest.raises(AlreadyExists):
        client.create(ContainerOptions(image="busybox", cmd=["true"], name="dup"))
    assert set((engine.root / "storage" / "snapshots").iterdir()) == snapshots
    client.remove("dup")


def test_unknown_and_ambiguous_references(client: Client) -> None:
    """An unknown container is NOT_FOUND; a prefix shared by several is INVALID_ARGUMENT."""
    with pytest.raises(NotFound):
        client.inspect("no-such-container")
    ids = [client.create(ContainerOptions(image="busybox", cmd=["true"])).id for _ in range(17)]
    firsts = [i[0] for i in ids]
    shared = next(ch for ch in firsts if firsts.count(ch) > 1)
    with pytest.raises(InvalidArgument):
        client.inspect(shared)
    for cid in ids:
        client.remove(cid)


def test_stop_waits_timeout_then_kills(client: Client) -> None:
    """A process that ignores SIGTERM is killed after the timeout: exit 137."""
    cid = sleeper(client)
    t0 = time.monotonic()
    client.stop(cid, timeout=1)
    elapsed = time.monotonic() - t0
    d = client.inspect(cid)
    assert (d.summary.state, d.summary.exit_code) == (EXITED, 137)
    assert 1.0 <= elapsed < 5
    client.remove(cid)


def test_stop_with_handler_exits_promptly(client: Client) -> None:
    """A process that handles SIGTERM ends with its own code, well before the timeout."""
    cid = client.run_detached(
        ContainerOptions(image="busybox", cmd=["sh", "-c", "trap 'exit 7' TERM; echo ready; while :; do sleep 0.1; done"])
    )
    wait_until(lambda: logged(client, cid) == b"ready\n", what="the trap")
    t0 = time.monotonic()
    client.stop(cid, timeout=10)
    assert time.monotonic() - t0 < 3
    assert client.inspect(cid).summary.exit_code == 7
    client.remove(cid)


def test_kill_with_signal_and_restart(client: Client) -> None:
    """kill -s sends the named signal; restart runs the container again."""
    cid = client.run_detached(
        ContainerOptions(image="busybox", cmd=["sh", "-c", "trap 'exit 10' USR1; echo ready; while :; do sleep 0.1; done"])
    )
    wait_until(lambda: logged(client, cid) == b"ready\n", what="the trap")
    client.kill(cid, "USR1")
    assert client.wait(cid).exit_code == 10
    with pytest.raises(FailedPrecondition):
        client.kill(cid, "KILL")
    with pytest.raises(InvalidArgument):
        client.kill(cid, "NOSUCHSIG")
    client.restart(cid)
    d = client.inspect(cid)
    assert (d.summary.state, d.restart_count) == (RUNNING, 1)
    client.remove(cid, force=True)


def test_ps_lists_running_and_all(client: Client) -> None:
    """ps shows running containers; ps -a adds the exited ones."""
    running = sleeper(client, name="ps-running")
    done = client.run(ContainerOptions(image="busybox", cmd=["true"], name="ps-done")).id
    assert running in [c.id for c in client.list()] and done not in [c.id for c in client.list()]
    assert {running, done} <= {c.id for c in client.list(all=True)}
    client.remove(running, force=True)
    client.remove(done)


def test_oom_kill_is_137_and_reported(client: Client) -> None:
    """A process over its -m 16m limit is OOM-killed: exit 137 and OOMKilled=true."""
    r = client.run(ContainerOptions(image="busybox", cmd=["sh", "-c", "tail /dev/zero"], memory=16 << 20))
    assert r.exit_code == 137
    assert r.oom_killed
    assert client.inspect(r.id).oom_killed
    client.remove(r.id)


def test_pids_limit_stops_fork_loop(client: Client) -> None:
    """--pids-limit 10 lets only a few processes exist: a fork loop hits the limit."""
    script = "for i in $(seq 30); do sleep 5 & done; kill $(jobs -p)"
    r = client.run(ContainerOptions(image="busybox", cmd=["sh", "-c", script], pids_limit=10, remove=True))
    assert b"can't fork" in r.stderr


def test_cgroup_limits_are_applied(client: Client) -> None:
    """Memory, CPU and pids limits are written to the container's cgroups (v1 or v2)."""
    v2 = Path("/sys/fs/cgroup/cgroup.controllers").exists()
    files = ("memory.max", "cpu.max", "pids.max") if v2 else (
        "memory/memory.limit_in_bytes", "cpu/cpu.cfs_quota_us", "pids/pids.max")  # fmt: skip
    cmd = "cat " + " ".join(f"/sys/fs/cgroup/{f}" for f in files)
    r = client.run(ContainerOptions(image="busybox", cmd=["sh", "-c", cmd], memory=64 << 20, nano_cpus=500_000_000,
                                    pids_limit=50, remove=True))  # fmt: skip
    values = r.stdout.decode().split()
    assert values[0] == str(64 << 20)
    assert values[1] == "50000" or values[1:3] == ["50000", "100000"]
    assert values[-1] == "50"


def test_logs_tail_timestamps_follow(client: Client, engine: Engine) -> None:
    """logs returns all output, --tail the last lines, -f follows until the container exits."""
    cid = client.run_detached(
        ContainerOptions(image="busybox", cmd=["sh", "-c", "for i in 1 2 3 4 5; do echo line$i; sleep 0.2; done"])
    )
    followed = [line.data for line in client.logs(cid, follow=True)]
    assert followed == [f"line{i}\n".encode() for i in range(1, 6)]
    assert [line.data for line in client.logs(cid, tail=2)] == [b"line4\n", b"line5\n"]
    stamps = [line.timestamp for line in client.logs(cid)]
    assert stamps == sorted(stamps) and stamps[0] > 0
    teu = str(REPO / ".venv" / "bin" / "teu")
    out = subprocess.run([teu, "logs", "-t", "--tail", "1", cid], env=engine.env(), capture_output=True, text=True).stdout
    assert out.endswith("Z line5\n") and out.startswith("20")
    client.remove(cid)


def test_info_and_cli_inspect(client: Client, engine: Engine) -> None:
    """info names the OCI runtime and cgroup version; inspect prints Docker-shaped JSON."""
    info = client.info()
    assert info.oci_runtime in ("runc", "crun")
    assert info.cgroup_version in (1, 2)
    assert info.images >= 1
    cid = client.run(ContainerOptions(image="busybox", cmd=["true"], name="inspected")).id
    teu = str(REPO / ".venv" / "bin" / "teu")
    out = subprocess.run([teu, "inspect", "inspected"], env=engine.env(), capture_output=True, text=True, check=True).stdout
    doc = json.loads(out)[0]
    assert (doc["Id"], doc["Name"], doc["State"]["Status"], doc["State"]["ExitCode"]) == (cid, "/inspected", "exited", 0)
    client.remove(cid)
