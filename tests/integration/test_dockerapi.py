"""Docker's Engine API on the engine's docker.sock, driven by docker-py (Docker's own Python client)."""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import docker.errors
import pytest

from conftest import Engine
from teu.client import Client
from teu.testing import wait_until


@pytest.fixture
def dclient(engine: Engine) -> Iterator[docker.DockerClient]:
    c = docker.DockerClient(base_url=f"unix://{engine.run_dir}/docker.sock", version="auto")
    yield c
    c.close()


def test_ping_version_and_info(dclient: docker.DockerClient) -> None:
    assert dclient.ping() is True
    v = dclient.version()
    assert (v["ApiVersion"], v["MinAPIVersion"], v["Os"]) == ("1.43", "1.24", "linux")
    info = dclient.info()
    assert info["Images"] >= 1 and info["OSType"] == "linux" and info["NCPU"] >= 1


def test_docker_py_runs_containers(dclient: docker.DockerClient) -> None:
    """containers.run (create, start, wait, logs, remove), detached runs, logs by stream, lists, inspect."""
    assert dclient.containers.run("busybox", ["sh", "-c", "echo hello; echo oops >&2"], remove=True) == b"hello\n"
    name, mark = f"dpy-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex[:8]
    c = dclient.containers.run(
        "busybox", ["sh", "-c", "echo out; echo err >&2; exit 3"], detach=True, name=name, labels={"mark": mark}
    )
    assert c.wait()["StatusCode"] == 3
    assert (c.logs(stdout=True, stderr=False), c.logs(stdout=False, stderr=True)) == (b"out\n", b"err\n")
    assert c.logs(timestamps=True).split(b" ", 1)[0].endswith(b"Z")
    c.reload()
    assert (c.name, c.status, c.labels, c.attrs["State"]["ExitCode"]) == (name, "exited", {"mark": mark}, 3)
    assert [x.id for x in dclient.containers.list(all=True, filters={"label": f"mark={mark}"})] == [c.id]
    assert dclient.containers.list(filters={"label": f"mark={mark}"}) == []  # not running
    c.remove()
    with pytest.raises(docker.errors.NotFound):
        dclient.containers.get(c.id)


def test_stop_kill_restart_and_the_304s(dclient: docker.DockerClient) -> None:
    c = dclient.containers.run("busybox", ["sleep", "300"], detach=True)
    api = dclient.api
    assert api._post(api._url("/containers/{0}/start", c.id)).status_code == 304  # already started
    c.kill(signal="SIGKILL")
    assert c.wait()["StatusCode"] == 137
    assert api._post(api._url("/containers/{0}/stop", c.id)).status_code == 304  # already stopped
    c.restart(timeout=1)
    c.reload()
    assert c.status == "running"
    c.remove(force=True)


def test_images_and_errors_in_dockers_shape(dclient: docker.DockerClient) -> None:
    assert "busybox:latest" in [t for i in dclient.images.list() for t in i.tags]
    assert dclient.images.get("busybox").tags == ["busybox:latest"]
    with pytest.raises(docker.errors.NotFound) as missing:
        dclient.containers.get("no-such-container")
    assert "No such container" in str(missing.value)
    api = dclient.api
    bad = api._post(api._url("/containers/create"), data="{not json", headers={"Content-Type": "application/json"})
    assert (bad.status_code, "JSON" in bad.json()["message"]) == (400, True)
    unknown = api._get(api._url("/no/such/endpoint"))
    assert (unknown.status_code, unknown.json()) == (404, {"message": "page not found"})
    too_new = api._get(api.base_url + "/v1.99/version")
    assert too_new.status_code == 400 and "too new" in too_new.json()["message"]
    no_image = api._post_json(api._url("/containers/create"), data={"Cmd": ["true"]})
    assert no_image.status_code == 400


