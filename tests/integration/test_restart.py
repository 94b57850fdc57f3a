"""Restart policies through the public client: containers that come back after crashes, service and
engine restarts and a simulated reboot, and those that stay down."""

from __future__ import annotations

import os
import shutil
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import IMAGE_TAR, Engine
from teu.client import Client, ContainerOptions
from teu.errors import InvalidArgument
from teu.testing import wait_until
from teu_api.types.v1 import types_pb2

RUNNING, EXITED = types_pb2.CONTAINER_STATE_RUNNING, types_pb2.CONTAINER_STATE_EXITED


def sleeper(policy: str, name: str = "") -> ContainerOptions:
    return ContainerOptions(image="busybox", cmd=["sleep", "300"], restart=policy, name=name)


def back_up(c: Client, cid: str, after: int) -> None:
    """Waits until ``cid`` runs again, started more than ``after`` times."""
    wait_until(lambda: (s := c.inspect(cid)).summary.state == RUNNING and s.restart_count > after, timeout=20, what="a restart")


@pytest.fixture()
def own_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """An engine of this test's own, to stop, kill and start again."""
    with Engine(tmp_path_factory.mktemp("restart-engine")) as eng:
        with Client(eng.target) as c, IMAGE_TAR.open("rb") as f:
            c.import_image(f, "busybox", types_pb2.ImageConfig(cmd=["sh"]))
        yield eng


def test_on_failure_stops_after_its_retries_with_back_off(client: Client) -> None:
    """on-failure:3: a process that always fails is started 3 more times, each after a longer wait, then stays exited."""
    started = time.monotonic()
    cid = client.run_detached(ContainerOptions(image="busybox", cmd=["sh", "-c", "exit 3"], restart="on-failure:3"))
    try:
        wait_until(lambda: client.inspect(cid).restart_count == 3 and client.inspect(cid).summary.state == EXITED, timeout=20)
        assert time.monotonic() - started >= 0.1 + 0.2 + 0.4  # the back-off: 100 ms, doubling
        time.sleep(1.0)
        d = client.inspect(cid)
        assert (d.restart_count, d.summary.state, d.summary.exit_code) == (3, EXITED, 3)
    finally:
        client.remove(cid, force=True)


def test_always_comes_back_after_its_process_is_killed_and_stop_is_final(client: Client) -> None:
    cid = client.run_detached(sleeper("always"))
    try:
        os.kill(client.inspect(cid).pid, signal.SIGKILL)
        back_up(client, cid, 0)
        client.kill(cid)  # kill is not a stop: it comes back
        back_up(client, cid, 1)
        client.stop(cid, timeout=1)
        time.sleep(1.0)
        assert client.inspect(cid).summary.state == EXITED
    finally:
        client.remove(cid, force=True)


def test_restart_policy_bad_input(client: Client) -> None:
    for policy, match in (("sometimes", "invalid restart policy"), ("on-failure:-1", "negative"), ("on-failure:x", "number"),
                          ("always:3", "on-failure only")):  # fmt: skip
        with pytest.raises(InvalidArgument, match=match):
            client.create(sleeper(policy))
    with pytest.raises(InvalidArgument, match="--restart and --rm"):
        client.create(ContainerOptions(image="busybox", cmd=["true"], restart="always", remove=True))


def test_always_comes_back_after_a_runtime_kill_while_it_died(own_engine: Engine) -> None:
    """The runtime is SIGKILLed and the container's process dies while it is down: once the runtime
    is back (the supervisor restarts it), the container runs again."""
    with Client(own_engine.target) as c:
        cid = c.run_detached(sleeper("always"))
        pid = c.inspect(cid).pid
        assert own_engine.proc is not None
        os.kill(own_engine.proc.pid, signal.SIGSTOP)  # hold the supervisor so that the runtime stays down
        try:
            os.kill(own_engine.service_pid("runtime"), signal.SIGKILL)
            os.kill(pid, signal.SIGKILL)
            time.sleep(0.3)
        finally:
            os.kill(own_engine.proc.pid, signal.SIGCONT)
        back_up(c, cid, 0)
        assert c.inspect(cid).pid != pid


def test_engine_start_brings_back_what_its_policy_says(own_engine: Engine) -> None:
    """After the engine stops and starts: always and unless-stopped run again, a stopped unless-stopped
    stays down, a stopped always comes back (Docker's rule), no stays exited with its real exit code."""
    with Client(own_engine.target) as c:
        always = c.run_detached(sleeper("always", "a1"))
        unless = c.run_detached(sleeper("unless-stopped", "u1"))
        unless_stopped = c.run_detached(sleeper("unless-stopped", "u2"))
        always_stopped = c.run_detached(sleeper("always", "a2"))
        plain = c.run(ContainerOptions(image="busybox", cmd=["sh", "-c", "exit 7"], name="n1")).id
        c.stop(unless_stopped, timeout=1)
        c.stop(always_stopped, timeout=1)
        for cid in (always, unless):  # they die with the engine down, as at a host's shutdown
            os.kill(c.inspect(cid).pid, signal.SIGKILL)
            wait_until(lambda cid=cid: c.inspect(cid).summary.state == EXITED, timeout=10)  # type: ignore[misc]
    own_engine.halt()
    own_engine.start()
    with Client(own_engine.target) as c:
        for cid in (always, unless, always_stopped):
            wait_until(lambda cid=cid: c.inspect(cid).summary.state == RUNNING, timeout=20, what=f"{cid[:12]} back")  # type: ignore[misc]
        time.sleep(0.5)
        assert c.inspect(unless_stopped).summary.state == EXITED
        assert (c.inspect(plain).summary.state, c.inspect(plain).summary.exit_code) == (EXITED, 7)


def test_a_simulated_reboot_brings_back_always(own_engine: Engine) -> None:
    """Everything is killed, conmon and the container included, and the run directory wiped, as a
    host's reboot leaves it: when the engine starts, the always container runs again."""
    with Client(own_engine.target) as c:
        cid = c.run_detached(sleeper("always"))
        d = c.inspect(cid)
        pids = [d.pid, d.monitor_pid]
    assert own_engine.proc is not None
    own_engine.halt()
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    shutil.rmtree(Path(own_engine.run_dir), ignore_errors=True)
    own_engine.start()
    with Client(own_engine.target) as c:
        wait_until(lambda: c.inspect(cid).summary.state == RUNNING, timeout=20, what="back after the reboot")
        assert c.inspect(cid).pid not in pids
