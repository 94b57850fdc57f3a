"""The run/create flags people paste from Docker's documentation, checked from inside and outside the container."""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

import pytest

from conftest import REPO, Engine
from teu.client import Client, ContainerOptions
from teu.errors import InvalidArgument

TEU = str(REPO / ".venv" / "bin" / "teu")


def teu(engine: Engine, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([TEU, *args], env=engine.env(), capture_output=True, text=True, timeout=60)


def sh(script: str, **kw: object) -> ContainerOptions:
    return ContainerOptions(image="busybox", cmd=["sh", "-c", script], remove=True, **kw)  # type: ignore[arg-type]


def cgroup_file(pid: int, controller: str, name: str) -> str:
    """A cgroup file of process ``pid``, read on the host (v2: the unified tree; v1: the controller's)."""
    v2 = Path("/sys/fs/cgroup/cgroup.controllers").exists()
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if v2 and controllers == "":
            return (Path("/sys/fs/cgroup") / path.lstrip("/") / name).read_text().strip()
        if not v2 and controller in controllers.split(","):
            return (Path("/sys/fs/cgroup") / controller / path.lstrip("/") / name).read_text().strip()
    raise FileNotFoundError(f"no {controller} cgroup for {pid}")


def test_env_file_label_file_and_cidfile(engine: Engine, client: Client, tmp_path: Path) -> None:
    (tmp_path / "env").write_text("# settings\nGREETING=hello world\n\nFROM_CALLER\n")
    (tmp_path / "labels").write_text("tier=web\n# no\nowner=ops\n")
    cidfile = tmp_path / "cid"
    out = subprocess.run(
        [TEU, "run", "--env-file", str(tmp_path / "env"), "--label-file", str(tmp_path / "labels"), "-l", "owner=me",
         "--cidfile", str(cidfile), "busybox", "sh", "-c", 'echo "$GREETING/$FROM_CALLER"'],
        env={**engine.env(), "FROM_CALLER": "inherited"}, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout == "hello world/inherited\n"
    cid = cidfile.read_text()
    assert len(cid) == 64
    assert dict(client.inspect(cid).config.labels) == {"tier": "web", "owner": "me"}
    again = teu(engine, "create", "--cidfile", str(cidfile), "busybox")
    assert again.returncode != 0 and "container ID file found" in again.stderr
    client.remove(cid)


def test_attach_chooses_the_streams_shown(engine: Engine) -> None:
    out = teu(engine, "run", "--rm", "-a", "stderr", "busybox", "sh", "-c", "echo out; echo err >&2")
    assert (out.returncode, out.stdout, out.stderr) == (0, "", "err\n")


def test_stop_signal_is_what_stop_sends(client: Client) -> None:
    script = 'trap "exit 42" USR1; while :; do sleep 0.1; done'
    cid = client.run_detached(ContainerOptions(image="busybox", cmd=["sh", "-c", script], stop_signal="SIGUSR1"))
    try:
        client.stop(cid, timeout=10)
        assert client.wait(cid).exit_code == 42
    finally:
        client.remove(cid, force=True)
    with pytest.raises(InvalidArgument, match="invalid signal"):
        client.create(sh("true", stop_signal="SIGNOPE"))


def test_shm_size_group_add_oom_score_adj_and_sysctls(client: Client) -> None:
    script = (
        "df -k /dev/shm | tail -1; id -G; cat /proc/self/oom_score_adj; cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/shmmni"
    )
    r = client.run(sh(script, shm_size=128 << 20, group_add=["1234"], oom_score_adj=500,
                      sysctls={"net.ipv4.ip_forward": "1", "kernel.shmmni": "1000"}))  # fmt: skip
    assert r.exit_code == 0, r.stderr
    shm, groups, oom, forward, shmmni = r.stdout.decode().splitlines()
    assert shm.split()[1] == str(128 << 10)
    assert "1234" in groups.split()
    assert (oom, forward, shmmni) == ("500", "1", "1000")


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"sysctls": {"kernel.hostname": "x"}}, "not in a namespace"),
        ({"sysctls": {"vm.swappiness": "1"}}, "not in a namespace"),
        ({"sysctls": {"net.ipv4.ip_forward": "1"}, "network": "host"}, "--network host"),
        ({"oom_score_adj": 2000}, "oom score adj"),
        ({"memory_swap": 64 << 20}, "memory limit"),
        ({"memory": 64 << 20, "memory_swap": 32 << 20}, "memoryswap"),
        ({"memory": 64 << 20, "memory_reservation": 128 << 20}, "reservation"),
        ({"cpuset_cpus": "0-99"}, "not available"),
        ({"cpuset_cpus": "zero"}, "cpuset"),
        ({"cpu_period": 10}, "period"),
        ({"cpu_shares": 1}, "shares"),
        ({"nano_cpus": 500_000_000, "cpu_quota": 50_000}, "conflicting"),
        ({"shm_size": -1}, "shm"),
        ({"log_opts": {"max-file": "2", "max-files": "2"}}, "max-file"),
    ],
)
def test_bad_values_are_refused_with_dockers_reasons(client: Client, options: dict[str, object], match: str) -> None:
    before = {c.id for c in client.list(all=True)}
    with pytest.raises(InvalidArgument, match=match):
        client.create(ContainerOptions(image="busybox", cmd=["true"], **options))  # type: ignore[arg-type]
    assert {c.id for c in client.list(all=True)} == before


