"""User namespace remapping (TEU_USERNS_REMAP): container root is an unprivileged uid on the host,
images are shared (idmapped mounts, no copies), what containers write keeps its own ids on disk."""

from __future__ import annotations

import io
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from seclib import as_nobody

from teu.client import Client, ContainerOptions
from teu.errors import FailedPrecondition
from teu.testing import PrivateEngine

BASE, SIZE = 231072, 65536  # as the remapped fixture in conftest.py sets


@pytest.fixture()
def teu(remapped: PrivateEngine) -> Iterator[Client]:
    """A client of the remapping engine."""
    with Client(remapped.target) as c:
        yield c


def sh(teu: Client, script: str, **kw: object) -> tuple[int, str]:
    """Runs ``script`` in a fresh container: (exit code, output)."""
    r = teu.run(ContainerOptions(image="busybox", cmd=["sh", "-c", script], remove=True, **kw))  # type: ignore[arg-type]
    return r.exit_code, (r.stdout + r.stderr).decode()


def test_container_root_is_an_unprivileged_host_uid(teu: Client) -> None:
    """Inside, root's ids map to the engine's range; seen from the host, the process runs as that uid."""
    assert sh(teu, "cat /proc/self/uid_map")[1].split() == ["0", str(BASE), str(SIZE)]
    cid = teu.create(ContainerOptions(image="busybox", cmd=["sleep", "60"])).id
    teu.start(cid)
    try:
        assert teu.exec_run(cid, ["id", "-u"]).stdout == b"0\n"
        pid = teu.inspect(cid).pid
        uids = next(line for line in Path(f"/proc/{pid}/status").read_text().splitlines() if line.startswith("Uid:"))
        assert uids.split()[1:] == [str(BASE)] * 4
    finally:
        teu.remove(cid, force=True)


def test_image_files_are_the_containers_own_and_writes_keep_their_ids(teu: Client) -> None:
    """Image files show as owned by the container's root; files it makes come out of cp with the
    container's ids (0, 1000), not the host's shifted ones."""
    cid = teu.create(ContainerOptions(image="busybox", cmd=["sh", "-c",
        "stat -c '%u %g' /bin/busybox; echo a > /made; echo b > /theirs; chown 1000:1000 /theirs; sleep 60"])).id  # fmt: skip
    teu.start(cid)
    try:
        for _ in range(100):
            logs = b"".join(line.data for line in teu.logs(cid)).decode()
            if logs:
                break
        assert logs.split() == ["0", "0"]
        owners = {}
        for path in ("/made", "/theirs"):
            with tarfile.open(fileobj=io.BytesIO(b"".join(teu.copy_from_tar(cid, path)))) as tar:
                member = tar.getmembers()[0]
                owners[path] = (member.uid, member.gid)
        assert owners == {"/made": (0, 0), "/theirs": (1000, 1000)}
        assert {c.path for c in teu.diff(cid)} >= {"/made", "/theirs"}
    finally:
        teu.remove(cid, force=True)


def test_non_root_user_in_a_remapped_container(teu: Client) -> None:
    """A container user other than root runs as its shifted host uid and can use /tmp."""
    assert sh(teu, "touch /tmp/x && id -u", user="1000:1000") == (0, "1000\n")


def test_a_remapped_container_reads_its_own_cgroup(teu: Client) -> None:
    """Its memory limit is readable inside (programs size themselves by it), also by a non-root user."""
    script = "cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max"
    assert sh(teu, script, memory=64 << 20, user="1000:1000") == (0, f"{64 << 20}\n")


def test_userns_host_opts_out(teu: Client) -> None:
    """--userns=host runs the container with the host's ids, as without remapping."""
    assert sh(teu, "cat /proc/self/uid_map", userns="host")[1].split() == ["0", "0", "4294967295"]


def test_privileged_needs_userns_host(teu: Client) -> None:
    """A privileged container must opt out of remapping, as in Docker; then it runs."""
    with pytest.raises(FailedPrecondition, match="userns=host"):
        teu.create(ContainerOptions(image="busybox", cmd=["true"], privileged=True))
    assert sh(teu, "true", privileged=True, userns="host") == (0, "")


def test_info_and_state_modes(teu: Client, remapped: PrivateEngine) -> None:
    """info names the mapping; the state root is traversable only by the range's group, not by a local user."""
    assert f"name=userns,uidmap=0:{BASE}:{SIZE},gidmap=0:{BASE}:{SIZE}" in teu.info().security_options
    st = remapped.root.stat()
    assert (st.st_mode & 0o777, st.st_gid) == (0o710, BASE)
    assert as_nobody("ls", str(remapped.root / "runtime" / "containers")).returncode != 0
