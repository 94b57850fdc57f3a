"""Images and filesystems: diff, commit, export, cp, tag, rmi, history, save/load, import from a URL."""

from __future__ import annotations

import http.server
import io
import json
import subprocess
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import IMAGE_TAR, REPO, Engine
from teu.client import Client, ContainerOptions
from teu.errors import FailedPrecondition, InvalidArgument, NotFound

TEU = str(REPO / ".venv" / "bin" / "teu")


def teu(engine: Engine, *args: str, data: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    """Runs the CLI against the private engine."""
    return subprocess.run([TEU, *args], env=engine.env(), input=data, capture_output=True, timeout=120)


@pytest.fixture()
def changed(client: Client) -> Iterator[str]:
    """An exited container that added /new, changed /etc and deleted /etc/group."""
    r = client.run(ContainerOptions(image="busybox", cmd=["sh", "-c", "echo x > /new; rm /etc/group"]))
    assert r.exit_code == 0
    yield r.id
    client.remove(r.id, force=True)


def test_diff_reports_add_change_delete(client: Client, changed: str) -> None:
    """diff shows A /new, C /etc, D /etc/group, in Docker's format."""
    changes = {(c.kind, c.path) for c in client.diff(changed)}
    assert {("A", "/new"), ("C", "/etc"), ("D", "/etc/group")} <= changes


def test_commit_then_run_the_new_image(client: Client, changed: str) -> None:
    """commit makes an image with the container's changes and a new CMD; its parent is recorded."""
    image = client.commit(changed, "committed:1", message="msg", changes=['CMD ["cat", "/new"]'])
    assert image.parent and "committed:1" in image.repo_tags
    r = client.run(ContainerOptions(image="committed:1", remove=True))
    assert (r.exit_code, r.stdout) == (0, b"x\n")
    gone = client.run(ContainerOptions(image="committed:1", cmd=["ls", "/etc/group"], remove=True))
    assert gone.exit_code != 0
    history = client.history("committed:1")
    assert history[0].comment == "msg" and len(history) >= 2
    client.remove_image("committed:1")


def test_export_streams_merged_filesystem(client: Client, changed: str) -> None:
    """export is the merged filesystem: the image's files plus the container's writes, minus deletions."""
    data = b"".join(client.export(changed))
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        names = set(tf.getnames())
    assert {"new", "bin/busybox", "etc/passwd"} <= {n.removeprefix("./") for n in names}
    assert "etc/group" not in {n.removeprefix("./") for n in names}


def test_cp_both_ways(engine: Engine, client: Client, changed: str, tmp_path: Path) -> None:
    """cp copies a file out of a container and a file into it."""
    assert teu(engine, "cp", f"{changed}:/new", str(tmp_path / "new")).returncode == 0
    assert (tmp_path / "new").read_text() == "x\n"
    (tmp_path / "in.txt").write_text("hello")
    assert teu(engine, "cp", str(tmp_path / "in.txt"), f"{changed}:/tmp/").returncode == 0
    assert client.copy_from(changed, "/tmp/in.txt") == {"in.txt": b"hello"}


def test_cp_into_a_container_names_the_copy_as_docker_does(engine: Engine, client: Client, changed: str,
                                                          tmp_path: Path) -> None:  # fmt: skip
    """A destination that does not exist names the copy (a file or a directory); a file there is
    replaced by a file; a directory onto a file, a missing parent and a trailing "/" on a file are
    refused, and the stat of a path tells what it is."""
    (tmp_path / "in.txt").write_text("hello")
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "y").write_text("y")
    for src, dst in (("in.txt", "/renamed"), ("dir", "/tmp/d2"), ("in.txt", "/new")):
        assert teu(engine, "cp", str(tmp_path / src), f"{changed}:{dst}").returncode == 0, (src, dst)
    assert client.copy_from(changed, "/renamed") == {"renamed": b"hello"}
    assert client.copy_from(changed, "/tmp/d2") == {"d2/y": b"y"}
    assert client.copy_from(changed, "/new") == {"new": b"hello"}
    assert (client.stat_path(changed, "/tmp/d2").isdir(), client.stat_path(changed, "/new").size) == (True, 5)
    refused = {dst: teu(engine, "cp", str(tmp_path / src), f"{changed}:{dst}") for src, dst in
               (("dir", "/new"), ("in.txt", "/no/such/x"), ("in.txt", "/new/"), ("in.txt", "/nodir/"))}  # fmt: skip
    assert {dst: r.returncode for dst, r in refused.items()} == dict.fromkeys(refused, 1)
    assert b"not a directory" in refused["/new/"].stderr
    with pytest.raises(NotFound):
        client.stat_path(changed, "/no/such/file")


