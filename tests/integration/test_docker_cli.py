"""Docker's own command line (Debian's docker.io client) against the engine's docker.sock: what a
user of docker types, answered by Teu, with no dockerd anywhere."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import select
import signal
import struct
import subprocess
import termios
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import Engine

DOCKER = "/usr/bin/docker"  # Debian's client (make test installs docker.io; its daemon is never started)
Docker = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def docker(engine: Engine, tmp_path: Path) -> Docker:
    """Runs the docker CLI at the engine (a config directory of its own, so no user's settings apply)."""
    env = {"PATH": "/usr/bin:/bin", "DOCKER_HOST": f"unix://{engine.run_dir}/docker.sock", "DOCKER_CONFIG": str(tmp_path / "cfg")}

    def run(
        *args: str, stdin: str | bytes | None = None, check: bool = True, env_extra: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        given = stdin.encode() if isinstance(stdin, str) else stdin
        raw = subprocess.run([DOCKER, *args], env={**env, **(env_extra or {})}, input=given, capture_output=True, timeout=120)
        done = subprocess.CompletedProcess(raw.args, raw.returncode, raw.stdout.decode(errors="replace"),
                                           raw.stderr.decode(errors="replace"))  # fmt: skip
        if check:
            assert done.returncode == 0, (args, done.returncode, done.stdout, done.stderr)
        return done

    return run


def name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def test_version_and_run_rm_with_its_exit_code(docker: Docker) -> None:
    """`docker version` names Teu; `docker run --rm` prints the output and exits with the process's code,
    however fast the process ends (the removal races the CLI's wait)."""
    server = json.loads(docker("version", "--format", "{{json .Server}}").stdout)
    assert server["ApiVersion"] == "1.43" and server["MinAPIVersion"] == "1.24"
    for code in (0, 3, 7):
        done = docker("run", "--rm", "busybox", "sh", "-c", f"echo out{code}; echo err >&2; exit {code}", check=False)
        assert (done.returncode, done.stdout, done.stderr) == (code, f"out{code}\n", "err\n")
    assert docker("run", "--rm", "-i", "busybox", "cat", stdin="piped\n").stdout == "piped\n"


def test_detached_container_ps_exec_logs_inspect_stop_rm(docker: Docker) -> None:
    n = name("cli")
    cid = docker(
        "run", "-d", "--name", n, "--label", "from=cli", "busybox", "sh", "-c", "echo hello; exec sleep 300"
    ).stdout.strip()
    try:
        assert len(cid) == 64
        assert docker("ps", "--filter", "label=from=cli", "--format", "{{.Names}} {{.Status}}").stdout.startswith(f"{n} Up")
        assert docker("exec", n, "echo", "hi").stdout == "hi\n"
        assert docker("exec", n, "sh", "-c", "exit 4", check=False).returncode == 4
        assert docker("logs", n).stdout == "hello\n"
        assert docker("inspect", "-f", "{{.State.Running}} {{.Config.Labels}}", n).stdout == "true map[from:cli]\n"
        assert "sleep 300" in docker("top", n).stdout
        docker("stop", "-t", "1", n)
        assert docker("inspect", "-f", "{{.State.Status}}", n).stdout == "exited\n"
    finally:
        docker("rm", "-f", n)
    assert docker("ps", "-a", "--filter", f"name={n}", "-q").stdout == ""


def test_cp_commit_save_load_and_images(docker: Docker, tmp_path: Path) -> None:
    n, image = name("cp"), f"cli-{uuid.uuid4().hex[:8]}:1"
    docker("run", "-d", "--name", n, "busybox", "sleep", "300")
    try:
        (tmp_path / "in.txt").write_text("copied in\n")
        docker("cp", str(tmp_path / "in.txt"), f"{n}:/tmp/in.txt")
        assert docker("exec", n, "cat", "/tmp/in.txt").stdout == "copied in\n"
        docker("exec", n, "sh", "-c", "echo made inside > /tmp/out.txt")
        docker("cp", f"{n}:/tmp/out.txt", str(tmp_path / "out.txt"))
        assert (tmp_path / "out.txt").read_text() == "made inside\n"
        docker("commit", n, image)
    finally:
        docker("rm", "-f", n)
    try:
        assert docker("run", "--rm", image, "cat", "/tmp/out.txt").stdout == "made inside\n"
        docker("save", image, "-o", str(tmp_path / "saved.tar"))
        docker("rmi", image)
        assert image not in docker("images", "--format", "{{.Repository}}:{{.Tag}}").stdout
        assert docker("load", "-i", str(tmp_path / "saved.tar")).stdout == f"Loaded image: {image}\n"
        assert image in docker("images", "--format", "{{.Repository}}:{{.Tag}}").stdout.split()
    finally:
        docker("rmi", image, check=False)
    assert "No such image" in docker("save", "no-such-image:1", check=False).stderr


def test_export_import_with_a_change_and_the_refused_verbs(docker: Docker, tmp_path: Path) -> None:
    """`export` then `import -` with `--change`; `search` says clearly it is not served."""
    n, image = name("ex"), f"imp-{uuid.uuid4().hex[:8]}:1"
    docker("create", "--name", n, "busybox", "true")
    try:
        docker("export", n, "-o", str(tmp_path / "fs.tar"))
    finally:
        docker("rm", n)
    made = docker("import", "--change", 'CMD ["echo", "from-import"]', "-", image, stdin=(tmp_path / "fs.tar").read_bytes())
    assert made.stdout.startswith("sha256:"), made
    try:
        assert docker("run", "--rm", image).stdout == "from-import\n"
    finally:
        docker("rmi", image)
    assert "not served" in docker("search", "busybox", check=False).stderr


def test_build_with_the_classic_builder(docker: Docker, tmp_path: Path) -> None:
    """`docker build` (DOCKER_BUILDKIT=0): steps, a build arg, .dockerignore, the image runs; a failing
    RUN makes the CLI exit with its code; BuildKit is refused clearly."""
    image = f"dbuild-{uuid.uuid4().hex[:8]}:1"
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text('FROM busybox\nARG WHO\nRUN echo built-by-$WHO > /who\nCOPY . /ctx/\nCMD ["cat", "/who"]\n')
    (ctx / "keep.txt").write_text("k")
    (ctx / "skip.txt").write_text("s")
    (ctx / ".dockerignore").write_text("skip.txt\n")
    classic = {"DOCKER_BUILDKIT": "0"}
    built = docker("build", "-t", image, "--build-arg", "WHO=docker", str(ctx), env_extra=classic)
    try:
        assert "Step 3/5 : RUN echo built-by-$WHO > /who" in built.stdout and "Successfully tagged " + image in built.stdout
        assert docker("run", "--rm", image).stdout == "built-by-docker\n"
        assert docker("run", "--rm", image, "ls", "/ctx").stdout.split() == ["Dockerfile", "keep.txt"]
    finally:
        docker("rmi", image, check=False)
    (ctx / "Dockerfile").write_text("FROM busybox\nRUN echo failing; exit 4\n")
    failed = docker("build", str(ctx), check=False, env_extra=classic)
    assert failed.returncode == 4 and "returned a non-zero code: 4" in failed.stderr, failed
    refused = docker("build", str(ctx), check=False, env_extra={"DOCKER_BUILDKIT": "1"})
    assert refused.returncode != 0


def test_volume_and_network_commands(docker: Docker) -> None:
    vol, net, more, c = name("vol"), name("net"), name("more"), name("c")
    docker("volume", "create", vol)
    docker("network", "create", net)
    docker("network", "create", more)
    try:
        docker("create", "--name", c, "--network", net, "busybox", "sleep", "300")
        docker("network", "connect", "--alias", "second", more, c)  # before the start: it joins at the start
        docker("start", c)
        shown = json.loads(docker("inspect", "-f", "{{json .NetworkSettings.Networks}}", c).stdout)
        assert set(shown) == {net, more} and "second" in shown[more]["Aliases"], shown
        assert "inet " in docker("exec", c, "ip", "-4", "-o", "addr", "show", "eth1").stdout
        docker("rm", "-f", c)
        assert vol in docker("volume", "ls", "--format", "{{.Name}}").stdout.split()
        assert net in docker("network", "ls", "--format", "{{.Name}}").stdout.split()
        docker("run", "--rm", "-v", f"{vol}:/data", "busybox", "sh", "-c", "echo kept > /data/f")
        assert docker("run", "--rm", "-v", f"{vol}:/data:ro", "busybox", "cat", "/data/f").stdout == "kept\n"
        assert docker("volume", "inspect", "-f", "{{.Driver}}", vol).stdout == "local\n"
        assert docker("network", "inspect", "-f", "{{.Driver}}", net).stdout == "bridge\n"
    finally:
        docker("rm", "-f", c, check=False)
        docker("network", "rm", net, more)
        docker("volume", "rm", vol)
    assert "no such volume" in docker("volume", "rm", vol, check=False).stderr.lower()


def test_anonymous_volumes_and_the_prunes(docker: Docker) -> None:
    """`-v /path` (Config.Volumes) is an anonymous volume that `rm -v` removes; network, volume and
    builder prune answer as docker's, each kept to what its label filter names (this client speaks API
    1.41, whose volume prune takes named volumes too); image prune by label takes only the labelled
    image, and an unknown filter is refused."""
    c, tag = name("anon"), name("prune")
    docker("run", "--name", c, "-v", "/anon", "-v", "/tmp:/bound", "busybox", "sh", "-c", "echo x > /anon/f")
    try:
        shown = docker("inspect", "-f", "{{range .Mounts}}{{.Type}}:{{.Destination}} {{end}}", c).stdout.split()
        assert sorted(shown) == ["bind:/bound", "volume:/anon"]
        volume = docker("inspect", "-f", '{{range .Mounts}}{{if eq .Type "volume"}}{{.Name}}{{end}}{{end}}', c).stdout.strip()
        assert volume in docker("volume", "ls", "-q").stdout.split()
    finally:
        docker("rm", "-v", c)
    assert volume not in docker("volume", "ls", "-q").stdout.split()
    net, other, vol = name("pnet"), name("pother"), name("pvol")
    docker("network", "create", "--label", f"t={tag}", net)
    docker("network", "create", other)
    docker("volume", "create", "--label", f"t={tag}", vol)
    try:
        assert net in docker("network", "prune", "-f", "--filter", f"label=t={tag}").stdout
        assert other in docker("network", "ls", "--format", "{{.Name}}").stdout.split()
        assert net not in docker("network", "ls", "--format", "{{.Name}}").stdout.split()
        assert vol in docker("volume", "prune", "-f", "--filter", f"label=t={tag}").stdout  # API 1.41: named ones too
        assert "Total reclaimed space" in docker("builder", "prune", "-f").stdout
        img = f"{tag}:1"
        docker("create", "--name", c, "busybox", "true")
        docker("commit", "--change", f"LABEL t={tag}", c, img)
        docker("rm", c)
        made = docker("image", "inspect", "-f", "{{.Id}}", img).stdout.strip()
        assert made in docker("image", "prune", "-af", "--filter", f"label=t={tag}").stdout
        assert docker("image", "inspect", "-f", "{{.Id}}", "busybox").returncode == 0  # unlabelled: kept
        refused = docker("image", "prune", "-af", "--filter", "nosuch=1", check=False)
        assert refused.returncode != 0 and "prune takes" in refused.stderr
    finally:
        docker("network", "rm", other)
        docker("network", "rm", net, check=False)
        docker("volume", "rm", vol, check=False)


def test_stats_and_events(docker: Docker) -> None:
    n = name("st")
    docker("run", "-d", "--name", n, "busybox", "sleep", "300")
    try:
        row = docker("stats", "--no-stream", "--format", "{{.Name}} {{.PIDs}}", n).stdout
        assert row == f"{n} 1\n"
    finally:
        docker("rm", "-f", n)
    # the CLI sends whole seconds: an end two seconds ahead (the stream waits for it) holds the last events
    until = str(int(time.time()) + 2)
    events = docker("events", "--since", "2m", "--until", until, "--filter", f"container={n}", "--format", "{{.Action}}").stdout
    assert events.split() == ["create", "start", "kill", "die", "destroy"]


def under_pty(docker_env: dict[str, str], argv: list[str], steps: list[bytes], size: tuple[int, int]) -> tuple[bytes, int]:
    """Runs the docker CLI on a terminal of ``size`` (rows, cols), types each of ``steps`` (a
    resize to 45x132 at b"RESIZE"), and returns what it showed and its exit code (None: still running)."""
    pid, fd = pty.fork()
    if pid == 0:
        fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", *size, 0, 0))
        os.execve(DOCKER, ["docker", *argv], docker_env)
    shown = b""

    def read(seconds: float) -> None:
        nonlocal shown
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if select.select([fd], [], [], 0.05)[0]:
                try:
                    shown += os.read(fd, 4096)
                except OSError:
                    return

    read(1.5)
    for step in steps:
        if step == b"RESIZE":
            fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 45, 132, 0, 0))
            os.kill(pid, signal.SIGWINCH)
        else:
            os.write(fd, step)
        read(1.5)
    deadline = time.monotonic() + 10
    while (done := os.waitpid(pid, os.WNOHANG))[0] == 0 and time.monotonic() < deadline:
        read(0.1)
    if done[0] == 0:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    os.close(fd)
    return shown, os.waitstatus_to_exitcode(done[1]) if done[0] else -1