def test_cgroup_limits_land_where_the_kernel_reads_them(client: Client) -> None:
    """--memory-swap, --memory-reservation, --cpu-shares, --cpuset-cpus, --cpu-period/--cpu-quota, and max-file."""
    cid = client.run_detached(ContainerOptions(
        image="busybox", cmd=["sleep", "60"], memory=64 << 20, memory_swap=128 << 20, memory_reservation=32 << 20,
        cpu_shares=512, cpuset_cpus="0", cpu_period=50_000, cpu_quota=25_000, log_opts={"max-file": "2"},
    ))  # fmt: skip
    try:
        pid = client.inspect(cid).pid
        assert Path(f"/proc/{pid}/status").read_text().split("Cpus_allowed_list:")[1].split()[0] == "0"
        if Path("/sys/fs/cgroup/cgroup.controllers").exists():  # v2
            assert cgroup_file(pid, "", "memory.max") == str(64 << 20)
            assert cgroup_file(pid, "", "cpu.max") == "25000 50000"
        else:
            assert cgroup_file(pid, "memory", "memory.limit_in_bytes") == str(64 << 20)
            assert cgroup_file(pid, "memory", "memory.soft_limit_in_bytes") == str(32 << 20)
            if Path("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes").exists():
                assert cgroup_file(pid, "memory", "memory.memsw.limit_in_bytes") == str(128 << 20)
            assert cgroup_file(pid, "cpu", "cpu.shares") == "512"
            assert (cgroup_file(pid, "cpu", "cpu.cfs_quota_us"), cgroup_file(pid, "cpu", "cpu.cfs_period_us")) == (
                "25000",
                "50000",
            )
    finally:
        client.remove(cid, force=True)


