"""stats through the public client: what a container uses, read from its cgroups and its network namespace."""

from __future__ import annotations

import subprocess

import pytest

from conftest import REPO, Engine
from teu.client import Client, ContainerOptions
from teu.errors import InvalidArgument

TEU = str(REPO / ".venv" / "bin" / "teu")


def test_stats_show_cpu_memory_pids_and_paused(client: Client) -> None:
    """A busy loop shows CPU, a 64 MiB limit shows as the limit, 2 processes, and a paused container still reads."""
    busy = client.run_detached(
        ContainerOptions(image="busybox", cmd=["sh", "-c", "while :; do :; done & sleep 300"], memory=64 << 20)
    )
    idle = client.run_detached(ContainerOptions(image="busybox", cmd=["sleep", "300"]))
    try:
        (reading,) = list(client.stats([busy, idle]))
        by_id = {u.stats.id: u for u in reading.containers}
        b, i = by_id[busy], by_id[idle]
        assert b.cpu_percent > 30 and i.cpu_percent < 10, (b.cpu_percent, i.cpu_percent)
        assert b.stats.memory_limit == 64 << 20 and 0 < b.stats.memory_usage < 64 << 20
        assert i.stats.memory_limit > 64 << 20  # no limit: the host's memory, as Docker shows
        assert b.stats.pids >= 2 and i.stats.pids == 1
        assert b.stats.cpu_ns > 0 and b.memory_percent > 0
        client.pause(idle)
        (paused,) = list(client.stats([idle]))
        assert paused.containers[0].stats.paused
        client.unpause(idle)
        streamed = client.stats([idle], stream=True, interval_ms=100)
        first, second = next(streamed), next(streamed)
        assert second.containers[0].stats.read_at > first.containers[0].stats.read_at
        (once,) = list(client.stats([busy], one_shot=True))  # Docker's one-shot: at once, no CPU percent
        assert once.containers[0].stats.cpu_ns > 0 and once.containers[0].cpu_percent == 0
        with pytest.raises(InvalidArgument, match="one_shot"):
            list(client.stats([busy], one_shot=True, stream=True))
    finally:
        client.remove(busy, force=True)
        client.remove(idle, force=True)


def test_the_cli_prints_dockers_table(client: Client, engine: Engine) -> None:
    cid = client.run_detached(ContainerOptions(image="busybox", cmd=["sleep", "300"], name="statted"))
    try:
        out = subprocess.run(
            [TEU, "stats", "--no-stream", "statted"], env=engine.env(), capture_output=True, text=True, timeout=30
        )
        assert out.returncode == 0, out.stderr
        header, row = out.stdout.splitlines()
        assert header.split()[:4] == ["CONTAINER", "ID", "NAME", "CPU"] and row.split()[:2] == [cid[:12], "statted"]
        fmt = subprocess.run([TEU, "stats", "--no-stream", "--format", "{{.Name}} {{.PIDs}}", "statted"], env=engine.env(),
                             capture_output=True, text=True, timeout=30)  # fmt: skip
        assert fmt.stdout.split() == ["statted", "1"]
    finally:
        client.remove(cid, force=True)
