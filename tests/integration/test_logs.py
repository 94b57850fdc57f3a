"""Logs: filters, several containers, rotation without loss, durability across a logs service crash."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import REPO, Engine, wait_ready
from teu.client import Client, ContainerOptions
from teu.errors import FailedPrecondition, InvalidArgument, TeuError
from teu.testing import wait_until
from teu_api.gateway.v1 import gateway_pb2 as gw

TEU = str(REPO / ".venv" / "bin" / "teu")


def finished(client: Client, script: str, **kw: object) -> str:
    """Runs busybox ``sh -c script`` to its end; returns the container id."""
    r = client.run(ContainerOptions(image="busybox", cmd=["sh", "-c", script], **kw))  # type: ignore[arg-type]
    assert r.exit_code == 0, r.stderr
    return r.id


def text(lines: object) -> list[bytes]:
    """The data of log lines."""
    return [line.data for line in lines]  # type: ignore[attr-defined]


def test_stream_filters_and_grep(client: Client) -> None:
    """--stdout-only/--stderr-only select a stream; --grep filters lines on the server."""
    cid = finished(client, "echo out1; echo ERROR err1 >&2; echo out2; echo WARN w >&2")
    assert text(client.logs(cid, stdout_only=True)) == [b"out1\n", b"out2\n"]
    assert text(client.logs(cid, stderr_only=True)) == [b"ERROR err1\n", b"WARN w\n"]
    assert text(client.logs(cid, grep="ERROR|WARN")) == [b"ERROR err1\n", b"WARN w\n"]
    with pytest.raises(InvalidArgument):
        list(client.logs(cid, grep="(unclosed"))
    client.remove(cid)


def test_since_and_until(client: Client) -> None:
    """--since/--until select lines by the time they were written."""
    cid = finished(client, "echo early; sleep 0.5; echo late")
    lines = list(client.logs(cid))
    cut = lines[1].timestamp - 1
    assert text(client.logs(cid, since=cut)) == [b"late\n"]
    assert text(client.logs(cid, until=cut)) == [b"early\n"]
    client.remove(cid)


def test_several_containers_merged_in_time_order(client: Client, engine: Engine) -> None:
    """logs of several containers interleave by time and name each line's container."""
    # a1 at 0 s, b1 at d+0.6 s, a2 at 1.2 s, b2 at d+1.8 s: in this order while b starts less than 0.6 s after a
    a = client.run_detached(ContainerOptions(image="busybox", name="mlog-a", cmd=["sh", "-c", "echo a1; sleep 1.2; echo a2"]))
    b = client.run_detached(
        ContainerOptions(image="busybox", name="mlog-b", cmd=["sh", "-c", "sleep 0.6; echo b1; sleep 1.2; echo b2"])
    )
    client.wait(a), client.wait(b)
    merged = [(line.container, line.data) for line in client.logs_many(["mlog-a", "mlog-b"])]
    assert merged == [("mlog-a", b"a1\n"), ("mlog-b", b"b1\n"), ("mlog-a", b"a2\n"), ("mlog-b", b"b2\n")]
    out = subprocess.run([TEU, "logs", "mlog-a", "mlog-b"], env=engine.env(), capture_output=True, text=True).stdout
    assert out.splitlines()[0].startswith("mlog-a") and out.splitlines()[0].endswith("a1")
    client.remove(a), client.remove(b)


def log_sizes(log_dir: Path) -> list[int]:
    """The sizes of a container's log files (current and rotated) as they are now."""
    sizes = []
    for p in log_dir.glob("*.log"):
        try:
            sizes.append(p.stat().st_size)
        except FileNotFoundError:  # removed by retention meanwhile
            pass
    return sizes