def test_pause_rename_top_changes_and_events(dclient: docker.DockerClient) -> None:
    since = int(time.time())
    c = dclient.containers.run("busybox", ["sh", "-c", "touch /made; sleep 300"], detach=True)
    try:
        c.pause()
        c.reload()
        assert c.status == "paused"
        c.unpause()
        new = f"renamed-{uuid.uuid4().hex[:8]}"
        c.rename(new)
        c.reload()
        assert c.name == new
        top = c.top()
        assert "PID" in top["Titles"] and any("sleep" in " ".join(p) for p in top["Processes"])
        wait_until(lambda: {"Path": "/made", "Kind": 1} in (c.diff() or []), what="the change")
    finally:
        c.remove(force=True)
    seen = [(e["Type"], e["Action"]) for e in dclient.events(since=since, until=int(time.time()) + 1, decode=True,
                                                               filters={"container": c.id})]  # fmt: skip
    assert seen[:5] == [("container", a) for a in ("create", "start", "pause", "unpause", "rename")]
    assert seen[-1] == ("container", "destroy")


def test_volumes_and_networks(dclient: docker.DockerClient) -> None:
    mark = uuid.uuid4().hex[:8]
    v = dclient.volumes.create(f"dv{mark}", labels={"mark": mark})
    assert (v.name, v.attrs["Labels"], v.attrs["Driver"]) == (f"dv{mark}", {"mark": mark}, "local")
    assert f"dv{mark}" in [x.name for x in dclient.volumes.list(filters={"label": f"mark={mark}"})]
    assert dclient.containers.run("busybox", ["sh", "-c", "echo hi > /v/f; cat /v/f"], volumes={f"dv{mark}": {"bind": "/v"}},
                                  remove=True) == b"hi\n"  # fmt: skip
    v.remove()
    with pytest.raises(docker.errors.NotFound):
        dclient.volumes.get(f"dv{mark}")
    n = dclient.networks.create(f"dn{mark}", labels={"mark": mark})
    assert dclient.networks.get(n.id).name == f"dn{mark}"
    assert [x.id for x in dclient.networks.list(names=[f"dn{mark}"])] == [n.id]
    n.remove()
    with pytest.raises(docker.errors.NotFound):
        dclient.networks.get(f"dn{mark}")


def test_docker_py_pulls_from_a_loopback_registry(
    dclient: docker.DockerClient, client: Client, tmp_path_factory: pytest.TempPathFactory
) -> None:
    from test_registry import _start_registry

    registries = _start_registry(tmp_path_factory.mktemp("dockerapi-registry"))
    registry = next(registries)
    try:
        ref = f"{registry}/dockerapi/bb"
        client.tag("busybox", f"{ref}:1")
        list(client.push(f"{ref}:1", insecure=True))
        client.remove_image(f"{ref}:1")
        pulled = dclient.images.pull(ref, tag="1")
        assert f"{ref}:1" in pulled.tags
        assert dclient.containers.run(f"{ref}:1", ["echo", "pulled"], remove=True) == b"pulled\n"
        dclient.images.remove(f"{ref}:1")
        with pytest.raises(docker.errors.APIError):
            dclient.images.pull(f"{registry}/dockerapi/none", tag="1")
    finally:
        next(registries, None)


def test_exec_run_with_and_without_demux_and_a_terminal(dclient: docker.DockerClient) -> None:
    """docker-py's exec_run: create, then a start that takes the connection over (101 UPGRADED)."""
    c = dclient.containers.run("busybox", ["sleep", "300"], detach=True)
    try:
        r = c.exec_run(["sh", "-c", "echo out; echo err >&2; exit 4"], demux=True)
        assert (r.exit_code, r.output) == (4, (b"out\n", b"err\n"))
        assert c.exec_run(["echo", "tty"], tty=True).output == b"tty\r\n"
        detached = c.exec_run(["sh", "-c", "sleep 0.2; touch /done"], detach=True)
        assert not detached.output and detached.exit_code is None
        wait_until(lambda: c.exec_run(["test", "-e", "/done"]).exit_code == 0, what="the detached exec")
        api = dclient.api
        ex = api.exec_create(c.id, ["true"])
        api.exec_start(ex["Id"])
        assert api.exec_inspect(ex["Id"])["ExitCode"] == 0
        assert api._post_json(api._url("/exec/{0}/start", ex["Id"]), data={}).status_code == 409
        with pytest.raises(docker.errors.NotFound):
            api.exec_inspect("0" * 64)
    finally:
        c.remove(force=True)


