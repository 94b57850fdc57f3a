"""Healthchecks through the public client: status that follows the check, wait for healthy, nothing leaked."""

from __future__ import annotations

import os
import signal

import pytest

from conftest import Engine
from teu.client import Client, ContainerOptions
from teu.errors import FailedPrecondition, InvalidArgument, TeuError
from teu.testing import wait_until
from teu_api.types.v1 import types_pb2

MS = 1_000_000


def checked(script: str, test: str, **kw: object) -> ContainerOptions:
    h = types_pb2.HealthConfig(test=["CMD-SHELL", test], interval_ns=100 * MS, timeout_ns=2000 * MS, retries=2)
    return ContainerOptions(image="busybox", cmd=["sh", "-c", script], healthcheck=h, **kw)  # type: ignore[arg-type]


def test_health_follows_the_check_and_wait_healthy_returns(client: Client) -> None:
    """starting → healthy once the file exists → unhealthy after 2 failures when it goes → healthy again;
    wait --condition healthy returns on the first; the log keeps the last 5 results; no exec session is left."""
    cid = client.run_detached(checked("sleep 0.5; touch /ok; exec sleep 300", "test -e /ok"))
    try:
        assert client.inspect(cid).health.status == "starting"
        client.wait(cid, condition="healthy")
        d = client.inspect(cid)
        assert d.health.status == "healthy" and d.health.log[-1].exit_code == 0
        assert client.list(filters=[f"id={cid}"])[0].health == "healthy"
        client.exec_run(cid, ["rm", "/ok"])
        wait_until(lambda: client.inspect(cid).health.status == "unhealthy", timeout=10)
        d = client.inspect(cid)
        assert d.health.failing_streak >= 2 and len(d.health.log) <= 5 and d.health.log[-1].exit_code == 1
        client.exec_run(cid, ["touch", "/ok"])
        wait_until(lambda: client.inspect(cid).health.status == "healthy", timeout=10)
        assert [e for e in client.inspect(cid).execs if e.running] == []  # the checks made no sessions
        ps = client.exec_run(cid, ["ps", "-o", "comm"]).stdout.decode().split()
        assert ps.count("test") == 0 and ps.count("sleep") == 1
    finally:
        client.remove(cid, force=True)


def test_a_slow_check_times_out_and_a_stopped_container_is_not_healthy(client: Client) -> None:
    h = types_pb2.HealthConfig(test=["CMD", "sleep", "5"], interval_ns=100 * MS, timeout_ns=200 * MS, retries=1)
    cid = client.run_detached(ContainerOptions(image="busybox", cmd=["sleep", "300"], healthcheck=h))
    try:
        wait_until(lambda: client.inspect(cid).health.status == "unhealthy", timeout=10)
        assert "timeout" in client.inspect(cid).health.log[-1].output
        client.stop(cid, timeout=0)
        with pytest.raises(FailedPrecondition, match="stopped before"):
            client.wait(cid, condition="healthy")
    finally:
        client.remove(cid, force=True)


def test_the_images_healthcheck_is_kept_and_can_be_turned_off(client: Client) -> None:
    base = client.run(ContainerOptions(image="busybox", cmd=["true"]))
    client.commit(base.id, "healthy-image:1", changes=["HEALTHCHECK --interval=100ms --retries=1 CMD true"])
    client.remove(base.id)
    try:
        assert list(client.inspect_image("healthy-image:1").config.healthcheck.test) == ["CMD-SHELL", "true"]
        on = client.run_detached(ContainerOptions(image="healthy-image:1", cmd=["sleep", "300"]))
        off = client.run_detached(ContainerOptions(image="healthy-image:1", cmd=["sleep", "300"],
                                                   healthcheck=types_pb2.HealthConfig(test=["NONE"])))  # fmt: skip
        try:
            client.wait(on, condition="healthy")
            assert client.inspect(off).health.status == ""
        finally:
            client.remove(on, force=True)
            client.remove(off, force=True)
    finally:
        client.remove_image("healthy-image:1")
    with pytest.raises(InvalidArgument, match="at least 1ms"):
        client.create(ContainerOptions(image="busybox", healthcheck=types_pb2.HealthConfig(test=["CMD", "true"], interval_ns=10)))


