"""A local unprivileged user gains nothing from the engine's state: no path to a container's root
filesystem (a setuid file planted by container root), no container's environment, no API socket."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from seclib import as_nobody

from teu.client import Client, ContainerOptions
from teu.testing import PrivateEngine, wait_until


@pytest.fixture()
def teu(open_engine: PrivateEngine) -> Iterator[Client]:
    """A client of the engine in a world-readable place."""
    with Client(open_engine.target) as c:
        yield c


def test_setuid_file_planted_by_container_root_is_out_of_a_local_users_reach(teu: Client, open_engine: PrivateEngine) -> None:
    """A setuid copy of a shell made by root in a running container cannot be reached, let alone run,
    by a local user through the container's root filesystem on the host."""
    plant = "cp /bin/busybox /tmp/sh && chmod 4755 /tmp/sh && touch /tmp/planted && sleep 300"
    cid = teu.create(ContainerOptions(image="busybox", cmd=["sh", "-c", plant])).id
    teu.start(cid)
    try:
        rootfs = open_engine.root / "runtime" / "containers" / cid / "rootfs"
        wait_until((rootfs / "tmp" / "planted").exists)
        assert (rootfs / "tmp" / "sh").stat().st_mode & stat.S_ISUID  # the plant is there, for root
        tried = as_nobody(str(rootfs / "tmp" / "sh"), "-c", "id -u; cat /proc/self/status")
        assert tried.returncode != 0 and "Permission denied" in tried.stderr
        assert "Uid" not in tried.stdout
        assert as_nobody("ls", str(rootfs / "tmp")).returncode != 0
    finally:
        teu.remove(cid, force=True)


def test_a_containers_environment_is_not_readable_by_a_local_user(teu: Client, open_engine: PrivateEngine) -> None:
    """A secret passed with -e appears in no file a local user can read (specs, databases, exec specs, logs)."""
    secret = "s3cr3t-" + os.urandom(6).hex()
    cid = teu.create(ContainerOptions(image="busybox", cmd=["sh", "-c", "echo $PASSWORD; sleep 300"],
                                      env=[f"PASSWORD={secret}"])).id  # fmt: skip
    teu.start(cid)
    try:
        assert teu.exec_run(cid, ["true"], env=[f"TOKEN={secret}"]).exit_code == 0
        found = as_nobody("grep", "-rl", secret, str(open_engine.root), str(open_engine.run_dir))
        assert found.stdout == ""
        # and root does find it (the search would see it if the modes allowed)
        found_by_root = [p for p in open_engine.root.rglob("config.json") if secret.encode() in p.read_bytes()]
        assert found_by_root
    finally:
        teu.remove(cid, force=True)


def test_state_is_private_and_files_are_0600(teu: Client, open_engine: PrivateEngine) -> None:
    """The state root and each service's directory are 0700; databases and OCI specs are 0600."""
    cid = teu.create(ContainerOptions(image="busybox", cmd=["sleep", "300"])).id
    teu.start(cid)
    try:
        root = open_engine.root
        for d in (root, *(root / s for s in ("runtime", "storage", "logs"))):
            assert stat.S_IMODE(d.stat().st_mode) == 0o700, d
        bundle = root / "runtime" / "containers" / cid
        for f in (bundle / "config.json", root / "runtime" / "runtime.db"):
            assert stat.S_IMODE(f.stat().st_mode) == 0o600, f
        for f in (bundle / "hosts", bundle / "hostname"):
            assert stat.S_IMODE(f.stat().st_mode) == 0o644, f  # read by the container's users
    finally:
        teu.remove(cid, force=True)


def test_unprivileged_container_user_still_reads_its_own_files(teu: Client) -> None:
    """A container running as a non-root user lists / and reads /etc/hosts and /etc/hostname."""
    r = teu.run(ContainerOptions(image="busybox", user="1000:1000", remove=True,
                                 cmd=["sh", "-c", "ls / >/dev/null && cat /etc/hosts /etc/hostname >/dev/null && echo ok"]))  # fmt: skip
    assert (r.exit_code, r.stdout) == (0, b"ok\n")


def test_api_sockets_are_not_open_to_local_users(open_engine: PrivateEngine) -> None:
    """Every service socket is 0600 root (0660 root:teu for the gateway where that group exists), and
    a local user cannot connect to the gateway."""
    for sock in Path(open_engine.run_dir).glob("*.sock"):
        mode = stat.S_IMODE(sock.stat().st_mode)
        assert mode in (0o600, 0o660) and sock.stat().st_uid == 0, sock
    probe = "import socket,sys; s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])"
    tried = as_nobody("python3", "-c", probe, str(open_engine.run_dir / "gateway.sock"))
    assert tried.returncode != 0 and "Permission denied" in tried.stderr