def test_stats_in_dockers_shape(dclient: docker.DockerClient) -> None:
    """docker-py's stats: one reading with a precpu a moment before (so a CPU percent can be computed),
    a one-shot, and a stream."""
    c = dclient.containers.run("busybox", ["sh", "-c", "while :; do :; done"], detach=True, mem_limit="64m")
    try:
        s = c.stats(stream=False)
        cpu, pre = s["cpu_stats"], s["precpu_stats"]
        percent = (cpu["cpu_usage"]["total_usage"] - pre["cpu_usage"]["total_usage"]) / (
            cpu["system_cpu_usage"] - pre["system_cpu_usage"]) * cpu["online_cpus"] * 100  # fmt: skip
        assert percent > 20, s
        assert (s["memory_stats"]["limit"], s["pids_stats"]["current"], s["name"]) == (64 << 20, 1, "/" + c.name)
        assert c.stats(stream=False, one_shot=True)["precpu_stats"]["cpu_usage"]["total_usage"] == 0
        readings = c.stats(stream=True, decode=True)
        first, second = next(readings), next(readings)
        assert second["cpu_stats"]["cpu_usage"]["total_usage"] > first["cpu_stats"]["cpu_usage"]["total_usage"]
        readings.close()
    finally:
        c.remove(force=True)


def test_update_commit_export_tag_history_prune_and_df(dclient: docker.DockerClient) -> None:
    mark = uuid.uuid4().hex[:8]
    c = dclient.containers.run("busybox", ["sh", "-c", "echo made > /made; sleep 300"], detach=True, labels={"mark": mark})
    try:
        c.update(mem_limit="96m", restart_policy={"Name": "on-failure", "MaximumRetryCount": 2})
        c.reload()
        assert (c.attrs["HostConfig"]["Memory"], c.attrs["HostConfig"]["RestartPolicy"]["Name"]) == (96 << 20, "on-failure")
        wait_until(lambda: c.exec_run(["test", "-e", "/made"]).exit_code == 0, what="the file")
        image = c.commit(repository=f"committed{mark}", tag="1", changes=["CMD cat /made"])
        assert f"committed{mark}:1" in image.tags
        assert dclient.containers.run(f"committed{mark}:1", remove=True) == b"made\n"
        tar = b"".join(c.export())
        assert b"made/" not in tar and b"made\n" in tar
        image.tag(f"tagged{mark}", "2")
        assert f"tagged{mark}:2" in dclient.images.get(image.id).tags
        assert len(image.history()) >= 2
        df = dclient.df()
        assert df["LayersSize"] > 0 and any(x["Id"] == c.id for x in df["Containers"])
    finally:
        c.remove(force=True)
    stopped = dclient.containers.run("busybox", ["true"], detach=True, labels={"mark": mark})
    stopped.wait()
    pruned = dclient.containers.prune(filters={"label": f"mark={mark}"})
    assert pruned["ContainersDeleted"] == [stopped.id]
    for ref in (f"committed{mark}:1", f"tagged{mark}:2"):
        dclient.images.remove(ref)
    assert dclient.images.prune()["SpaceReclaimed"] >= 0


def test_put_and_get_archives(dclient: docker.DockerClient) -> None:
    """docker-py's put_archive and get_archive (docker cp both ways), with the path's stat."""
    import io
    import tarfile

    c = dclient.containers.run("busybox", ["sleep", "300"], detach=True)
    try:
        data = io.BytesIO()
        with tarfile.open(fileobj=data, mode="w") as tar:
            info = tarfile.TarInfo("hello.txt")
            info.size = 6
            tar.addfile(info, io.BytesIO(b"hello\n"))
        assert c.put_archive("/tmp", data.getvalue()) is True
        assert c.exec_run(["cat", "/tmp/hello.txt"]).output == b"hello\n"
        bits, st = c.get_archive("/tmp/hello.txt")
        assert (st["name"], st["size"]) == ("hello.txt", 6)
        with tarfile.open(fileobj=io.BytesIO(b"".join(bits))) as tar:
            member = tar.getmembers()[0]
            assert (member.name, tar.extractfile(member).read()) == ("hello.txt", b"hello\n")  # type: ignore[union-attr]
        with pytest.raises(docker.errors.NotFound):
            c.get_archive("/no/such/file")
        assert dclient.api.head(dclient.api._url("/containers/{0}/archive", c.id), params={"path": "/tmp"}).status_code == 200
    finally:
        c.remove(force=True)


