"""Containers outlive Teu's services: kill any of them, containers keep running and nothing is lost."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable

import pytest

from conftest import Engine, wait_ready
from teu.client import Client, ContainerOptions
from teu.errors import TeuError, Unavailable
from teu.testing import wait_until
from teu_api.types.v1 import types_pb2

RUNNING, EXITED = types_pb2.CONTAINER_STATE_RUNNING, types_pb2.CONTAINER_STATE_EXITED


def restart_by_sigkill(engine: Engine, client: Client, service: str) -> None:
    """SIGKILLs one service and waits until the supervisor has brought it back."""
    old = engine.service_pid(service)
    os.kill(old, signal.SIGKILL)
    deadline = time.monotonic() + 20
    while True:
        try:
            if engine.service_pid(service) != old:
                break
        except LookupError:
            pass
        assert time.monotonic() < deadline, f"{service} was not restarted"
        time.sleep(0.05)
    wait_ready(client)


def logs_when(client: Client, cid: str, done: Callable[[list[bytes]], bool], timeout: float = 15.0) -> list[bytes]:
    """The container's log lines, once ``done`` says they are all there (or the timeout passed)."""
    deadline = time.monotonic() + timeout
    while True:
        lines = [line.data for line in client.logs(cid)]
        if done(lines) or time.monotonic() > deadline:
            return lines
        time.sleep(0.1)


def test_runtime_sigkill_keeps_containers_and_logs(engine: Engine, client: Client) -> None:
    """After SIGKILL of the runtime service, containers still run and are listed, logs are whole, stop works."""
    counter = client.run_detached(
        ContainerOptions(
            image="busybox", cmd=["sh", "-c", "i=0; while [ $i -lt 40 ]; do i=$((i+1)); echo n$i; sleep 0.05; done; sleep 300"]
        )
    )
    sleeper = client.run_detached(ContainerOptions(image="busybox", cmd=["sleep", "300"]))
    pid = client.inspect(sleeper).pid
    restart_by_sigkill(engine, client, "runtime")
    assert {counter, sleeper} <= {c.id for c in client.list()}
    assert client.inspect(sleeper).pid == pid
    os.kill(pid, 0)  # the container's process never stopped
    expected = [f"n{i}\n".encode() for i in range(1, 41)]
    assert logs_when(client, counter, lambda lines: len(lines) >= 40) == expected
    client.stop(sleeper, timeout=1)
    assert client.inspect(sleeper).summary.state == EXITED
    client.remove(counter, force=True)
    client.remove(sleeper)


def test_exit_while_runtime_is_down_is_recorded(engine: Engine, client: Client) -> None:
    """A container that exits while the runtime service is dead gets its exit code on restart."""
    cid = client.run_detached(ContainerOptions(image="busybox", cmd=["sh", "-c", "sleep 1; exit 9"]))
    restart_by_sigkill(engine, client, "runtime")
    assert client.wait(cid).exit_code == 9
    client.remove(cid)


@pytest.mark.parametrize("service", ["gateway", "logs", "storage"])
def test_other_services_sigkill(engine: Engine, client: Client, service: str) -> None:
    """Killing the gateway, logs or storage service leaves running containers untouched."""
    cid = client.run_detached(ContainerOptions(image="busybox", cmd=["sh", "-c", "echo before; sleep 1; echo after; sleep 300"]))
    restart_by_sigkill(engine, client, service)
    with Client(engine.target) as fresh:
        assert fresh.inspect(cid).summary.state == RUNNING
        assert logs_when(fresh, cid, lambda lines: len(lines) >= 2) == [b"before\n", b"after\n"]
        fresh.remove(cid, force=True)


def logged(client: Client, ref: str) -> bytes:
    """Everything the container has written so far; nothing while it cannot be found or read."""
    try:
        return b"".join(line.data for line in client.logs(ref))
    except TeuError:
        return b""


@pytest.mark.parametrize("service", ["runtime", "logs"])
def test_attached_run_survives_service_restart(engine: Engine, client: Client, service: str) -> None:
    """An attached run keeps streaming, loses no line and gets the exit code across a restart of a backend."""
    import threading

    result: dict[str, object] = {}

    def attached() -> None:
        with Client(engine.target) as c:
            result["r"] = c.run(
                ContainerOptions(
                    image="busybox", cmd=["sh", "-c", "echo a; sleep 2; echo b; exit 5"], remove=True, name=f"survivor-{service}"
                )
            )

    t = threading.Thread(target=attached)
    t.start()
    wait_until(lambda: logged(client, f"survivor-{service}") == b"a\n", what="the first line")
    restart_by_sigkill(engine, client, service)
    t.join(timeout=30)
    r = result["r"]
    assert (r.exit_code, r.stdout) == (5, b"a\nb\n")  # type: ignore[attr-defined]


def test_backend_down_is_unavailable_then_recovers(engine: Engine, client: Client) -> None:
    """While storage is down (supervisor paused), image calls are UNAVAILABLE; they work once it is back."""
    assert engine.proc is not None
    os.kill(engine.proc.pid, signal.SIGSTOP)
    try:
        os.kill(engine.service_pid("storage"), signal.SIGKILL)

        def unavailable() -> bool:
            try:
                client.list_images()
            except Unavailable:
                return True
            return False

        wait_until(unavailable, what="UNAVAILABLE")
    finally:
        os.kill(engine.proc.pid, signal.SIGCONT)
    wait_ready(client)
    assert client.list_images()


def test_exec_sessions_survive_runtime_restart(engine: Engine, client: Client) -> None:
    """Exec sessions stay in inspect across a runtime restart; one that ends meanwhile gets its exit code."""
    cid = client.run_detached(ContainerOptions(image="busybox", cmd=["sleep", "300"]))
    done = client.exec_run(cid, ["sh", "-c", "exit 4"])
    session = client.exec(cid, ["sh", "-c", "sleep 1; exit 6"])
    session.wait_exec_id()
    session.detach()
    restart_by_sigkill(engine, client, "runtime")
    deadline = time.monotonic() + 15
    while True:
        execs = {e.id: e for e in client.inspect(cid).execs}
        if not execs[session.exec_id].running or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert execs[done.exec_id].exit_code == 4
    assert (execs[session.exec_id].running, execs[session.exec_id].exit_code) == (False, 6)
    client.remove(cid, force=True)


def test_logs_follow_continues_across_a_gateway_restart(engine: Engine, client: Client) -> None:
    """``logs -f`` through the SDK while the gateway is SIGKILLed: the stream waits for the new gateway
    and goes on from where it was, every line once."""
    import threading

    cid = client.run_detached(
        ContainerOptions(image="busybox", cmd=["sh", "-c", "for i in $(seq 1 40); do echo line-$i; sleep 0.05; done"])
    )
    got: list[bytes] = []

    def follow() -> None:
        with Client(engine.target) as c:
            got.extend(line.data for line in c.logs(cid, follow=True))

    t = threading.Thread(target=follow)
    t.start()
    wait_until(lambda: len(got) >= 5, what="the first lines")
    restart_by_sigkill(engine, client, "gateway")
    t.join(timeout=60)
    assert got == [f"line-{i}\n".encode() for i in range(1, 41)]
    client.remove(cid, force=True)