def test_add_host_and_dns_flags_land_in_the_containers_files(client: Client) -> None:
    """--add-host (host-gateway is the engine's bridge address), --dns, --dns-search, --dns-option."""
    r = client.run(sh("cat /etc/hosts; echo ---; cat /etc/resolv.conf", extra_hosts=["db:10.1.2.3", "gw:host-gateway"],
                      dns=["192.0.2.53"], dns_search=["example.test"], dns_options=["ndots:2"]))  # fmt: skip
    hosts, resolv = r.stdout.decode().split("---\n")
    assert "10.1.2.3\tdb" in hosts.splitlines()
    (gw,) = [line.split("\t")[0] for line in hosts.splitlines() if line.endswith("\tgw")]
    assert gw.count(".") == 3 and gw.endswith(".1")
    lines = resolv.splitlines()
    assert [ln for ln in lines if ln.startswith("nameserver")] == ["nameserver 192.0.2.53"]
    assert "search example.test" in lines and "options ndots:2" in lines


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"extra_hosts": ["no-address"]}, "--add-host"),
        ({"extra_hosts": ["db:999.1.1.1"]}, "invalid IP address"),
        ({"dns": ["resolver.example"]}, "invalid IP address"),
        ({"dns_options": ["bad option"]}, "--dns-option"),
        ({"dns": ["192.0.2.53"], "network": "host"}, "--network host"),
    ],
)
def test_bad_name_resolution_options_are_refused(client: Client, options: dict[str, object], match: str) -> None:
    with pytest.raises(InvalidArgument, match=match):
        client.create(ContainerOptions(image="busybox", cmd=["true"], **options))  # type: ignore[arg-type]


def test_network_container_shares_loopback_and_names(client: Client) -> None:
    """--network container:web: a second container reaches web's server on 127.0.0.1 and shows web's hostname."""
    serve = "mkdir /www && echo shared > /www/index.html && exec httpd -f -p 127.0.0.1:8080 -h /www"
    web = client.run_detached(ContainerOptions(image="busybox", cmd=["sh", "-c", serve], name="web", hostname="webhost"))
    try:
        script = "for i in $(seq 50); do wget -qO- http://127.0.0.1:8080/ && break; sleep 0.1; done; hostname"
        r = client.run(sh(script, network="container:web"))
        assert r.stdout.decode().split() == ["shared", "webhost"], r.stderr
        with pytest.raises(InvalidArgument, match="conflicting options"):
            client.create(sh("true", network="container:web", hostname="other"))
    finally:
        client.remove(web, force=True)


def test_ipc_pid_and_uts_sharing(client: Client) -> None:
    """--ipc container: needs a shareable donor and sees its /dev/shm; --pid container: sees its
    processes; --pid host and --uts host are the host's."""
    import socket

    from teu.errors import FailedPrecondition

    donor = client.run_detached(ContainerOptions(image="busybox", cmd=["sh", "-c", "echo x > /dev/shm/marker; exec sleep 60"],
                                                 name="donor", ipc="shareable"))  # fmt: skip
    private = client.run_detached(ContainerOptions(image="busybox", cmd=["sleep", "60"], name="private-donor"))
    try:
        r = client.run(sh("for i in $(seq 50); do [ -e /dev/shm/marker ] && break; sleep 0.1; done; cat /dev/shm/marker; ps -o comm | grep -c sleep",
                          ipc="container:donor", pid="container:donor"))  # fmt: skip
        assert r.stdout.decode().split() == ["x", "1"], r
        before = {c.id for c in client.list(all=True)}
        with pytest.raises(FailedPrecondition, match="non-shareable IPC"):
            client.run(sh("true", ipc="container:private-donor"))
        assert {c.id for c in client.list(all=True)} == before  # --rm took the container whose start was refused
        host = client.run(sh("cat /proc/1/comm; hostname", pid="host", uts="host")).stdout.decode().split()
        assert host[0] != "sh" and host[1] == socket.gethostname()
        with pytest.raises(InvalidArgument, match="--ipc mode"):
            client.create(sh("true", ipc="sideways"))
    finally:
        client.remove(donor, force=True)
        client.remove(private, force=True)