def test_rotation_keeps_every_line_within_retention(client: Client, engine: Engine) -> None:
    """With max-size 64k and max-files 3, the log rotates, -f misses nothing, and disk stays bounded."""
    # 20 bursts of 1000 lines, paced so that the engine's size checks see the log grow between bursts
    script = ("i=0; while [ $i -lt 20000 ]; do i=$((i+1)); echo line-$i-xxxxxxxxxxxxxxxxxxxxxxxxxxxx; "
              "[ $((i % 1000)) -eq 0 ] && sleep 0.3; done")  # fmt: skip
    cid = client.create(ContainerOptions(image="busybox", cmd=["sh", "-c", "sleep 0.5; " + script],
                                         log_opts={"max-size": "64k", "max-files": "3"})).id  # fmt: skip
    client.start(cid)
    followed = text(client.logs(cid, follow=True))
    assert followed == [f"line-{i}-xxxxxxxxxxxxxxxxxxxxxxxxxxxx\n".encode() for i in range(1, 20001)]
    log_dir = engine.root / "logs" / cid

    wait_until(lambda: 2 <= len(sizes := log_sizes(log_dir)) <= 4 and sum(sizes) < 400 * 1024, what="retention")  # 800 KB written
    kept = text(client.logs(cid))
    assert kept and kept[-1] == b"line-20000-xxxxxxxxxxxxxxxxxxxxxxxxxxxx\n"
    client.remove(cid)


def test_a_rotation_asked_for_starts_a_new_file_and_loses_nothing(client: Client, engine: Engine) -> None:
    """RotateLog: the container writes a new file at once, the old one is a segment that logs still reads;
    a container that does not run has no writer to rotate."""
    cid = client.run_detached(
        ContainerOptions(image="busybox", cmd=["sh", "-c", "i=0; while :; do i=$((i+1)); echo n$i; sleep 0.02; done"])
    )
    try:
        wait_until(lambda: len(text(client.logs(cid))) > 5, what="some lines")
        first = os.stat(client.inspect(cid).log_path).st_ino
        path = client.rotate_log(cid)
        assert path == client.inspect(cid).log_path and os.stat(path).st_ino != first
        wait_until(lambda: os.path.getsize(path) > 0, what="lines in the new file")
        client.stop(cid, timeout=0)
        got = [int(line.strip()[1:]) for line in text(client.logs(cid))]
        assert got == list(range(1, len(got) + 1))  # both files, in order, nothing lost
        with pytest.raises(FailedPrecondition, match="not running"):
            client.rotate_log(cid)
    finally:
        client.remove(cid, force=True)


def test_no_line_lost_when_logs_service_is_killed(client: Client, engine: Engine) -> None:
    """A container writes 100 MB of numbered lines while the logs service is SIGKILLed twice: every line is there."""
    n = 12_500_000  # "00000001\n"... : 9 bytes a line, 112 MB (675 MB of log records: keep them all)
    cid = client.run_detached(ContainerOptions(image="busybox", cmd=["sh", "-c", f"seq -w 1 {n}"], log_opts={"max-size": "2g"}))
    log_dir = engine.root / "logs" / cid
    for grown in (10 << 20, 40 << 20):  # each kill lands while the container writes
        wait_until(lambda: sum(log_sizes(log_dir)) > grown, what=f"a log of {grown} bytes")  # noqa: B023
        os.kill(engine.service_pid("logs"), signal.SIGKILL)
    client.wait(cid)
    wait_ready(client)
    deadline = time.monotonic() + 60
    while True:
        try:
            got = b"".join(ch.data for batch in client.log_chunks(gw.LogsRequest(containers=[cid])) for ch in batch.chunks)
            break
        except TeuError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    expected = "".join(f"{i:08d}\n" for i in range(1, n + 1)).encode()
    assert len(got) == len(expected) and got == expected
    client.remove(cid)


def test_cli_logs_flags(client: Client, engine: Engine) -> None:
    """The CLI's --since, --stderr-only and --grep behave like the SDK's."""
    cid = finished(client, "echo keep; echo drop >&2")
    run = lambda *a: subprocess.run([TEU, "logs", *a, cid], env=engine.env(), capture_output=True, text=True)  # noqa: E731
    assert run("--since", "10m").stdout == "keep\n"
    assert run("--stderr-only").stderr == "drop\n"
    assert run("--grep", "ke+p").stdout == "keep\n"
    client.remove(cid)
