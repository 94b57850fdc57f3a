"""Registry credentials of the CLI: teu's auth.json, Docker's config.json, login's check and the CLI's use of them."""

from __future__ import annotations

import argparse
import base64
import io
import json
import stat
import threading
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from teu import _login, auth
from teu.cli import images
from teu.cli.main import build_parser
from teu.errors import FailedPrecondition, InvalidArgument
from teu_api.types.v1 import types_pb2

USER, PASSWORD = "teu", "s3cret"


@pytest.fixture(autouse=True)
def homes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own XDG_CONFIG_HOME, DOCKER_CONFIG and HOME under tmp_path."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker"))
    return tmp_path


def _docker_config(homes: Path, doc: dict[str, Any]) -> None:
    (homes / "docker").mkdir(exist_ok=True)
    (homes / "docker" / "config.json").write_text(json.dumps(doc))


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


# --- keys ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("server", "key"),
    [
        ("docker.io", auth.HUB_KEY),
        ("index.docker.io", auth.HUB_KEY),
        ("registry-1.docker.io", auth.HUB_KEY),
        ("https://index.docker.io/v1/", auth.HUB_KEY),
        ("localhost:5000", "localhost:5000"),
        ("https://localhost:5000/v2/", "localhost:5000"),
        ("http://Registry.Example.com/some/path", "registry.example.com"),
        ("ghcr.io", "ghcr.io"),
    ],
)
def test_registry_keys_are_normalised_as_docker_does(server: str, key: str) -> None:
    """Docker Hub's names all key as https://index.docker.io/v1/; others lose their scheme and path."""
    assert auth.registry_key(server) == key


@pytest.mark.parametrize(
    ("image", "registry"),
    [
        ("busybox", "docker.io"),
        ("user/app:1", "docker.io"),
        ("localhost:5000/app:1", "localhost:5000"),
        ("localhost/app", "localhost"),
        ("ghcr.io/org/app@sha256:" + "a" * 64, "ghcr.io"),
        ("app@sha256:" + "a" * 64, "docker.io"),
    ],
)
def test_registry_of_a_reference(image: str, registry: str) -> None:
    """A reference's registry follows the engine's rule: a first component with a dot, a port or localhost."""
    assert auth.registry_of(image) == registry


# --- teu's file -----------------------------------------------------------------------------------------


def test_save_writes_docker_shape_with_private_modes(homes: Path) -> None:
    """login's file is $XDG_CONFIG_HOME/teu/auth.json, mode 0600 in a 0700 directory, Docker's "auths" shape."""
    path = auth.save("https://localhost:5000/v2/", USER, PASSWORD)
    assert path == homes / "xdg" / "teu" / "auth.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert json.loads(path.read_text()) == {"auths": {"localhost:5000": {"auth": _b64(f"{USER}:{PASSWORD}")}}}
    assert list(path.parent.iterdir()) == [path]  # no temp file left behind


def test_save_tightens_an_existing_directory_and_keeps_other_entries(homes: Path) -> None:
    """Saving again keeps other registries' entries and unknown keys, replaces the same registry's, and makes the directory 0700."""
    directory = homes / "xdg" / "teu"
    directory.mkdir(parents=True, mode=0o755)
    directory.chmod(0o755)
    (directory / "auth.json").write_text(json.dumps({"auths": {"https://ghcr.io": {"auth": _b64("a:b")}}, "other": 1}))
    auth.save("localhost:5000", "old", "pw")
    auth.save("localhost:5000", USER, PASSWORD)
    doc = json.loads((directory / "auth.json").read_text())
    assert doc["other"] == 1
    assert doc["auths"] == {"https://ghcr.io": {"auth": _b64("a:b")}, "localhost:5000": {"auth": _b64(f"{USER}:{PASSWORD}")}}
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700