def test_health_on_failure_restart_hands_an_unhealthy_container_to_its_restart_policy(client: Client) -> None:
    """Unhealthy with --health-on-failure=restart and --restart always: killed and started again;
    without --health-on-failure it only shows unhealthy."""
    h = types_pb2.HealthConfig(test=["CMD", "false"], interval_ns=100 * MS, retries=1)
    asked = client.run_detached(ContainerOptions(image="busybox", cmd=["sleep", "300"], healthcheck=h, restart="always",
                                                 health_on_failure="restart"))  # fmt: skip
    plain = client.run_detached(ContainerOptions(image="busybox", cmd=["sleep", "300"], healthcheck=h, restart="always"))
    try:
        wait_until(lambda: client.inspect(asked).restart_count >= 1, timeout=15, what="a restart after unhealthy")
        wait_until(lambda: client.inspect(plain).health.status == "unhealthy", timeout=10)
        assert client.inspect(plain).restart_count == 0
    finally:
        client.remove(asked, force=True)
        client.remove(plain, force=True)
    with pytest.raises(InvalidArgument, match="health-on-failure"):
        client.create(ContainerOptions(image="busybox", health_on_failure="reboot"))


def probers(client: Client, cid: str) -> int:
    """How many healthcheck probers run in the container (the engine's busybox shell)."""
    return client.exec_run(cid, ["ps", "-o", "args"]).stdout.decode().count("/dev/.teu/busybox sh")


def test_a_checks_command_is_the_containers_own_and_a_missing_one_says_so(client: Client) -> None:
    """CMD's command is looked up in the container's PATH (a script named like a busybox applet runs,
    not the applet); a command that is not there fails with 127 and Docker's words."""
    script = "mkdir -p /usr/local/bin && printf '#!/bin/sh\\necho mine; exit 3\\n' > /usr/local/bin/true && chmod +x /usr/local/bin/true"
    h = types_pb2.HealthConfig(test=["CMD", "true"], interval_ns=100 * MS, retries=1)
    own = client.run_detached(ContainerOptions(image="busybox", cmd=["sh", "-c", f"{script}; exec sleep 300"], healthcheck=h))
    missing = types_pb2.HealthConfig(test=["CMD", "no-such-check"], interval_ns=100 * MS, retries=1)
    gone = client.run_detached(ContainerOptions(image="busybox", cmd=["sleep", "300"], healthcheck=missing))
    try:
        wait_until(lambda: client.inspect(own).health.status == "unhealthy", timeout=10)
        last = client.inspect(own).health.log[-1]
        assert (last.exit_code, last.output) == (3, "mine\n")
        wait_until(lambda: client.inspect(gone).health.status == "unhealthy", timeout=10)
        last = client.inspect(gone).health.log[-1]
        assert last.exit_code == 127 and 'exec: "no-such-check": executable file not found in $PATH' in last.output
        assert probers(client, own) == 1
    finally:
        client.remove(own, force=True)
        client.remove(gone, force=True)


def test_checks_go_on_after_a_runtime_restart_with_one_prober(client: Client, engine: Engine) -> None:
    """SIGKILL of the runtime service: the checks resume, and the prober the dead service left is ended."""
    h = types_pb2.HealthConfig(test=["CMD-SHELL", "echo ok"], interval_ns=100 * MS, retries=1)
    cid = client.run_detached(ContainerOptions(image="busybox", cmd=["sleep", "300"], healthcheck=h))
    try:
        client.wait(cid, condition="healthy")
        assert probers(client, cid) == 1
        os.kill(engine.service_pid("runtime"), signal.SIGKILL)
        wait_until(lambda: _answers(client, cid), timeout=30, what="the runtime")
        wait_until(lambda: client.inspect(cid).health.log[-1].output == "ok\n" and probers(client, cid) == 1, timeout=10)
    finally:
        client.remove(cid, force=True)


def _answers(client: Client, cid: str) -> bool:
    try:
        return client.inspect(cid).health.status == "healthy"
    except TeuError:
        return False


def test_health_outlives_a_runtime_restart(client: Client, engine: Engine) -> None:
    """The health a container had is kept across a restart of the runtime service (Docker keeps it
    across a restart of dockerd): right after the restart it is still healthy, not starting over."""
    h = types_pb2.HealthConfig(test=["CMD-SHELL", "true"], interval_ns=4000 * MS, retries=1)
    cid = client.run_detached(ContainerOptions(image="busybox", cmd=["sleep", "300"], healthcheck=h))
    try:
        client.wait(cid, condition="healthy")
        os.kill(engine.service_pid("runtime"), signal.SIGKILL)
        wait_until(lambda: _status(client, cid) is not None, timeout=30, what="the runtime")
        assert _status(client, cid) == "healthy"  # the next check is seconds away: this is the kept health
        client.stop(cid, timeout=1)
        assert client.inspect(cid).health.status == ""  # shown only while it runs
    finally:
        client.remove(cid, force=True)


def _status(client: Client, cid: str) -> str | None:
    try:
        return client.inspect(cid).health.status
    except TeuError:
        return None
