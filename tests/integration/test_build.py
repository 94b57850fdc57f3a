"""teu build: Dockerfiles built through the CLI and the SDK against the real services."""

from __future__ import annotations

import os
import signal
import subprocess
import textwrap
import threading
import time
from pathlib import Path

import pytest

from conftest import REPO, Engine
from teu.client import Client, ContainerOptions
from teu.errors import FailedPrecondition, InvalidArgument, NotFound
from teu.testing import build_folder, wait_ready, wait_until
from teu_api.gateway.v1 import gateway_pb2 as gw

TEU = str(REPO / ".venv" / "bin" / "teu")


def teu(engine: Engine, *args: str, data: bytes | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Runs the CLI against the private engine."""
    return subprocess.run([TEU, *args], env=engine.env(), input=data.decode() if data else None, capture_output=True, text=True,
                          timeout=timeout)  # fmt: skip


def folder(tmp_path: Path, files: dict[str, str]) -> Path:
    """A context folder holding ``files`` (path: text); a Dockerfile among them is dedented."""
    ctx = tmp_path / "ctx"
    for name, text in files.items():
        path = ctx / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text) if name.endswith("Dockerfile") else text)
    return ctx


def build(client: Client, ctx: Path, **options: object) -> tuple[str, str]:
    """Builds through the SDK: (image id, the whole output)."""
    return build_folder(client, ctx, gw.BuildOptions(**options))  # type: ignore[arg-type]


def run(client: Client, image: str, *cmd: str) -> str:
    r = client.run(ContainerOptions(image=image, cmd=list(cmd), remove=True))
    assert r.exit_code == 0, r.stderr
    return r.stdout.decode()


def build_containers(client: Client) -> list[str]:
    return [c.id for c in client.list(all=True) if "io.teu.build" in c.labels]


MULTI_STAGE = """\
    # syntax=docker/dockerfile:1
    ARG BASE=busybox
    FROM ${BASE} AS prepare
    ARG GREETING=hello
    WORKDIR /work
    RUN echo "$GREETING from the first stage" > made.txt && \\
        mkdir -p /out && cp made.txt /out/
    COPY app/ /out/app/

    FROM busybox AS unused
    RUN exit 1

    FROM busybox
    ENV APP_HOME=/srv/app \\
        MODE="two words"
    WORKDIR $APP_HOME
    COPY --from=prepare /out/ ./
    COPY --chown=1000:1000 --chmod=640 app/config.txt /etc/app.conf
    USER nobody
    EXPOSE 8080 9000-9001/udp
    VOLUME ["/data"]
    LABEL org.example.name="the app" version=1
    STOPSIGNAL SIGINT
    HEALTHCHECK --interval=5s --retries=2 CMD ["true"]
    ENTRYPOINT ["sh", "-c"]
    CMD ["cat made.txt app/main.txt"]
"""


def test_a_multi_stage_build_runs_and_has_the_configuration(engine: Engine, client: Client, tmp_path: Path) -> None:
    """The CLI builds the last stage (skipping the one it does not need) from a context folder;
    the image runs, and its configuration is what the Dockerfile says, in Docker's terms."""
    ctx = folder(tmp_path, {"Dockerfile": MULTI_STAGE, "app/main.txt": "main\n", "app/config.txt": "conf\n"})
    r = teu(engine, "build", "-t", "built:multi", "--build-arg", "GREETING=hi", str(ctx))
    assert r.returncode == 0, r.stderr + r.stdout
    assert "Step 1/" in r.stdout and "Successfully tagged built:multi" in r.stdout
    assert "exit 1" not in r.stdout  # the unused stage is skipped
    assert run(client, "built:multi") == "hi from the first stage\nmain\n"
    c = client.inspect_image("built:multi").config
    assert "APP_HOME=/srv/app" in c.env and "MODE=two words" in c.env
    assert (c.working_dir, c.user, c.stop_signal) == ("/srv/app", "nobody", "SIGINT")
    assert list(c.entrypoint) == ["sh", "-c"] and list(c.cmd) == ["cat made.txt app/main.txt"]
    assert sorted(c.exposed_ports) == ["8080/tcp", "9000/udp", "9001/udp"]
    assert list(c.volumes) == ["/data"]
    assert dict(c.labels) == {"org.example.name": "the app", "version": "1"}
    assert list(c.healthcheck.test) == ["CMD", "true"] and c.healthcheck.retries == 2
    assert c.healthcheck.interval_ns == 5_000_000_000
    owned = run(client, "built:multi", "stat -c '%u:%g %a %s' /etc/app.conf")  # nobody may not read it
    assert owned == "1000:1000 640 5\n"
    history = [h.created_by for h in client.history("built:multi")]
    assert history[0].startswith("CMD") and any(h.startswith("COPY --from=prepare") for h in history)
    assert not build_containers(client)
    client.remove_image("built:multi")


def test_dockerignore_keeps_files_out(client: Client, tmp_path: Path) -> None:
    """.dockerignore's patterns (with ** and an exception) hide files from COPY."""
    ctx = folder(tmp_path, {
        "Dockerfile": "FROM busybox\nCOPY . /ctx/\nCMD [\"find\", \"/ctx\", \"-type\", \"f\"]\n",
        ".dockerignore": "# comment\n**/*.log\nsecret\ndocs\n!docs/keep.md\n",
        "a.txt": "a", "b.log": "b", "sub/c.log": "c", "sub/d.txt": "d", "secret": "s", "docs/x.md": "x", "docs/keep.md": "k",
    })  # fmt: skip
    image, _ = build(client, ctx)
    found = sorted(run(client, image).split())
    assert found == ["/ctx/.dockerignore", "/ctx/Dockerfile", "/ctx/a.txt", "/ctx/docs/keep.md", "/ctx/sub/d.txt"]


def test_the_cache_hits_and_misses_as_described(client: Client, tmp_path: Path) -> None:
    """A rebuild with nothing changed starts no container and gives the same image; a change to one
    copied file rebuilds from that step; --no-cache rebuilds everything."""
    ctx = folder(tmp_path, {
        "Dockerfile": "FROM busybox\nRUN echo one > /one\nCOPY a.txt /a.txt\nRUN cat /a.txt > /copy\nCOPY b.txt /b.txt\n",
        "a.txt": "first\n", "b.txt": "b\n",
    })  # fmt: skip
    first, out = build(client, ctx)
    assert out.count("Running in") == 2
    again, out = build(client, ctx)
    assert again == first and "Running in" not in out and out.count("Using cache") == 4
    (ctx / "a.txt").write_text("second\n")
    changed, out = build(client, ctx)
    assert changed != first and out.count("Using cache") == 1 and out.count("Running in") == 1
    assert run(client, changed, "cat", "/copy") == "second\n"
    fresh, out = build(client, ctx, no_cache=True)
    assert "Using cache" not in out and out.count("Running in") == 2 and fresh != changed


def test_heredocs_onbuild_shell_and_args(client: Client, tmp_path: Path) -> None:
    """RUN heredocs, SHELL, ONBUILD triggers run by a child build, global ARGs redeclared in a stage,
    and ${VAR:-default} / ${VAR:+alt} substitution."""
    ctx = folder(tmp_path, {"base/Dockerfile": """\
        FROM busybox
        ONBUILD RUN echo triggered > /trigger
        """, "Dockerfile": """\
        ARG VERSION=1.2
        FROM onbuild-base
        ARG VERSION
        ARG UNSET
        ENV V=${VERSION} D=${UNSET:-fallback} P=${VERSION:+present}
        RUN <<EOF
        echo "from heredoc $V" > /heredoc
        EOF
        SHELL ["/bin/sh", "-ec"]
        RUN cat > /stdin.txt <<EOT
        line $D
        EOT
        """})  # fmt: skip
    base, _ = build(client, ctx / "base", tags=["onbuild-base:latest"])
    image, out = build(client, ctx)
    assert "Executing 1 build trigger" in out
    shown = run(client, image, "cat", "/trigger", "/heredoc", "/stdin.txt")
    assert shown == "triggered\nfrom heredoc 1.2\nline fallback\n"
    config = client.inspect_image(image).config
    assert {"V=1.2", "D=fallback", "P=present"} <= set(config.env)
    assert list(config.shell) == ["/bin/sh", "-ec"] and not config.on_build
    assert list(client.inspect_image(base).config.on_build) == ["RUN echo triggered > /trigger"]
    client.remove_image("onbuild-base:latest")


@pytest.mark.parametrize(
    ("dockerfile", "files", "error", "words"),
    [
        ("FROM busybox\nFROB x\n", {}, InvalidArgument, "unknown instruction: FROB"),
        ("FROM busybox\nCOPY ../x /x\n", {}, InvalidArgument, "outside the build context"),
        ("FROM busybox\nCOPY /etc/passwd /x\n", {}, NotFound, "not found in build context"),
        ("FROM busybox\nCOPY link /x\n", {"@link": "../../../../etc/passwd"}, NotFound, "not found in build context"),
        ("FROM busybox\nCOPY a b /x\n", {"a": "a", "b": "b"}, InvalidArgument, "must be a directory"),
        ("FROM busybox\nENV X=$LATER\nARG LATER=1\n", {}, InvalidArgument, "ARG LATER is used before it is defined"),
        ("ARG B\nFROM $B\n", {}, InvalidArgument, "should not be blank"),
        ("FROM --platform=linux/s390x busybox\n", {}, InvalidArgument, "builds for linux/"),
        ("FROM busybox\nRUN --mount=type=cache,target=/c true\n", {}, Exception, "not supported yet"),
        ("FROM busybox\nRUN echo failing; exit 3\n", {}, FailedPrecondition, "returned a non-zero code: 3"),
    ],
)
def test_bad_dockerfiles_are_refused_clearly(
    client: Client, tmp_path: Path, dockerfile: str, files: dict[str, str], error: type[Exception], words: str
) -> None:
    """Each bad Dockerfile fails with its own message and code; nothing is tagged, no container stays."""
    ctx = folder(tmp_path, {"Dockerfile": dockerfile, **{k: v for k, v in files.items() if not k.startswith("@")}})
    for name, target in files.items():
        if name.startswith("@"):
            (ctx / name[1:]).symlink_to(target)
    with pytest.raises(error, match=words.replace("(", r"\(")):
        build(client, ctx, tags=["refused:1"])
    with pytest.raises(NotFound):
        client.inspect_image("refused:1")
    assert not build_containers(client)


def test_a_failing_run_shows_its_output_and_exit_code(engine: Engine, client: Client, tmp_path: Path) -> None:
    """The CLI shows the failing step's output and Docker's message, and fails."""
    ctx = folder(tmp_path, {"Dockerfile": "FROM busybox\nRUN echo step-output; exit 7\n"})
    r = teu(engine, "build", "-t", "failing:1", str(ctx))
    assert r.returncode != 0
    assert "step-output" in r.stdout and "returned a non-zero code: 7" in r.stderr
    assert teu(engine, "image", "inspect", "failing:1").returncode != 0


def test_missing_target_stage(client: Client, tmp_path: Path) -> None:
    ctx = folder(tmp_path, {"Dockerfile": "FROM busybox AS one\n"})
    with pytest.raises(InvalidArgument, match="target stage nope could not be found"):
        build(client, ctx, target="nope")


def test_concurrent_builds_do_not_mix_their_layers(client: Client, tmp_path: Path) -> None:
    """Four builds at once, each writing its own file in the same steps, give four images that hold
    only their own."""
    results: dict[int, str] = {}

    def one(i: int) -> None:
        ctx = folder(
            tmp_path / str(i), {"Dockerfile": f"FROM busybox\nRUN echo {i} > /mine\nCOPY n.txt /n.txt\n", "n.txt": f"{i}\n"}
        )
        results[i] = build(client, ctx)[0]

    threads = [threading.Thread(target=one, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, image in results.items():
        assert run(client, image, "cat", "/mine", "/n.txt") == f"{i}\n{i}\n"
    assert len(set(results.values())) == 4


def test_an_interrupted_build_leaves_no_container(engine: Engine, client: Client, tmp_path: Path) -> None:
    """Ctrl-C (SIGINT) of `teu build` during a RUN removes the step's container."""
    ctx = folder(tmp_path, {"Dockerfile": "FROM busybox\nRUN echo started; sleep 60\n"})
    proc = subprocess.Popen([TEU, "build", str(ctx)], env=engine.env(), stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    for line in proc.stdout:
        if line == "started\n":  # the step's output, not its "Step 2/2 : RUN echo started..." line
            break
    assert build_containers(client)
    os.kill(proc.pid, signal.SIGINT)
    proc.wait(timeout=30)
    deadline = time.monotonic() + 20
    while build_containers(client) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not build_containers(client)


def test_scratch_copy_heredoc_and_add_from_a_url_and_an_archive(client: Client, tmp_path: Path) -> None:
    """FROM scratch with COPY of a heredoc (variables substituted, quotes kept), ADD of a local tar
    (extracted) and of a URL on this machine (a file, mode 0600); the result exported holds exactly those."""
    import http.server
    import io
    import tarfile

    served = tmp_path / "www"
    served.mkdir()
    (served / "remote.txt").write_text("from the web\n")
    handler = lambda *a: http.server.SimpleHTTPRequestHandler(*a, directory=str(served))  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w:gz") as tar:
        info = tarfile.TarInfo("inner/file.txt")
        info.size = 6
        tar.addfile(info, io.BytesIO(b"inner\n"))
    ctx = folder(tmp_path, {"Dockerfile": f"""\
        FROM scratch
        ARG WHO=heredoc
        COPY <<EOF /greeting.txt
        "hello" from $WHO
        EOF
        ADD bundle.tar.gz /unpacked/
        ADD http://127.0.0.1:{server.server_port}/remote.txt /
        """})  # fmt: skip
    (ctx / "bundle.tar.gz").write_bytes(archive.getvalue())
    try:
        image, _ = build(client, ctx, tags=["scratch-built:1"])
    finally:
        server.shutdown()
    c = client.create(ContainerOptions(image=image, cmd=["none"])).id
    try:
        with tarfile.open(fileobj=io.BytesIO(b"".join(client.export(c))), mode="r:") as tar:
            files = {m.name.removeprefix("./"): m for m in tar.getmembers() if m.isfile()}
            assert tar.extractfile(files["greeting.txt"]).read() == b'"hello" from heredoc\n'  # type: ignore[union-attr]
            assert tar.extractfile(files["unpacked/inner/file.txt"]).read() == b"inner\n"  # type: ignore[union-attr]
            assert files["remote.txt"].mode & 0o777 == 0o600
        assert not {n for n in files if n.startswith(("bin", "etc/passwd"))}
    finally:
        client.remove(c, force=True)
        client.remove_image("scratch-built:1")


def test_a_gateway_killed_during_a_build_leaves_no_container(engine: Engine, client: Client, tmp_path: Path) -> None:
    """SIGKILL of the gateway in the middle of a RUN: the client's build fails, and the restarted
    gateway removes the step's container (and the build's snapshots and files)."""
    ctx = folder(tmp_path, {"Dockerfile": "FROM busybox\nRUN sleep 60\n"})
    failed: list[Exception] = []

    def one() -> None:
        with Client(engine.target) as c:
            try:
                build(c, ctx)
            except Exception as exc:  # the connection dies with the gateway
                failed.append(exc)

    t = threading.Thread(target=one)
    t.start()
    wait_until(lambda: build_containers(client), what="the RUN step's container")
    os.kill(engine.service_pid("gateway"), signal.SIGKILL)
    t.join(timeout=60)
    assert failed
    wait_ready(client)
    wait_until(lambda: not build_containers(client), timeout=60, what="the build's container gone")
    assert not list((engine.root / "gateway" / "build").glob("*.tar"))
    assert not list((engine.root / "gateway" / "build" / "snapshots").iterdir())


def test_an_arg_of_several_names_is_one_history_line(client: Client, tmp_path: Path) -> None:
    ctx = folder(tmp_path, {"Dockerfile": "FROM busybox\nARG A=1 B=2\nLABEL both=$A$B\n"})
    image, _ = build(client, ctx)
    assert [h.created_by for h in client.history(image)].count("ARG A=1 B=2") == 1
    assert client.inspect_image(image).config.labels["both"] == "12"
