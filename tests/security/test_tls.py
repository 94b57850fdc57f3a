"""The gateway's TCP listener: mutual TLS only, and what each certificate role may do through it."""

from __future__ import annotations

import json
import os
import socket
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from teu.client import Client, ContainerOptions, TlsConfig
from teu.errors import InvalidArgument, PermissionDenied, Unauthenticated, Unavailable
from teu.testing import PrivateEngine, wait_until
from teu_api.types.v1 import types_pb2

RUNNING = types_pb2.CONTAINER_STATE_RUNNING

REPO = Path(__file__).resolve().parents[2]
IMAGE_TAR = REPO / "build" / "busybox.tar"
MAKE_CERTS = REPO / "scripts" / "make-certs.sh"
TEU = Path(sys.executable).parent / "teu"


def make_certs(out: Path) -> Path:
    """A CA, a server certificate and admin/operator/viewer client certificates in ``out``."""
    subprocess.run([str(MAKE_CERTS), str(out)], check=True, capture_output=True)
    return out


def sign_client(certs: Path, name: str, subject: str) -> TlsConfig:
    """A client certificate for ``subject`` signed by the CA in ``certs`` (for subjects the script does not make)."""
    key, csr, cert = certs / f"{name}.key", certs / f"{name}.csr", certs / f"{name}.pem"
    for argv in (
        ["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", key],
        ["req", "-new", "-key", key, "-subj", subject, "-out", csr],
        [
            "x509",
            "-req",
            "-in",
            csr,
            "-CA",
            certs / "ca.pem",
            "-CAkey",
            certs / "ca.key",
            "-set_serial",
            "7",
            "-days",
            "2",
            "-out",
            cert,
        ],
    ):
        subprocess.run(["openssl", *map(str, argv)], check=True, capture_output=True)
    return TlsConfig(ca=certs / "ca.pem", cert=cert, key=key)


def role(certs: Path, name: str) -> TlsConfig:
    """The TLS settings of one of the script's clients (admin, operator, viewer)."""
    return TlsConfig(ca=certs / name / "ca.pem", cert=certs / name / "cert.pem", key=certs / name / "key.pem")


def free_port() -> int:
    """A loopback TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class TlsEngine:
    """A private engine whose gateway also listens on 127.0.0.1 with mutual TLS."""

    def __init__(self, engine: PrivateEngine, certs: Path, port: int, docker_port: int, web_port: int) -> None:
        self.engine, self.certs, self.target = engine, certs, f"tcp://127.0.0.1:{port}"
        self.docker_url = f"https://127.0.0.1:{docker_port}"
        self.web_url = f"https://127.0.0.1:{web_port}"

    def client(self, name: str) -> Client:
        """An SDK client over TCP holding the certificate of role ``name``."""
        return Client(self.target, tls=role(self.certs, name))

    def gateway_log(self) -> list[dict[str, object]]:
        """The gateway's JSON log lines so far."""
        lines = (self.engine.root / "engine" / "gateway.log").read_text().splitlines()
        return [json.loads(line) for line in lines if line.startswith("{")]


@pytest.fixture(scope="module")
def tls_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsEngine]:
    """An engine with the TLS listener configured through TEU_TLS_*, busybox imported, certs from make-certs.sh."""
    certs = make_certs(tmp_path_factory.mktemp("certs"))
    port, docker_port, web_port = free_port(), free_port(), free_port()
    env = {
        "TEU_TLS_LISTEN": f"127.0.0.1:{port}",
        "TEU_DOCKER_TLS_LISTEN": f"127.0.0.1:{docker_port}",
        "TEU_WEB_TLS_LISTEN": f"127.0.0.1:{web_port}",
        "TEU_TLS_CA": str(certs / "ca.pem"),
        "TEU_TLS_CERT": str(certs / "server.pem"),
        "TEU_TLS_KEY": str(certs / "server.key"),
    }
    with PrivateEngine(tmp_path_factory.mktemp("tls-engine"), env=env) as eng:
        with Client(eng.target) as c, IMAGE_TAR.open("rb") as f:
            c.import_image(f, "busybox", types_pb2.ImageConfig(cmd=["sh"]))
        tls = TlsEngine(eng, certs, port, docker_port, web_port)
        with tls.client("viewer") as viewer:  # the gateway binds TCP just after its socket
            wait_until(lambda: _answers(viewer))
        yield tls


