"""The `teu` command through the user's resident client (the default) and in its own process
(TEU_RESIDENT=0): the same output, the same exit codes, for every kind of command; the resident
serves only its user and is started again when it is gone."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import uuid
from pathlib import Path

import pytest

from conftest import REPO, Engine
from teu.client import Client, ContainerOptions
from teu.testing import residents, wait_until

TEU = str(REPO / ".venv" / "bin" / "teu")


def both(engine: Engine, *args: str, stdin: bytes | None = None, cwd: Path | None = None) -> tuple[object, object]:
    """(through the resident, in its own process): each (exit code, stdout, stderr)."""
    out = []
    for resident in ("1", "0"):
        env = {**engine.env(), "TEU_RESIDENT": resident}
        done = subprocess.run([TEU, *args], env=env, input=stdin, capture_output=True, timeout=120, cwd=cwd)
        out.append((done.returncode, done.stdout, done.stderr))
    return out[0], out[1]


@pytest.fixture(scope="module")
def named(engine: Engine) -> str:
    name = f"res-{uuid.uuid4().hex[:8]}"
    with Client(engine.target) as c:
        c.run_detached(ContainerOptions(image="busybox", cmd=["sh", "-c", "echo one; echo two >&2; sleep 300"], name=name,
                                        labels={"resident": "yes"}))  # fmt: skip
    return name


@pytest.mark.parametrize(
    "args",
    [
        ("ps", "-a", "--filter", "label=resident=yes", "--format", "{{.Names}} {{.Image}}"),
        ("images", "--format", "{{.Repository}}:{{.Tag}}"),
        ("inspect", "-f", "{{.Name}} {{.Config.Image}} {{.State.Status}}", "NAMED"),
        ("logs", "NAMED"),
        ("exec", "NAMED", "sh", "-c", "echo out; echo err >&2; exit 4"),
        ("run", "--rm", "busybox", "sh", "-c", "echo run; exit 3"),
        ("inspect", "no-such-container"),
        ("no-such-verb",),
        ("run", "--memory", "bogus", "busybox", "true"),
        ("--help",),
        ("network", "ls", "--format", "{{.Name}}"),
        ("container", "ls", "-a", "--filter", "label=resident=yes", "--format", "{{.Names}}"),
        ("container", "inspect", "-f", "{{.State.Status}}", "NAMED"),
        ("info", "--format", "{{.DefaultRuntime}} {{.CgroupVersion}}"),
        ("version", "--format", "{{.Server.Version}}"),
        ("search", "busybox"),
    ],
)
def test_the_same_answers_through_the_resident(engine: Engine, named: str, args: tuple[str, ...]) -> None:
    fast, plain = both(engine, *(named if a == "NAMED" else a for a in args))
    assert fast == plain


def test_stdin_a_closed_pipe_and_the_working_folder(engine: Engine, named: str, tmp_path: Path) -> None:
    """Piped input reaches the container; `| head -1` ends the command; relative paths are the caller's."""
    fast, plain = both(engine, "run", "--rm", "-i", "busybox", "cat", stdin=b"piped\n")
    assert fast == plain == (0, b"piped\n", b"")
    sh = f"{TEU} logs --tail 100 {named} 2>/dev/null | head -1; echo ${{PIPESTATUS[0]}}"
    done = subprocess.run(["bash", "-c", sh], env=engine.env(), capture_output=True, timeout=60)
    assert done.stdout.splitlines()[0] == b"one"
    old = os.umask(0o077)
    try:
        subprocess.run([TEU, "export", "-o", "rel.tar", named], env=engine.env(), cwd=tmp_path, check=True, timeout=120)
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "rel.tar").stat().st_mode) & 0o077 == 0  # the caller's umask


def test_a_signal_reaches_the_command_and_its_fate_is_the_callers(engine: Engine) -> None:
    """SIGTERM to `teu` is the command's (here: --sig-proxy=false, it dies of it, and so does `teu`)."""
    proc = subprocess.Popen([TEU, "run", "--rm", "--sig-proxy=false", "busybox", "sh", "-c", "echo ready; sleep 30"],
                            env=engine.env(), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)  # fmt: skip
    assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == -signal.SIGTERM


def test_the_resident_is_the_users_own_and_comes_back(engine: Engine, tmp_path: Path) -> None:
    """A resident of its own (its folder under this test's XDG_RUNTIME_DIR, so no other test's command
    is cut): 0700 folder, 0600 socket; killed, the next command still runs and a new one starts."""
    env = {**engine.env(), "XDG_RUNTIME_DIR": str(tmp_path)}
    folder = tmp_path / f"teu-cli-{os.getuid()}"
    try:
        subprocess.run([TEU, "version"], env=env, capture_output=True, timeout=60, check=True)
        wait_until(lambda: any(sock.exists() for sock in residents(folder).values()), timeout=10, what="a resident client")
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700 and folder.stat().st_uid == os.getuid()
        for pid, sock in residents(folder).items():
            assert stat.S_IMODE(sock.stat().st_mode) == 0o600
            os.kill(pid, signal.SIGKILL)
        wait_until(lambda: not residents(folder), timeout=10, what="the resident's end")
        assert subprocess.run([TEU, "ps", "-q"], env=env, capture_output=True, timeout=60).returncode == 0
        wait_until(lambda: residents(folder), timeout=10, what="a new resident client")
    finally:
        for pid in residents(folder):
            os.kill(pid, signal.SIGTERM)  # this test's own: the others go with the session