def test_default_location_without_xdg(homes: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without (or with a relative) XDG_CONFIG_HOME the file is ~/.config/teu/auth.json."""
    monkeypatch.setenv("XDG_CONFIG_HOME", "relative/dir")
    assert auth.auth_path() == homes / "home" / ".config" / "teu" / "auth.json"
    monkeypatch.delenv("XDG_CONFIG_HOME")
    assert auth.auth_path() == homes / "home" / ".config" / "teu" / "auth.json"


def test_lookup_reads_back_what_was_saved() -> None:
    """A saved user and password come back as RegistryAuth, whatever spelling of the registry is asked for."""
    auth.save("localhost:5000", USER, PASSWORD)
    expected = types_pb2.RegistryAuth(username=USER, password=PASSWORD)
    assert auth.lookup("localhost:5000") == expected
    assert auth.lookup("http://localhost:5000/v2/") == expected
    assert auth.lookup("localhost:5001") is None


def test_remove_deletes_only_that_entry() -> None:
    """logout's remove drops the registry's entry (True), keeps the others, and is False when there was none."""
    auth.save("localhost:5000", USER, PASSWORD)
    auth.save("docker.io", "hubuser", "hubpw")
    assert auth.remove("localhost:5000") is True
    assert auth.lookup("localhost:5000") is None
    assert auth.lookup("index.docker.io") == types_pb2.RegistryAuth(username="hubuser", password="hubpw")
    assert auth.remove("localhost:5000") is False
    assert stat.S_IMODE(auth.auth_path().stat().st_mode) == 0o600


def test_malformed_file_is_invalid_argument() -> None:
    """A teu auth.json that is not JSON, or an auth that is not base64 of user:password, is INVALID_ARGUMENT."""
    path = auth.auth_path()
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    with pytest.raises(InvalidArgument, match="not valid JSON"):
        auth.lookup("localhost:5000")
    path.write_text(json.dumps({"auths": {"localhost:5000": {"auth": _b64("nocolon")}}}))
    with pytest.raises(InvalidArgument, match="user:password"):
        auth.lookup("localhost:5000")


def test_user_name_with_colon_is_refused() -> None:
    """A user name holding ':' could not be carried by Basic, so it is not saved."""
    with pytest.raises(InvalidArgument):
        auth.save("localhost:5000", "a:b", "pw")


# --- Docker's file ---------------------------------------------------------------------------------------


def test_docker_config_entries_are_read(homes: Path) -> None:
    """Docker's auths entries count: "auth", "username"/"password", and "identitytoken", under any key spelling."""
    _docker_config(homes, {"auths": {
        "https://index.docker.io/v1/": {"auth": _b64("hub:pw")},
        "http://legacy.example.com/v1/": {"username": "u", "password": "p"},
        "idp.example.com": {"auth": _b64("u:"), "identitytoken": "refresh"},
    }})  # fmt: skip
    assert auth.lookup("docker.io") == types_pb2.RegistryAuth(username="hub", password="pw")
    assert auth.lookup("legacy.example.com") == types_pb2.RegistryAuth(username="u", password="p")
    assert auth.lookup("idp.example.com") == types_pb2.RegistryAuth(username="u", identity_token="refresh")


def test_teu_entries_win_over_docker_ones(homes: Path) -> None:
    """For the same registry, teu's auth.json wins over Docker's config.json."""
    _docker_config(homes, {"auths": {"localhost:5000": {"auth": _b64("docker:pw")}}})
    assert auth.lookup("localhost:5000") == types_pb2.RegistryAuth(username="docker", password="pw")
    auth.save("localhost:5000", USER, PASSWORD)
    assert auth.lookup("localhost:5000") == types_pb2.RegistryAuth(username=USER, password=PASSWORD)


def test_credential_helpers_are_ignored_with_a_warning(homes: Path) -> None:
    """credsStore/credHelpers are not run: a lookup they might have answered finds nothing and says why on stderr."""
    _docker_config(homes, {"auths": {"ghcr.io": {}}, "credsStore": "desktop", "credHelpers": {"gcr.io": "gcloud"}})
    err = io.StringIO()
    assert auth.lookup("ghcr.io", warn=err) is None
    assert "credsStore" in err.getvalue() and "teu login" in err.getvalue()
    err = io.StringIO()
    assert auth.lookup("gcr.io", warn=err) is None
    assert "credHelpers" in err.getvalue()
    auth.save("ghcr.io", USER, PASSWORD)
    err = io.StringIO()
    assert auth.lookup("ghcr.io", warn=err) is not None and err.getvalue() == ""


def test_malformed_docker_config_is_skipped_with_a_warning(homes: Path) -> None:
    """A broken Docker config.json does not break pulls: it is skipped, with a warning on stderr."""
    (homes / "docker").mkdir()
    (homes / "docker" / "config.json").write_text("[1, 2")
    err = io.StringIO()
    assert auth.lookup("localhost:5000", warn=err) is None
    assert "WARNING" in err.getvalue()


# --- login's check against a fake registry on loopback --------------------------------------------------------


class _Fake:
    """A registry on 127.0.0.1 demanding Basic (``mode="basic"``) or a bearer token from its own /token."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.realm = ""
        self.seen: list[tuple[str, str]] = []  # (path with query, Authorization)
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                fake.handle(self)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = int(self.server.server_address[1])
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def handle(self, req: BaseHTTPRequestHandler) -> None:
        auth_header = req.headers.get("Authorization", "")
        self.seen.append((req.path, auth_header))
        good = "Basic " + _b64(f"{USER}:{PASSWORD}")
        path = urllib.parse.urlsplit(req.path).path
        if path == "/token":
            ok = auth_header == good
            return self.reply(req, 200 if ok else 401, json.dumps({"token": "tok"} if ok else {}).encode(), {})
        if auth_header in (good if self.mode == "basic" else "Bearer tok",):
            return self.reply(req, 200, b"{}", {})
        realm = self.realm or f"http://127.0.0.1:{self.port}/token"
        challenge = 'Basic realm="fake"' if self.mode == "basic" else f'Bearer realm="{realm}",service="fake"'
        self.reply(req, 401, b"{}", {"WWW-Authenticate": challenge})

    @staticmethod
    def reply(req: BaseHTTPRequestHandler, status: int, body: bytes, headers: dict[str, str]) -> None:
        req.send_response(status)
        for name, value in headers.items():
            req.send_header(name, value)
        req.send_header("Content-Length", str(len(body)))
        req.end_headers()
        req.wfile.write(body)


@pytest.fixture(params=["basic", "bearer"])
def fake(request: pytest.FixtureRequest) -> Iterator[_Fake]:
    """The fake registry, once with Basic and once with a token server."""
    server = _Fake(request.param)
    yield server
    server.server.shutdown()
    server.server.server_close()


def test_verify_accepts_good_credentials(fake: _Fake) -> None:
    """login's check passes with the right user and password, over Basic or through the token server."""
    _login.verify(f"127.0.0.1:{fake.port}", USER, PASSWORD)
    assert fake.seen[0] == ("/v2/", "")
    if fake.mode == "bearer":
        assert fake.seen[1][0] == "/token?service=fake&account=teu" and fake.seen[-1] == ("/v2/", "Bearer tok")


def test_verify_refuses_bad_credentials(fake: _Fake) -> None:
    """A wrong password fails login's check with FAILED_PRECONDITION "unauthorized"."""
    with pytest.raises(FailedPrecondition, match="unauthorized"):
        _login.verify(f"127.0.0.1:{fake.port}", USER, "wrong")


def test_verify_never_sends_the_password_to_a_plain_http_realm_elsewhere() -> None:
    """A token realm over plain HTTP on another host makes login fail without sending it anything."""
    fake = _Fake("bearer")
    try:
        fake.realm = "http://192.0.2.1/token"
        with pytest.raises(FailedPrecondition, match="not HTTPS"):
            _login.verify(f"127.0.0.1:{fake.port}", USER, PASSWORD)
        fake.realm = f"http://localhost:{fake.port}/token"  # loopback, but not the registry's host name
        with pytest.raises(FailedPrecondition, match="not HTTPS"):
            _login.verify(f"127.0.0.1:{fake.port}", USER, PASSWORD)
        assert [p for p, _ in fake.seen] == ["/v2/", "/v2/"]
    finally:
        fake.server.shutdown()
        fake.server.server_close()


# --- the commands ----------------------------------------------------------------------------------------------


def _run(argv: list[str], stdin: str = "", monkeypatch: pytest.MonkeyPatch | None = None) -> int:
    args = build_parser().parse_args(argv)
    if monkeypatch is not None:
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    return int(args.func(None, args))


def test_login_stores_and_logout_removes(
    fake: _Fake, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """teu login --password-stdin checks and stores the credentials; teu logout removes them."""
    server = f"127.0.0.1:{fake.port}"
    assert _run(["login", "-u", USER, "--password-stdin", server], PASSWORD + "\n", monkeypatch) == 0
    assert "Login Succeeded" in capsys.readouterr().out
    assert auth.lookup(server) == types_pb2.RegistryAuth(username=USER, password=PASSWORD)
    assert _run(["logout", server]) == 0
    assert "Removing login credentials" in capsys.readouterr().out
    assert auth.lookup(server) is None


def test_login_with_wrong_password_stores_nothing(fake: _Fake, monkeypatch: pytest.MonkeyPatch) -> None:
    """A refused login leaves no file behind."""
    with pytest.raises(FailedPrecondition):
        _run(["login", "-u", USER, "--password-stdin", f"127.0.0.1:{fake.port}"], "wrong", monkeypatch)
    assert not auth.auth_path().exists()


def test_password_stdin_needs_a_username(monkeypatch: pytest.MonkeyPatch) -> None:
    """--password-stdin without -u is INVALID_ARGUMENT, as in Docker."""
    with pytest.raises(InvalidArgument, match="--username"):
        _run(["login", "--password-stdin", "localhost:5000"], "pw", monkeypatch)


def test_pull_and_push_pass_the_registrys_credentials_only() -> None:
    """The CLI's pull/push hand the SDK the credentials of the image's registry, and none for another registry."""
    auth.save("localhost:5000", USER, PASSWORD)
    calls: list[tuple[str, Any]] = []

    class Sdk:
        def pull(self, image: str, insecure: bool, auth: Any) -> Iterator[Any]:
            calls.append((image, auth))
            return iter(())

        push = pull

    for image in ("localhost:5000/app:1", "localhost:5001/app:1", "busybox"):
        for fn in ("pull", "push"):
            images.cmd_transfer(Sdk(), argparse.Namespace(image=image, tls_verify="true"), fn, "image")  # type: ignore[arg-type]
    expected = types_pb2.RegistryAuth(username=USER, password=PASSWORD)
    assert calls == [("localhost:5000/app:1", expected)] * 2 + [("localhost:5001/app:1", None)] * 2 + [("busybox", None)] * 2