def _answers(client: Client) -> bool:
    try:
        client.info()
        return True
    except Unavailable:
        return False


@pytest.fixture()
def running(tls_engine: TlsEngine) -> Iterator[str]:
    """A running container, started over the local socket."""
    with Client(tls_engine.engine.target) as local:
        cid = local.run_detached(ContainerOptions(image="busybox", cmd=["sleep", "300"]))
        yield cid
        local.remove(cid, force=True)


def test_unix_socket_needs_no_certificate(tls_engine: TlsEngine, running: str) -> None:
    """The local socket keeps serving everything, mutating calls included, without any certificate."""
    with Client(tls_engine.engine.target) as local:
        assert local.info().containers_running >= 1
        local.stop(running, timeout=0)
        assert local.inspect(running).summary.state != RUNNING


def test_no_client_certificate_is_refused(tls_engine: TlsEngine) -> None:
    """A TLS client that presents no certificate fails the handshake."""
    creds = grpc.ssl_channel_credentials((tls_engine.certs / "ca.pem").read_bytes())
    channel = grpc.secure_channel(tls_engine.target.removeprefix("tcp://"), creds)
    with Client(channel=channel) as anonymous, pytest.raises(Unavailable):
        anonymous.info()


def test_certificate_from_another_ca_is_refused(tls_engine: TlsEngine, tmp_path: Path) -> None:
    """A client certificate signed by a CA other than the engine's fails the handshake, admin OU or not."""
    other = make_certs(tmp_path / "other")
    tls = TlsConfig(ca=tls_engine.certs / "ca.pem", cert=other / "admin" / "cert.pem", key=other / "admin" / "key.pem")
    with Client(tls_engine.target, tls=tls) as stranger, pytest.raises(Unavailable, match="certificates"):
        stranger.info()


