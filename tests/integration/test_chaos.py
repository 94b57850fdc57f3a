"""Runs in flight while a back end is SIGKILLed: they ride out its restart, or fail saying so, and
nothing is left behind."""

from __future__ import annotations

import os
import signal
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import Engine
from teu.client import Client, ContainerOptions
from teu.errors import TeuError
from teu.testing import wait_until
from teu_engine import audit as engine_audit

RUNS = 50


def run_one(engine: Engine, i: int) -> tuple[str, object]:
    """One ``run --rm`` of its own client: ("ok", (exit code, output)) or (error class, message)."""
    with Client(engine.target) as c:
        try:
            r = c.run(ContainerOptions(image="busybox", cmd=["echo", f"run {i}"], remove=True, labels={"chaos": "1"}))
            return "ok", (r.exit_code, r.stdout)
        except TeuError as exc:
            return type(exc).__name__, exc.message


@pytest.mark.parametrize("service", ["runtime", "storage", "logs"])
def test_runs_ride_out_a_back_end_restart(engine: Engine, client: Client, service: str) -> None:
    """50 ``run --rm``, 10 at a time, while the service is SIGKILLed once (the supervisor restarts it):
    each one either prints its line and exits 0, or fails with UNAVAILABLE; once all are done nothing of
    theirs remains: no container, mount, runtime state, init process, cgroup, bundle, snapshot or log."""
    with ThreadPoolExecutor(10) as pool:
        futures = [pool.submit(run_one, engine, i) for i in range(RUNS)]
        wait_until(lambda: sum(f.done() for f in futures) >= 4, what="the first runs")
        os.kill(engine.service_pid(service), signal.SIGKILL)
        results = [f.result(timeout=180) for f in futures]
    for i, (kind, outcome) in enumerate(results):
        assert (kind, outcome) == ("ok", (0, f"run {i}\n".encode())) or kind == "Unavailable", (i, kind, outcome)
    succeeded = sum(kind == "ok" for kind, _ in results)
    print(f"{service}: {succeeded}/{RUNS} succeeded; failures: {[r for r in results if r[0] != 'ok']}")
    assert succeeded >= RUNS - 10  # only runs with a call in flight at the kill may fail
    try:
        wait_until(lambda: leftovers(client) == [] and audit(engine, client) == {}, timeout=60, what="no leftovers")
    except TimeoutError:
        pytest.fail(f"left behind: {leftovers(client)} {audit(engine, client)}")


def audit(engine: Engine, client: Client) -> dict[str, list[str]]:
    """What the engine holds, on the host, for containers it does not know any more."""
    live = {c.id for c in client.list(all=True)}
    return engine_audit.leftovers(engine.root, engine.run_dir, live, engine.service_pid("runtime"), engine.cgroup_parent)


def leftovers(client: Client) -> list[tuple[str, int, str]]:
    """The containers these runs left: (short id, state, error)."""
    left = []
    for c in client.list(all=True):
        try:
            d = client.inspect(c.id)
        except TeuError:
            continue
        if d.config.labels.get("chaos") == "1":
            left.append((c.id[:12], d.summary.state, d.error))
    return left