def test_exec_with_stdin_over_the_taken_over_connection(dclient: docker.DockerClient) -> None:
    """exec -i: the client's bytes after the 101 are the process's stdin, its half-close stdin's end,
    and the output still comes back after it."""
    import socket as sockets
    import struct

    c = dclient.containers.run("busybox", ["sleep", "300"], detach=True)
    try:
        api = dclient.api
        ex = api.exec_create(c.id, ["sh", "-c", "cat; echo done >&2"], stdin=True)
        sock = api.exec_start(ex["Id"], socket=True)._sock
        sock.sendall(b"hello\n")
        sock.sendall(b"world\n")
        sock.shutdown(sockets.SHUT_WR)
        got, data = {1: b"", 2: b""}, b""
        sock.settimeout(15)
        while chunk := sock.recv(65536):
            data += chunk
        sock.close()
        while data:
            kind, size = struct.unpack(">BxxxL", data[:8])
            got[kind], data = got[kind] + data[8 : 8 + size], data[8 + size :]
        assert got == {1: b"hello\nworld\n", 2: b"done\n"}
        assert api.exec_inspect(ex["Id"])["ExitCode"] == 0
    finally:
        c.remove(force=True)


def test_attach_before_start_sees_every_byte_and_feeds_stdin(dclient: docker.DockerClient) -> None:
    """As `docker run -i` does: create, attach (stdin, stdout, stderr), start, write, half-close; the
    output comes back framed and the stream ends at the exit."""
    import socket as sockets
    import struct

    c = dclient.containers.create("busybox", ["sh", "-c", "echo first; cat; echo last >&2"], stdin_open=True)
    try:
        api = dclient.api
        sock = api.attach_socket(c.id, params={"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1})._sock
        c.start()
        sock.sendall(b"typed\n")
        sock.shutdown(sockets.SHUT_WR)
        sock.settimeout(15)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
        sock.close()
        got = {1: b"", 2: b""}
        while data:
            kind, size = struct.unpack(">BxxxL", data[:8])
            got[kind], data = got[kind] + data[8 : 8 + size], data[8 + size :]
        assert got == {1: b"first\ntyped\n", 2: b"last\n"}
        assert c.wait()["StatusCode"] == 0
    finally:
        c.remove(force=True)


def _raw(engine: Engine, request: bytes, timeout: float = 10) -> bytes:
    """One raw HTTP exchange on docker.sock (``Connection: close``): the answer, until the engine closes."""
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(timeout)
        s.connect(str(engine.run_dir / "docker.sock"))
        s.sendall(request)
        answer = b""
        while chunk := s.recv(65536):
            answer += chunk
        return answer


def test_hostile_http_gets_clear_errors_and_blocks_no_one(engine: Engine, dclient: docker.DockerClient) -> None:
    """Unknown endpoints, bad JSON, a body that is no object, huge headers, a client that never ends
    its request: each gets Docker's JSON error (or is cut off), and other clients are served meanwhile."""
    post = b"POST /v1.43/containers/create HTTP/1.1\r\nHost: d\r\nContent-Type: application/json\r\nConnection: close\r\n"
    cases = [
        (b"GET /v1.43/no/such/endpoint HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n", b"404", b'"message"'),
        (post + b"Content-Length: 4\r\n\r\n{bad", b"400", b"not valid JSON"),
        (post + b"Content-Length: 5\r\n\r\n[1,2]", b"400", b"must be a JSON object"),
        (b"GET /_ping HTTP/1.1\r\nHost: d\r\nX-Big: " + b"a" * 20000 + b"\r\nConnection: close\r\n\r\n", b"400", b""),
        (b"GET /v1.99/containers/json HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n", b"400", b"too new"),
    ]
    for request, status, words in cases:
        answer = _raw(engine, request)
        assert answer.split(b" ", 2)[1] == status and words in answer, (request[:60], answer[:300])
    with socket.socket(socket.AF_UNIX) as slow:  # half a request, never finished
        slow.connect(str(engine.run_dir / "docker.sock"))
        slow.sendall(b"POST /v1.43/containers/create HTTP/1.1\r\nHost: d\r\nContent-Length: 1000\r\n\r\n{")
        started = time.monotonic()
        assert dclient.ping() is True and dclient.containers.list() is not None
        assert time.monotonic() - started < 5


def test_attach_with_logs_replays_what_was_written(engine: Engine, dclient: docker.DockerClient) -> None:
    """attach with logs=1: the recorded output first (an exited container: only that); with stream=1
    on a running one, what it writes next follows."""
    done = dclient.containers.run("busybox", ["sh", "-c", "echo one; echo two >&2"], detach=True)
    try:
        done.wait()
        assert done.attach(stdout=True, stderr=True, logs=True, stream=False) == b"one\ntwo\n"
        assert done.attach(stdout=True, stderr=False, logs=True, stream=False) == b"one\n"
    finally:
        done.remove()
    live = dclient.containers.run("busybox", ["sh", "-c", "echo before; read x; echo after"], detach=True, stdin_open=True)
    try:
        wait_until(lambda: live.logs() == b"before\n", timeout=10)
        # a raw connection, read whole: docker-py's attach_socket hands over the socket under its
        # buffered HTTP reader, so bytes that came with the headers (the replay) may be left behind
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(10)
            s.connect(str(engine.run_dir / "docker.sock"))
            s.sendall(f"POST /containers/{live.id}/attach?stdin=1&stdout=1&stream=1&logs=1 HTTP/1.1\r\nHost: docker\r\n"
                      "Connection: Upgrade\r\nUpgrade: tcp\r\n\r\n".encode())  # fmt: skip
            got = b""
            while b"\r\n\r\n" not in got:
                got += s.recv(4096)
            head, _, got = got.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 101")
            s.sendall(b"go\n")
            while b"after" not in got:
                got += s.recv(4096)
        assert got == b"\x01\x00\x00\x00\x00\x00\x00\x07before\n\x01\x00\x00\x00\x00\x00\x00\x06after\n"
    finally:
        live.remove(force=True)


def test_docker_py_builds(dclient: docker.DockerClient, tmp_path: Path) -> None:
    """images.build: the image and its log (docker-py finds the id in the aux line), build args,
    labels, a target, the cache on a second build; a failing step raises BuildError with its output."""
    (tmp_path / "Dockerfile").write_text(
        'FROM busybox AS base\nARG N=0\nRUN echo n=$N > /n\n\nFROM base AS final\nLABEL stage=final\nCMD ["cat", "/n"]\n'
    )
    image, logs = dclient.images.build(path=str(tmp_path), tag="dpy-build:1", buildargs={"N": "5"}, labels={"by": "docker-py"})
    try:
        lines = "".join(chunk.get("stream", "") for chunk in logs)
        assert "Step 1/" in lines and "Successfully built" in lines
        assert image.labels == {"by": "docker-py", "stage": "final"} and "dpy-build:1" in image.tags
        assert dclient.containers.run("dpy-build:1", remove=True) == b"n=5\n"
        again, logs = dclient.images.build(path=str(tmp_path), tag="dpy-build:1", buildargs={"N": "5"}, target="base")
        assert "Using cache" in "".join(chunk.get("stream", "") for chunk in logs) and again.id != image.id
    finally:
        dclient.images.remove("dpy-build:1", force=True)
    (tmp_path / "Dockerfile").write_text("FROM busybox\nRUN echo before-failing; exit 2\n")
    with pytest.raises(docker.errors.BuildError, match="returned a non-zero code: 2") as failed:
        dclient.images.build(path=str(tmp_path))
    assert any("before-failing" in chunk.get("stream", "") for chunk in failed.value.build_log)