def test_inspect_shows_the_options_as_dockers_host_config(engine: Engine, tmp_path: Path) -> None:
    import json

    created = teu(engine, "create", "-v", f"{tmp_path}:/data:ro", "--tmpfs", "/run", "--dns", "192.0.2.1", "--shm-size", "128m",
                  "-m", "64m", "--memory-swap", "-1", "--cpu-shares", "512", "--sysctl", "net.ipv4.ip_forward=1",
                  "--add-host", "db:10.0.0.9", "--stop-signal", "SIGINT", "--expose", "8080", "busybox")  # fmt: skip
    assert created.returncode == 0, created.stderr
    cid = created.stdout.strip()
    try:
        (shown,) = json.loads(teu(engine, "inspect", cid).stdout)
        hc = shown["HostConfig"]
        assert hc["Binds"] == [f"{tmp_path}:/data:ro"]
        assert hc["Mounts"] == [{"Type": "tmpfs", "Source": "", "Target": "/run", "ReadOnly": False}]
        assert (hc["Dns"], hc["ExtraHosts"], hc["ShmSize"], hc["Sysctls"]) == (
            ["192.0.2.1"], ["db:10.0.0.9"], 128 << 20, {"net.ipv4.ip_forward": "1"},
        )  # fmt: skip
        assert (hc["Memory"], hc["MemorySwap"], hc["CpuShares"]) == (64 << 20, -1, 512)
        assert (shown["Config"]["StopSignal"], shown["Config"]["ExposedPorts"]) == ("SIGINT", {"8080/tcp": {}})
    finally:
        teu(engine, "rm", cid)


def test_an_exec_gets_the_containers_added_groups(client: Client) -> None:
    """--group-add applies to exec'd processes too, with -u or without (as in Docker)."""
    cid = client.run_detached(ContainerOptions(image="busybox", cmd=["sleep", "300"], group_add=["1234", "5678"]))
    try:
        assert {"1234", "5678"} <= set(client.exec_run(cid, ["id", "-G"]).stdout.decode().split())
        assert {"1234", "5678"} <= set(client.exec_run(cid, ["id", "-G"], user="nobody").stdout.decode().split())
    finally:
        client.remove(cid, force=True)


def _memory_cgroup(pid: int) -> str:
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if "memory" in controllers.split(",") or controllers == "":
            return path
    raise AssertionError("no memory cgroup")


def _remove_cgroup_tree(top: str) -> None:
    """rmdir of ``top`` (absolute, from the root) in every hierarchy, deepest first (what runc leaves)."""
    roots = [Path("/sys/fs/cgroup"), *(p for p in Path("/sys/fs/cgroup").iterdir() if p.is_dir())]
    for root in roots:
        here = root / top.lstrip("/")
        if not here.is_dir():
            continue
        for d in sorted((p for p in [here, *here.rglob("*")] if p.is_dir()), key=lambda p: -len(p.parts)):
            try:
                d.rmdir()
            except OSError:
                pass


def test_cgroup_parent_absolute_relative_and_refused(engine: Engine, client: Client) -> None:
    """--cgroup-parent: an absolute path puts the container's cgroup under it from the root of every
    hierarchy, a relative one under the engine's own parent; a path that climbs is refused."""
    top = f"/teu-test-{uuid.uuid4().hex[:8]}"
    try:
        cid = client.run_detached(ContainerOptions(image="busybox", cmd=["sleep", "60"], cgroup_parent=f"{top}/pod1"))
        try:
            pid = client.inspect(cid).pid
            assert _memory_cgroup(pid) == f"{top}/pod1/{cid}"
        finally:
            client.remove(cid, force=True)
    finally:
        _remove_cgroup_tree(top)
    r = teu(engine, "run", "-d", "--cgroup-parent", "sub", "busybox", "sleep", "60")
    assert r.returncode == 0, r.stderr
    cid = r.stdout.strip()
    try:
        shown = teu(engine, "inspect", "-f", "{{.HostConfig.CgroupParent}}", cid).stdout.strip()
        assert shown == "sub" and _memory_cgroup(client.inspect(cid).pid).endswith(f"/{engine.cgroup_parent}/sub/{cid}")
    finally:
        client.remove(cid, force=True)
    with pytest.raises(InvalidArgument, match="invalid cgroup parent"):
        client.run(ContainerOptions(image="busybox", cmd=["true"], cgroup_parent="../escape"))