def test_plaintext_is_refused_on_both_ends(tls_engine: TlsEngine, monkeypatch: pytest.MonkeyPatch) -> None:
    """The SDK will not open a tcp:// target without TLS settings, and the port does not speak plaintext."""
    for var in ("TEU_TLS_CA", "TEU_TLS_CERT", "TEU_TLS_KEY", "TEU_CERT_PATH"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(InvalidArgument, match="without TLS"):
        Client(tls_engine.target)
    channel = grpc.insecure_channel(tls_engine.target.removeprefix("tcp://"))
    with Client(channel=channel) as plain, pytest.raises(Unavailable):
        plain.info()


def test_certificate_without_identity_is_unauthenticated(tls_engine: TlsEngine, tmp_path: Path) -> None:
    """A certificate from the right CA whose Subject has no CN gets UNAUTHENTICATED, whatever its OU."""
    tls = sign_client(tls_engine.certs, "nameless", "/O=Teu/OU=admin")
    with Client(tls_engine.target, tls=tls) as nameless, pytest.raises(Unauthenticated):
        nameless.info()


def test_certificate_without_role_is_denied(tls_engine: TlsEngine) -> None:
    """A certificate from the right CA whose OU names no role may not even read."""
    tls = sign_client(tls_engine.certs, "guest", "/O=Teu/OU=guest/CN=mallory")
    with Client(tls_engine.target, tls=tls) as guest, pytest.raises(PermissionDenied, match="no role"):
        guest.list()


def test_viewer_reads_but_cannot_stop(tls_engine: TlsEngine, running: str) -> None:
    """A viewer lists, inspects and reads info, but stopping a container is denied naming the operator role."""
    with tls_engine.client("viewer") as viewer:
        assert running in [c.id for c in viewer.list()]
        assert viewer.inspect(running).summary.state == RUNNING
        assert viewer.info().containers_running >= 1
        with pytest.raises(PermissionDenied, match="operator"):
            viewer.stop(running, timeout=0)
    with Client(tls_engine.engine.target) as local:
        assert local.inspect(running).summary.state == RUNNING


def test_operator_stops_but_cannot_exec_or_run(tls_engine: TlsEngine, running: str) -> None:
    """An operator may stop a container, but exec in it or run a new one is denied naming the admin role."""
    with tls_engine.client("operator") as operator:
        with pytest.raises(PermissionDenied, match="admin"):
            operator.exec_run(running, ["id"])
        with pytest.raises(PermissionDenied, match="admin"):
            operator.run(ContainerOptions(image="busybox", cmd=["true"], remove=True))
        operator.stop(running, timeout=0)
        assert operator.inspect(running).summary.state != RUNNING


def test_admin_runs_a_container(tls_engine: TlsEngine) -> None:
    """An admin may run a container over TCP and gets its output."""
    with tls_engine.client("admin") as admin:
        result = admin.run(ContainerOptions(image="busybox", cmd=["echo", "over tls"], remove=True))
    assert (result.exit_code, result.stdout) == (0, b"over tls\n")


def test_mutating_calls_are_logged_with_identity(tls_engine: TlsEngine, running: str) -> None:
    """A mutating call over TCP leaves a gateway log line with the caller's CN and role; a refused one too."""
    with tls_engine.client("operator") as operator:
        operator.kill(running)
    with tls_engine.client("viewer") as viewer, pytest.raises(PermissionDenied):
        viewer.restart(running)

    def logged(event: str, peer: str, method: str) -> bool:
        return any(
            e.get("event") == event and e.get("peer") == peer and e.get("method") == method for e in tls_engine.gateway_log()
        )

    wait_until(lambda: logged("authz_allowed", "dev-operator", "/teu.gateway.v1.ContainersService/Kill"))
    assert logged("authz_denied", "dev-viewer", "/teu.gateway.v1.ContainersService/Restart")
    allowed = [e for e in tls_engine.gateway_log() if e.get("event") == "authz_allowed" and e.get("peer") == "dev-operator"]
    assert allowed[-1]["role"] == "operator"
    assert not any(e.get("event") == "authz_allowed" and str(e.get("method")).endswith("/Info") for e in tls_engine.gateway_log())


def teu_cli(env: dict[str, str], *argv: str) -> subprocess.CompletedProcess[str]:
    """Runs the ``teu`` command with ``env``."""
    return subprocess.run([str(TEU), *argv], env=env, capture_output=True, text=True, timeout=60)


def test_cli_over_tcp_with_cert_path(tls_engine: TlsEngine, running: str) -> None:
    """``teu -H tcp://...`` takes its certificate from TEU_CERT_PATH or --tls-* flags and reports a denial."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TEU_TLS_")}
    env["TEU_CERT_PATH"] = str(tls_engine.certs / "viewer")
    ps = teu_cli(env, "-H", tls_engine.target, "ps", "-q", "--no-trunc")
    assert ps.returncode == 0, ps.stderr
    assert running in ps.stdout
    stop = teu_cli(env, "-H", tls_engine.target, "stop", "-t", "0", running)
    assert stop.returncode != 0 and "operator role" in stop.stderr
    op = role(tls_engine.certs, "operator")
    flags = ["--tls-ca", str(op.ca), "--tls-cert", str(op.cert), "--tls-key", str(op.key)]
    stop = teu_cli(env, "-H", tls_engine.target, *flags, "stop", "-t", "0", running)
    assert stop.returncode == 0, stop.stderr
    del env["TEU_CERT_PATH"]
    plain = teu_cli(env, "-H", tls_engine.target, "ps")
    assert plain.returncode != 0 and "without TLS" in plain.stderr


def docker_client(tls_engine: TlsEngine, name: str | None) -> Any:
    """docker-py over the Docker API's TCP listener, holding role ``name``'s certificate (None: none)."""
    import docker
    import docker.tls

    ca = tls_engine.certs / "ca.pem"
    cfg = role(tls_engine.certs, name) if name else None
    client_cert = (str(cfg.cert), str(cfg.key)) if cfg else None
    tls = docker.tls.TLSConfig(client_cert=client_cert, ca_cert=str(ca), verify=True)
    return docker.DockerClient(base_url=tls_engine.docker_url, tls=tls, version="1.43", timeout=30)


def test_docker_api_over_tcp_needs_a_certificate_and_follows_roles(
    tls_engine: TlsEngine, running: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Docker API's TCP listener: no client certificate, no connection; a viewer lists but cannot
    create, exec or log in; an operator stops; an admin runs."""
    import docker.errors

    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):  # requests would let these win over docker-py's CA
        monkeypatch.delenv(name, raising=False)

    nobody = docker_client(tls_engine, None)
    with pytest.raises((docker.errors.DockerException, OSError)):
        nobody.ping()
    viewer = docker_client(tls_engine, "viewer")
    wait_until(lambda: _docker_answers(viewer))
    assert running in [c.id for c in viewer.containers.list()]
    for refused in (
        lambda: viewer.containers.create("busybox", "true"),
        lambda: viewer.api.exec_create(running, ["true"]),
        lambda: viewer.login("u", "p", registry="127.0.0.1:1"),
    ):
        with pytest.raises(docker.errors.APIError) as caught:
            refused()
        assert caught.value.status_code == 403 and "role" in str(caught.value)
    operator = docker_client(tls_engine, "operator")
    operator.containers.get(running).stop(timeout=1)
    with pytest.raises(docker.errors.APIError) as caught:
        operator.containers.run("busybox", "true", remove=True)
    assert caught.value.status_code == 403
    admin = docker_client(tls_engine, "admin")
    assert admin.containers.run("busybox", ["echo", "over tls"], remove=True) == b"over tls\n"
    for c in (nobody, viewer, operator, admin):
        c.close()


