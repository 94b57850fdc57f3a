"""Containers are confined like Docker's by default (seccomp, capabilities, devices, read-only
/proc paths), and Docker's switches loosen or tighten that."""

from __future__ import annotations

import errno
import io
import platform
import signal
import subprocess
import tarfile
from pathlib import Path

import pytest

from teu.client import Client, ContainerOptions
from teu.errors import FailedPrecondition, InvalidArgument
from teu_api.types.v1 import types_pb2

PROBE_SOURCE = Path(__file__).with_name("probes") / "syscalls.c"
DOCKER_DEFAULT_CAPEFF = "00000000a80425fb"


def sh(client: Client, script: str, **kw: object) -> tuple[int, str]:
    """Runs ``script`` in a fresh busybox container with options ``kw``: (exit code, output)."""
    r = client.run(ContainerOptions(image="busybox", cmd=["sh", "-c", script], remove=True, **kw))  # type: ignore[arg-type]
    return r.exit_code, (r.stdout + r.stderr).decode()


def status_field(client: Client, name: str, **kw: object) -> str:
    """A field of the container process's /proc/self/status."""
    code, out = sh(client, f"grep '^{name}:' /proc/self/status", **kw)
    assert code == 0, out
    return out.split(":", 1)[1].strip()


@pytest.fixture(scope="module")
def probe(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A static binary that tries keyctl, add_key, kexec_load and unshare(CLONE_NEWUSER)."""
    out = tmp_path_factory.mktemp("probe") / "probe"
    subprocess.run(["gcc", "-static", "-O1", "-o", str(out), str(PROBE_SOURCE)], check=True)
    return out.read_bytes()


def run_probe(client: Client, probe: bytes, *args: str, **kw: object) -> dict[str, int]:
    """Runs the syscall probe (with ``args``) in a container made with ``kw``: syscall name -> errno
    (0 = allowed); a probe killed by the filter is {"killed": its signal}."""
    cid = client.create(ContainerOptions(image="busybox", cmd=["/probe", *args], **kw)).id  # type: ignore[arg-type]
    try:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            info = tarfile.TarInfo("probe")
            info.size, info.mode = len(probe), 0o755
            tar.addfile(info, io.BytesIO(probe))
        client.copy_to(cid, "/", [buf.getvalue()])
        client.start(cid)
        code = client.wait(cid).exit_code
        if code > 128:
            return {"killed": code - 128}
        assert code == 0
        lines = b"".join(line.data for line in client.logs(cid)).decode().split()
        return {lines[i]: int(lines[i + 1]) for i in range(0, len(lines), 2)}
    finally:
        client.remove(cid, force=True)


def test_default_seccomp_filter_is_on(client: Client) -> None:
    """A container's process runs under a seccomp filter (Seccomp: 2) unless unconfined."""
    assert status_field(client, "Seccomp") == "2"
    assert status_field(client, "Seccomp", security_opt=["seccomp=unconfined"]) == "0"


def test_default_profile_refuses_dangerous_syscalls(client: Client, probe: bytes) -> None:
    """keyctl, add_key, kexec_load and unshare(CLONE_NEWUSER) fail with EPERM under the default
    profile; unconfined lets keyctl and user namespaces through."""
    assert run_probe(client, probe) == {"keyctl": 1, "add_key": 1, "kexec_load": 1, "unshare_user": 1}
    loose = run_probe(client, probe, security_opt=["seccomp=unconfined"])
    assert (loose["keyctl"], loose["unshare_user"]) == (0, 0)


@pytest.mark.skipif(platform.machine() != "x86_64", reason="x32 is an ABI of x86_64 kernels")
def test_a_foreign_abi_does_not_get_past_the_filter(client: Client, probe: bytes) -> None:
    """keyctl through the x32 ABI fails under the default profile as through the native one:
    refused (EPERM) where the kernel runs x32, else unknown (ENOSYS) or the caller killed (SIGSYS):
    the engine builds no filter for an ABI the kernel does not run."""
    assert run_probe(client, probe, "x32") in ({"keyctl_x32": errno.EPERM}, {"keyctl_x32": errno.ENOSYS},
                                               {"killed": signal.SIGSYS})  # fmt: skip


def test_a_profile_of_the_users_own_applies(client: Client, tmp_path: Path) -> None:
    """--security-opt seccomp=PROFILE (Docker's JSON format) is the filter the container gets."""
    profile = '{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdirat", "mkdir"], "action": "SCMP_ACT_ERRNO"}]}'
    code, out = sh(client, "mkdir /x", security_opt=["seccomp=" + profile])
    assert code != 0 and "Operation not permitted" in out
    assert sh(client, "mkdir /x && echo made")[1] == "made\n"


def test_no_new_privileges(client: Client) -> None:
    """--security-opt no-new-privileges sets NoNewPrivs; it is off by default, as in Docker."""
    assert status_field(client, "NoNewPrivs") == "0"
    assert status_field(client, "NoNewPrivs", security_opt=["no-new-privileges"]) == "1"
    assert status_field(client, "NoNewPrivs", security_opt=["no-new-privileges:true"]) == "1"


def test_capabilities_default_drop_and_add(client: Client) -> None:
    """Docker's default capability set; --cap-drop ALL leaves none; --cap-add adds one."""
    assert status_field(client, "CapEff") == DOCKER_DEFAULT_CAPEFF
    assert status_field(client, "CapEff", cap_drop=["ALL"]) == "0000000000000000"
    assert status_field(client, "CapEff", cap_drop=["all"], cap_add=["chown"]) == "0000000000000001"
    with_admin = int(status_field(client, "CapEff", cap_add=["CAP_NET_ADMIN"]), 16)
    assert with_admin == int(DOCKER_DEFAULT_CAPEFF, 16) | 1 << 12


def test_exec_gets_the_containers_confinement(client: Client) -> None:
    """An exec session has the container's capabilities, seccomp filter and no-new-privileges."""
    cid = client.create(ContainerOptions(image="busybox", cmd=["sleep", "60"], cap_drop=["ALL"],
                                         security_opt=["no-new-privileges"])).id  # fmt: skip
    client.start(cid)
    try:
        out = client.exec_run(cid, ["grep", "-E", "^(CapEff|Seccomp|NoNewPrivs):", "/proc/self/status"]).stdout.decode()
        fields = dict(line.split(":\t") for line in out.splitlines())
        assert fields == {"NoNewPrivs": "1", "Seccomp": "2", "CapEff": "0000000000000000"}
    finally:
        client.remove(cid, force=True)


def test_privileged(client: Client) -> None:
    """--privileged: every capability the engine holds, no seccomp, host devices, /proc/sys writable."""
    assert status_field(client, "Seccomp", privileged=True) == "0"
    assert int(status_field(client, "CapEff", privileged=True), 16) & 1 << 21  # CAP_SYS_ADMIN
    code, out = sh(client, "test -c /dev/loop-control && grep -q . /proc/kcore 2>&1 | head -c0; echo ok", privileged=True)
    assert (code, out) == (0, "ok\n")


def test_devices_only_with_device(client: Client) -> None:
    """A device node made in the container is refused by the device cgroup unless --device gives it."""
    code, out = sh(client, "mknod /dev/lc c 10 237 && exec 3</dev/lc && echo opened")
    assert code != 0 and "Operation not permitted" in out
    code, out = sh(client, "exec 3</dev/lc && echo opened", devices=[types_pb2.Device(path_on_host="/dev/loop-control",
                                                                                       path_in_container="/dev/lc")])  # fmt: skip
    assert (code, out) == (0, "opened\n")


def test_proc_sys_is_read_only_and_read_only_root(client: Client) -> None:
    """/proc/sys is read-only; --read-only makes / read-only while /dev/shm stays writable."""
    code, out = sh(client, "echo 1 > /proc/sys/kernel/core_uses_pid")
    assert code != 0 and "Read-only file system" in out
    code, out = sh(client, "touch /dev/shm/ok && touch /x", read_only=True)
    assert code != 0 and "Read-only file system" in out


def test_masked_and_read_only_paths_replace_the_defaults(client: Client) -> None:
    """masked_paths and readonly_paths (Docker's HostConfig fields, a CRI container's) replace the
    defaults: a masked file reads empty, a read-only dir takes no file; empty lists lift them."""
    assert sh(client, "wc -c < /etc/passwd", masked_paths=["/etc/passwd"]) == (0, "0\n")
    code, out = sh(client, "touch /tmp/x", readonly_paths=["/tmp"])
    assert code != 0 and "Read-only file system" in out, out
    assert sh(client, "head -c1 /proc/kcore >/dev/null 2>&1 && echo read")[1] != "read\n"  # masked by default
    mounted = "grep -c ' /proc/fs ' /proc/self/mountinfo"  # each default read-only path is a mount of its own
    assert (sh(client, mounted)[1], sh(client, mounted, readonly_paths=[])[1]) == ("1\n", "0\n")
    with pytest.raises(InvalidArgument, match="not an absolute path"):
        sh(client, "true", masked_paths=["proc/kcore"])


def test_ulimit(client: Client) -> None:
    """--ulimit sets the process's limits; one above the engine's own hard limit is refused."""
    code, out = sh(client, "ulimit -n; ulimit -Hn", ulimits=[types_pb2.Ulimit(name="nofile", soft=100, hard=200)])
    assert (code, out) == (0, "100\n200\n")
    with pytest.raises(InvalidArgument, match="exceeds"):
        sh(client, "true", ulimits=[types_pb2.Ulimit(name="nofile", soft=-1, hard=-1)])


@pytest.mark.parametrize(
    ("kw", "error", "match"),
    [
        ({"cap_add": ["CAP_FLY"]}, InvalidArgument, "unknown capability"),
        ({"security_opt": ["seccomp={not json"]}, InvalidArgument, "seccomp"),
        ({"security_opt": ["apparmor=docker-default"]}, FailedPrecondition, "AppArmor"),
        ({"security_opt": ["bogus"]}, InvalidArgument, "security-opt"),
        ({"devices": [types_pb2.Device(path_on_host="/dev/teu-none")]}, InvalidArgument, "No such file"),
        ({"devices": [types_pb2.Device(path_on_host="/etc/passwd")]}, InvalidArgument, "not a device"),
        ({"ulimits": [types_pb2.Ulimit(name="fly", soft=1, hard=1)]}, InvalidArgument, "ulimit"),
        ({"userns": "private"}, InvalidArgument, "userns"),
    ],
)
def test_bad_confinement_options_are_refused_and_leave_nothing(client: Client, kw: dict[str, object],
                                                                error: type[Exception], match: str) -> None:  # fmt: skip
    """Bad confinement options fail the create with a clear error, and no container is left."""
    before = {s.id for s in client.list(all=True)}
    with pytest.raises(error, match=match):
        client.create(ContainerOptions(image="busybox", cmd=["true"], **kw))  # type: ignore[arg-type]
    assert {s.id for s in client.list(all=True)} == before


def test_info_shows_the_default_confinement(client: Client) -> None:
    """info lists the seccomp profile that applies by default."""
    assert "name=seccomp,profile=builtin" in client.info().security_options


def test_container_root_cannot_write_the_hosts_healthcheck_binary(client: Client) -> None:
    """The prober's busybox is the host's file: root in the container can neither write it where it
    is bound nor through the prober's /proc/<pid>/exe (CVE-2019-5736's path), and the host's copy
    stays as it was."""
    host = Path("/usr/bin/busybox").resolve()
    before = host.read_bytes()
    h = types_pb2.HealthConfig(test=["CMD", "true"], interval_ns=100_000_000)
    cid = client.run_detached(ContainerOptions(image="busybox", cmd=["sleep", "300"], healthcheck=h))
    try:
        client.wait(cid, condition="healthy")
        script = ('pid=$(ps -o pid,args | grep "[_]teu_prober" | awk \'{print $1}\'); '
                  'printf x >> /dev/.teu/busybox; a=$?; printf x >> /proc/$pid/exe; b=$?; '
                  'cp /bin/true /proc/$pid/exe; c=$?; echo "$pid $a $b $c"')  # fmt: skip
        pid, *codes = client.exec_run(cid, ["sh", "-c", script]).stdout.decode().split()
        assert pid.isdigit() and codes == ["1", "1", "1"], (pid, codes)
    finally:
        client.remove(cid, force=True)
    assert host.read_bytes() == before
