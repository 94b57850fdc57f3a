"""Signals to a container's init through a pidfd, only when /proc shows it in the container's cgroup."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import pytest

from teu_runtime import initsignal

CID = "c" * 64


def fake_proc(tmp_path: Path, pid: int, cgroup: str) -> Path:
    """A /proc whose ``pid`` sits in cgroup ``cgroup`` (v1 lines and v2's)."""
    (tmp_path / str(pid)).mkdir(parents=True)
    (tmp_path / str(pid) / "cgroup").write_text(f"4:memory:{cgroup}\n0::/\n")
    return tmp_path


def test_the_init_in_its_cgroup_is_signalled(tmp_path: Path) -> None:
    child = subprocess.Popen(["sleep", "30"])
    try:
        proc = fake_proc(tmp_path, child.pid, f"/teu-x/{CID}")
        assert initsignal.send(child.pid, CID, signal.SIGTERM, proc) is True
        assert child.wait(timeout=10) == -signal.SIGTERM
    finally:
        child.kill()
        child.wait()


def test_a_process_of_another_cgroup_is_left_to_the_runtime(tmp_path: Path) -> None:
    """A pid the kernel gave to another process (not in the container's cgroup) is never signalled."""
    child = subprocess.Popen(["sleep", "30"])
    try:
        for other in (f"/teu-x/{'d' * 64}", f"/teu-x/{CID}x", "/"):
            proc = fake_proc(tmp_path / other.replace("/", "_"), child.pid, other)
            assert initsignal.send(child.pid, CID, signal.SIGKILL, proc) is False
        assert child.poll() is None
    finally:
        child.kill()
        child.wait()


def test_a_gone_process_is_process_lookup_error(tmp_path: Path) -> None:
    child = subprocess.Popen(["true"])
    child.wait()
    with pytest.raises(ProcessLookupError):
        initsignal.send(child.pid, CID, signal.SIGKILL, tmp_path)
    assert initsignal.send(0, CID, signal.SIGKILL, tmp_path) is False