def _docker_answers(client: Any) -> bool:
    try:
        return bool(client.ping())
    except Exception:  # the listener comes up just after the unix socket
        return False


def web_call(tls_engine: TlsEngine, name: str | None, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    """A request to the web page's mutual-TLS listener holding role ``name``'s certificate (None: none)."""
    ctx = ssl.create_default_context(cafile=str(tls_engine.certs / "ca.pem"))
    if name:
        cfg = role(tls_engine.certs, name)
        ctx.load_cert_chain(str(cfg.cert), str(cfg.key))
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(
        tls_engine.web_url + path, method=method, data=data, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=30) as r:
            return r.status, json.loads(r.read()) if r.headers.get_content_type() == "application/json" else None
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_web_page_over_tcp_needs_a_certificate_and_follows_roles(tls_engine: TlsEngine, running: str) -> None:
    """The web page's TLS listener: no client certificate, no answer; a viewer watches but cannot stop;
    an operator stops but cannot run; an admin runs. No token is asked: the certificate says who asks."""
    wait_until((tls_engine.engine.run_dir / "web-tls.url").exists, timeout=30, what="the page's TLS address")
    assert (tls_engine.engine.run_dir / "web-tls.url").read_text().strip() == tls_engine.web_url + "/"
    with pytest.raises(OSError):  # the handshake fails (TLS 1.2) or the first read does (1.3)
        web_call(tls_engine, None, "GET", "/api/containers")
    status, listed = web_call(tls_engine, "viewer", "GET", "/api/containers")
    assert status == 200 and running in [c["id"] for c in listed]
    status, err = web_call(tls_engine, "viewer", "POST", f"/api/containers/{running}/stop")
    assert status == 403 and "operator role" in err["message"]
    assert web_call(tls_engine, "operator", "POST", f"/api/containers/{running}/stop")[0] == 200
    status, err = web_call(tls_engine, "operator", "POST", "/api/containers", {"image": "busybox", "cmd": "true"})
    assert status == 403 and "admin role" in err["message"]
    status, made = web_call(tls_engine, "admin", "POST", "/api/containers", {"image": "busybox", "cmd": "sleep 300"})
    assert status == 201
    assert web_call(tls_engine, "admin", "DELETE", f"/api/containers/{made['id']}")[0] == 200
