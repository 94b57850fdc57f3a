"""`run` end to end: output, exit codes, options, isolation seen from inside."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from conftest import REPO, Engine
from teu.client import Client, ContainerOptions
from teu.errors import InvalidArgument, NotFound


def run(client: Client, *cmd: str, **kw: object) -> object:
    """Runs busybox with ``cmd`` attached and removes it afterwards."""
    return client.run(ContainerOptions(image="busybox", cmd=list(cmd), remove=True, **kw))  # type: ignore[arg-type]


def test_echo_prints_hello(client: Client) -> None:
    """The first promise: a command runs in a container and its output comes back."""
    r = run(client, "echo", "hello")
    assert (r.exit_code, r.stdout, r.stderr) == (0, b"hello\n", b"")


def test_exit_code_and_separate_streams(client: Client) -> None:
    """The exit code is the process's, and stdout and stderr stay apart."""
    r = run(client, "sh", "-c", "echo out; echo err >&2; exit 3")
    assert (r.exit_code, r.stdout, r.stderr) == (3, b"out\n", b"err\n")


def test_command_not_found_is_127_and_record_kept(client: Client) -> None:
    """A command missing from the image gives 127 and leaves an exited container behind."""
    r = client.run(ContainerOptions(image="busybox", cmd=["nope"]))
    assert r.exit_code == 127
    assert "nope" in r.error
    d = client.inspect(r.id)
    assert (d.summary.exit_code, d.summary.state) == (127, 3)
    client.remove(r.id)


def test_not_executable_is_126(client: Client) -> None:
    """A path that cannot be executed gives 126."""
    assert run(client, "/etc/passwd").exit_code == 126


def test_hostname_is_short_id(client: Client) -> None:
    """The container's hostname is its short id, and /etc/hostname agrees."""
    r = run(client, "sh", "-c", "hostname; cat /etc/hostname")
    assert r.stdout.decode().split() == [r.id[:12], r.id[:12]]


def test_ps_sees_only_the_container(client: Client) -> None:
    """A pid namespace: the container's process is pid 1 and sees nothing of the host."""
    r = run(client, "ps", "-o", "pid,comm")
    lines = r.stdout.decode().split("\n")[1:]
    assert [ln.split()[0] for ln in lines if ln.strip()] == ["1"]


def test_host_files_invisible(client: Client, tmp_path: Path) -> None:
    """A host file is not reachable from inside: the root is the image's own."""
    marker = tmp_path / "teu-host-marker"
    marker.write_text("secret")
    r = run(client, "sh", "-c", f"test -e {marker} && echo visible || echo invisible")
    assert r.stdout == b"invisible\n"


def test_network_is_loopback_only(client: Client) -> None:
    """A network namespace with only lo."""
    r = run(client, "ls", "/sys/class/net")
    assert r.stdout.split() == [b"lo"]


def test_hosts_file_on_a_loopback_only_network(client: Client) -> None:
    """Without a network, /etc/hosts still names localhost and the container's hostname."""
    r = client.run(ContainerOptions(image="busybox", cmd=["cat", "/etc/hosts"], hostname="web", remove=True))
    lines = [line.split() for line in r.stdout.decode().splitlines()]
    assert ["127.0.0.1", "localhost"] in lines and ["127.0.1.1", "web"] in lines


def test_options_env_workdir_user_hostname(client: Client) -> None:
    """-e, -w, -u and --hostname reach the process."""
    r = run(client, "sh", "-c", 'echo "$FOO $(pwd) $(id -u):$(id -g) $(hostname) $HOME"',
            env=["FOO=bar"], workdir="/tmp", user="nobody", hostname="box")  # fmt: skip
    assert r.stdout == b"bar /tmp 65534:65534 box /nonexistent\n"


def test_numeric_user_and_group(client: Client) -> None:
    """-u uid:gid works without passwd entries."""
    assert run(client, "id", "-u", user="1234:99").stdout == b"1234\n"


def test_entrypoint_override(client: Client) -> None:
    """--entrypoint replaces the image's entrypoint; the command becomes its arguments."""
    assert run(client, "hi", "there", entrypoint=["echo"]).stdout == b"hi there\n"


def test_default_command_from_image(client: Client) -> None:
    """Without a command the image's CMD (sh) runs: with no stdin it exits 0 at once."""
    assert client.run(ContainerOptions(image="busybox", remove=True)).exit_code == 0


def test_capabilities_are_dockers_default(client: Client) -> None:
    """Docker's default capability set: no CAP_SYS_ADMIN (bit 21), so mounting is refused."""
    r = run(client, "sh", "-c", "grep CapEff /proc/self/status; mount -t tmpfs none /mnt")
    cap_eff = int(r.stdout.split()[1], 16)
    assert cap_eff == 0xA80425FB
    assert r.exit_code != 0


def test_masked_proc_paths(client: Client) -> None:
    """Sensitive /proc files read as empty, and /proc/sys is read-only."""
    masked = next(p for p in ("/proc/kcore", "/proc/keys", "/proc/timer_list", "/proc/sched_debug") if Path(p).exists())
    r = run(client, "sh", "-c", f"cat {masked} | wc -c; echo 1 > /proc/sys/kernel/domainname || echo ro")
    assert r.stdout.split() == [b"0", b"ro"]


def test_unknown_image_is_not_found(client: Client) -> None:
    """An image that does not exist is NOT_FOUND."""
    with pytest.raises(NotFound):
        client.run(ContainerOptions(image="nosuchimage", cmd=["true"]))


def test_invalid_name_is_rejected(client: Client) -> None:
    """A name with characters Docker refuses is INVALID_ARGUMENT, and nothing is created."""
    before = len(client.list(all=True))
    with pytest.raises(InvalidArgument):
        client.create(ContainerOptions(image="busybox", cmd=["true"], name="bad/name"))
    assert len(client.list(all=True)) == before


@pytest.mark.parametrize("options", [dict(memory=1024), dict(memory=-1), dict(nano_cpus=100 * 10**9), dict(nano_cpus=-5)])
def test_absurd_limits_are_rejected(client: Client, options: dict[str, int]) -> None:
    """Negative or absurd memory/cpus are INVALID_ARGUMENT."""
    with pytest.raises(InvalidArgument):
        client.create(ContainerOptions(image="busybox", cmd=["true"], **options))  # type: ignore[arg-type]


def test_cli_exit_codes(engine: Engine) -> None:
    """The CLI exits with the container's code, 125 for engine errors, with one clear line."""
    teu = str(REPO / ".venv" / "bin" / "teu")
    env = engine.env()
    ok = subprocess.run([teu, "run", "--rm", "busybox", "echo", "hello"], env=env, capture_output=True)
    assert (ok.returncode, ok.stdout) == (0, b"hello\n")
    three = subprocess.run([teu, "run", "--rm", "busybox", "sh", "-c", "exit 3"], env=env, capture_output=True)
    assert three.returncode == 3
    bad = subprocess.run([teu, "run", "--rm", "--pull", "never", "nosuchimage"], env=env, capture_output=True)
    assert bad.returncode == 125
    assert bad.stderr.decode().strip().count("\n") == 0 and b"No such image" in bad.stderr
