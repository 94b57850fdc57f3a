"""cp into a running container: the files land in the container's own filesystem, resolved in its
view, with their modes and owners; nothing a container does to its paths sends them to the host."""

from __future__ import annotations

import io
import os
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from teu.client import Client, ContainerOptions
from teu.errors import FailedPrecondition, InvalidArgument, NotFound, TeuError
from teu.testing import PrivateEngine


def tar_of(*members: tuple[str, bytes, int]) -> bytes:
    """A tar of regular files (name, content, mode), owned by root."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data, mode in members:
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), mode
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@pytest.fixture()
def running(client: Client) -> Iterator[str]:
    """A running busybox container."""
    cid = client.create(ContainerOptions(image="busybox", cmd=["sleep", "300"])).id
    client.start(cid)
    yield cid
    client.remove(cid, force=True)


def test_cp_into_a_running_container(client: Client, running: str) -> None:
    """Files copied into a running container are there at once, with their modes (setuid kept)."""
    assert client.copy_to(running, "/tmp", [tar_of(("hello", b"hi\n", 0o4755))]) == 1
    r = client.exec_run(running, ["sh", "-c", "cat /tmp/hello; stat -c '%a %u' /tmp/hello"])
    assert r.stdout == b"hi\n4755 0\n"


def test_cp_into_a_missing_directory_is_not_found(client: Client, running: str) -> None:
    """A destination that does not exist in the running container is NOT_FOUND."""
    with pytest.raises(NotFound):
        client.copy_to(running, "/no/such/dir", [tar_of(("x", b"", 0o644))])


def test_cp_follows_the_containers_symlinks_inside_it(client: Client, running: str) -> None:
    """A destination the container made a symlink to / resolves to the container's / , not the host's."""
    name = "teu-cp-" + os.urandom(6).hex()
    assert client.exec_run(running, ["ln", "-s", "/", "/escape"]).exit_code == 0
    client.copy_to(running, "/escape", [tar_of((name, b"inside\n", 0o644))])
    assert not Path("/", name).exists()
    assert client.exec_run(running, ["cat", f"/{name}"]).stdout == b"inside\n"


def test_swapping_the_destination_for_a_symlink_never_reaches_the_host(client: Client) -> None:
    """While the container keeps swapping the destination between a directory and a symlink to /,
    a hundred copies land in its own filesystem and never in the host's /."""
    swap = "mkdir -p /d.real; while true; do mv /d.real /d; mv /d /d.real; ln -s / /d; rm /d; done"
    cid = client.create(ContainerOptions(image="busybox", cmd=["sh", "-c", swap])).id
    client.start(cid)
    names = [f"teu-race-{os.urandom(6).hex()}" for _ in range(100)]
    copied = 0
    try:
        for name in names:
            try:
                copied += client.copy_to(cid, "/d", [tar_of((name, b"x", 0o644))])
            except TeuError:
                pass  # the swap was mid-way (no /d, or not a directory at that moment): a clear refusal
        leaked = [n for n in names if Path("/", n).exists()]
        assert leaked == [] and copied > 0
    finally:
        client.remove(cid, force=True)
        for n in names:
            Path("/", n).unlink(missing_ok=True)


def test_cp_into_a_remapped_container_keeps_its_ids(remapped: PrivateEngine) -> None:
    """In a remapped container, a file copied in as root's shows as root's (shifted to its range on the host)."""
    with Client(remapped.target) as teu:
        cid = teu.create(ContainerOptions(image="busybox", cmd=["sleep", "300"])).id
        teu.start(cid)
        try:
            teu.copy_to(cid, "/", [tar_of(("mine", b"m", 0o600))])
            assert teu.exec_run(cid, ["stat", "-c", "%u %g %a", "/mine"]).stdout == b"0 0 600\n"
            outside = io.BytesIO()
            with tarfile.open(fileobj=outside, mode="w") as tar:
                info = tarfile.TarInfo("theirs")
                info.uid = 70000  # beyond the container's 65536 ids
                tar.addfile(info, io.BytesIO(b""))
            with pytest.raises(InvalidArgument, match="outside the container's ids"):
                teu.copy_to(cid, "/", [outside.getvalue()])
        finally:
            teu.remove(cid, force=True)


def test_stopped_container_still_takes_copies(client: Client) -> None:
    """cp into a created, not yet running container still works (through storage)."""
    cid = client.create(ContainerOptions(image="busybox", cmd=["cat", "/greeting"])).id
    try:
        client.copy_to(cid, "/", [tar_of(("greeting", b"hello\n", 0o644))])
        client.start(cid)
        assert client.wait(cid).exit_code == 0
        assert b"".join(line.data for line in client.logs(cid)) == b"hello\n"
    finally:
        client.remove(cid, force=True)


def test_cp_replaces_planted_device_nodes_and_fifos_instead_of_writing_through(client: Client, running: str) -> None:
    """A device node or a FIFO the container put where a copied file lands is replaced by the file:
    the copy (host root, outside the container's device cgroup) never opens it."""
    assert client.exec_run(running, ["sh", "-c", "mknod /tmp/dev c 1 3 && mkfifo /tmp/pipe"]).exit_code == 0
    client.copy_to(running, "/tmp", [tar_of(("dev", b"file\n", 0o644), ("pipe", b"file\n", 0o644))])
    r = client.exec_run(running, ["sh", "-c", "cat /tmp/dev /tmp/pipe; stat -c %F /tmp/dev /tmp/pipe"])
    assert r.stdout == b"file\nfile\nregular file\nregular file\n"


def test_cp_into_a_read_only_container_is_refused(client: Client) -> None:
    """A container with a read-only root filesystem takes no copies while it runs, as in Docker."""
    cid = client.create(ContainerOptions(image="busybox", cmd=["sleep", "300"], read_only=True)).id
    client.start(cid)
    try:
        with pytest.raises(FailedPrecondition, match="read-only"):
            client.copy_to(cid, "/tmp", [tar_of(("x", b"", 0o644))])
    finally:
        client.remove(cid, force=True)