def test_inspect_finds_an_image_volume_or_network_by_name(engine: Engine, client: Client) -> None:
    """`inspect NAME` is the container so named, else the image, network or volume, as docker's;
    `--type` keeps to one kind; a name nothing has is an error naming it."""
    volume = client.create_volume("insp-vol").name
    try:
        out = teu(engine, "inspect", "-f", "{{.Os}}/{{.Architecture}} {{.Id}}", "busybox")
        assert out.returncode == 0 and out.stdout.decode() == f"linux/amd64 {client.inspect_image('busybox').id}\n"
        assert teu(engine, "inspect", "-f", "{{.Name}} {{.Driver}}", volume).stdout == b"insp-vol local\n"
        assert teu(engine, "inspect", "-f", "{{.Name}}", "bridge").stdout == b"bridge\n"
        typed = teu(engine, "inspect", "--type", "container", "busybox")
        assert typed.returncode == 1 and b"No such container: busybox" in typed.stderr
        missing = teu(engine, "inspect", "no-such-thing")
        assert missing.returncode == 1 and b"No such object: no-such-thing" in missing.stderr
    finally:
        client.remove_volume(volume)


def test_info_and_version_take_a_format(engine: Engine, client: Client) -> None:
    """`info --format` and `version --format` evaluate docker's field names; json gives them all."""
    info = client.info()
    assert (
        teu(engine, "info", "--format", "{{.Images}} {{.DefaultRuntime}}").stdout.decode()
        == f"{info.images} {info.oci_runtime}\n"
    )
    assert teu(engine, "version", "--format", "{{.Server.Version}}").stdout.decode() == client.version().version + "\n"
    assert json.loads(teu(engine, "system", "info", "--format", "json").stdout)["Containers"] == client.info().containers


def test_cp_missing_path_is_not_found(client: Client, changed: str) -> None:
    """Copying a path that does not exist is NOT_FOUND."""
    with pytest.raises(NotFound):
        client.copy_from(changed, "/no/such/file")


def test_tag_rmi_and_in_use(client: Client) -> None:
    """tag adds a name; rmi of an image a container uses is refused; rmi of a name removes it."""
    client.tag("busybox", "mybox:2")
    assert "mybox:2" in client.inspect_image("mybox:2").repo_tags
    cid = client.create(ContainerOptions(image="mybox:2", cmd=["true"])).id
    client.remove_image("mybox:2")  # busybox:latest still names the image
    with pytest.raises(NotFound):
        client.inspect_image("mybox:2")
    client.remove(cid)


def test_rmi_image_used_by_container_is_refused(client: Client) -> None:
    """rmi of an image's last name while a container uses it is FAILED_PRECONDITION."""
    client.tag("busybox", "only:1")
    base = client.commit(client.run(ContainerOptions(image="busybox", cmd=["touch", "/x"])).id, "only:2")
    cid = client.create(ContainerOptions(image="only:2", cmd=["true"])).id
    with pytest.raises(FailedPrecondition):
        client.remove_image("only:2")
    client.remove(cid)
    client.remove_image("only:2")
    client.remove_image("only:1")
    del base


def test_save_load_round_trip(client: Client) -> None:
    """An image saved as docker-archive loads back and runs."""
    client.tag("busybox", "saved:1")
    archive = b"".join(client.save(["saved:1"]))
    client.remove_image("saved:1")
    loaded = client.load(io.BytesIO(archive))
    assert any("saved:1" in i.repo_tags for i in loaded)
    assert client.run(ContainerOptions(image="saved:1", cmd=["echo", "ok"], remove=True)).stdout == b"ok\n"
    client.remove_image("saved:1")


def test_load_garbage_is_invalid(client: Client) -> None:
    """A stream that is not an image archive is INVALID_ARGUMENT."""
    with pytest.raises(InvalidArgument):
        client.load(io.BytesIO(b"not a tar at all" * 100))


def test_import_from_url(engine: Engine, tmp_path: Path) -> None:
    """import fetches a tarball over http (here from a server on 127.0.0.1)."""
    (tmp_path / "r.tar").write_bytes(IMAGE_TAR.read_bytes())
    handler = lambda *a: http.server.SimpleHTTPRequestHandler(*a, directory=str(tmp_path))  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/r.tar"
        assert teu(engine, "import", url, "fromurl:1").returncode == 0
    finally:
        server.shutdown()
    out = teu(engine, "run", "--rm", "fromurl:1", "echo", "hi")
    assert out.stdout == b"hi\n"
    assert teu(engine, "rmi", "fromurl:1").returncode == 0


def test_cli_images_commands(engine: Engine) -> None:
    """images, history, system df print tables; diff prints Docker's lines."""
    assert b"busybox" in teu(engine, "images").stdout
    assert teu(engine, "history", "busybox").returncode == 0
    assert b"Images" in teu(engine, "system", "df").stdout


def test_untouched_container_has_an_empty_diff(client: Client) -> None:
    """The mount points the engine binds over (/etc/hosts, /etc/hostname, /etc/resolv.conf) never show in diff."""
    cid = client.run(ContainerOptions(image="busybox", cmd=["cat", "/etc/hosts"])).id
    assert client.diff(cid) == []
    client.remove(cid)