def test_interactive_terminals_resize_and_detach(engine: Engine, docker: Docker, tmp_path: Path) -> None:
    """`exec -it` and `run -it` on a terminal: the shell sees the terminal's size and its changes,
    the exit code comes back; ctrl-p ctrl-q detaches from `run -it`, leaving the container running."""
    env = {"PATH": "/usr/bin:/bin", "DOCKER_HOST": f"unix://{engine.run_dir}/docker.sock", "DOCKER_CONFIG": str(tmp_path / "cfg")}
    n, kept = name("tty"), name("kept")
    docker("run", "-d", "--name", n, "busybox", "sleep", "300")
    try:
        for argv in (["exec", "-it", n, "sh"], ["run", "-it", "--rm", "busybox", "sh"]):
            shown, code = under_pty(env, argv, [b"stty size\r", b"RESIZE", b"stty size; exit 3\r"], (37, 111))
            assert [line for line in shown.split(b"\r\n") if line[:1].isdigit()] == [b"37 111", b"45 132"], shown
            assert code == 3
        shown, code = under_pty(
            env, ["run", "-it", "--name", kept, "busybox", "sh"], [b"echo in-$((6*7))\r", b"\x10\x11"], (24, 80)
        )
        assert b"in-42" in shown and code == 0
        assert docker("inspect", "-f", "{{.State.Running}}", kept).stdout == "true\n"
    finally:
        docker("rm", "-f", n, kept, check=False)


def test_push_and_pull_through_a_loopback_registry(docker: Docker, tmp_path_factory: pytest.TempPathFactory) -> None:
    """`docker tag`, `push` to Debian's docker-registry on loopback, `rmi`, `pull`, `run`."""
    from test_registry import _start_registry

    registries = _start_registry(tmp_path_factory.mktemp("cli-registry"))
    registry = next(registries)
    try:
        ref = f"{registry}/cli/bb:1"
        docker("tag", "busybox", ref)
        pushed = docker("push", ref).stdout
        assert "1: digest: sha256:" in pushed, pushed
        docker("rmi", ref)
        assert "Downloaded newer image" in docker("pull", ref).stdout
        assert docker("run", "--rm", ref, "echo", "pulled").stdout == "pulled\n"
        docker("rmi", ref)
        assert docker("pull", f"{registry}/cli/none:1", check=False).returncode != 0
    finally:
        next(registries, None)


def test_login_then_push_and_pull_with_credentials(docker: Docker, tmp_path_factory: pytest.TempPathFactory) -> None:
    """`docker login` to a registry that demands a password: refused with a wrong one, accepted with the
    right one; the CLI then sends them with push and pull (X-Registry-Auth)."""
    from test_registry import PASSWORD, USER, _bcrypt, _start_registry

    root = tmp_path_factory.mktemp("cli-auth-registry")
    (root / "htpasswd").write_text(f"{USER}:{_bcrypt(PASSWORD)}\n")
    registries = _start_registry(root, f"auth:\n  htpasswd:\n    realm: teu-it\n    path: {root / 'htpasswd'}\n")
    registry = next(registries)
    try:
        bad = docker("login", "-u", USER, "--password-stdin", registry, stdin="wrong\n", check=False)
        assert bad.returncode != 0 and "incorrect username or password" in bad.stderr, bad
        ref = f"{registry}/cli/locked:1"
        docker("tag", "busybox", ref)
        assert docker("push", ref, check=False).returncode != 0  # no credentials yet
        assert "Login Succeeded" in docker("login", "-u", USER, "--password-stdin", registry, stdin=PASSWORD + "\n").stdout
        docker("push", ref)
        docker("rmi", ref)
        docker("pull", ref)
        docker("rmi", ref)
    finally:
        next(registries, None)
