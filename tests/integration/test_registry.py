"""pull and push through the CLI, against Debian's docker-registry started on 127.0.0.1 by the test."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import stat
import subprocess
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import REPO, Engine
from teu.client import Client, ContainerOptions
from teu.errors import FailedPrecondition, NotFound
from teu_api.types.v1 import types_pb2

TEU = str(REPO / ".venv" / "bin" / "teu")
REGISTRY_BIN = "/usr/bin/docker-registry"
USER, PASSWORD = "teu", "s3cret"


def _start_registry(root: Path, extra_config: str = "") -> Iterator[str]:
    """docker-registry on a free loopback port with its storage under ``root``; yields host:port, stops it by pid."""
    if not os.access(REGISTRY_BIN, os.X_OK):
        pytest.skip("docker-registry is not installed (make test installs it: apt-get install docker-registry)")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    (root / "config.yml").write_text(
        "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n"
        f"storage:\n  filesystem:\n    rootdirectory: {root / 'data'}\nhttp:\n  addr: 127.0.0.1:{port}\n  secret: teu-it\n"
        + extra_config
    )
    with open(root / "registry.log", "wb") as log:
        proc = subprocess.Popen([REGISTRY_BIN, "serve", str(root / "config.yml")], stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, (root / "registry.log").read_text()
                time.sleep(0.05)
        yield f"localhost:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """docker-registry on a free loopback port, with its storage in a temp dir; stopped by pid."""
    yield from _start_registry(tmp_path_factory.mktemp("registry"))


def _bcrypt(password: str) -> str:
    """A bcrypt hash for htpasswd (docker-registry takes no other): the bcrypt module, else crypt(3)."""
    try:
        import bcrypt

        return str(bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode())
    except ImportError:
        pass
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            import crypt
        except ImportError:
            pytest.skip("no bcrypt: neither the bcrypt module nor crypt is available")
    hashed = crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=16))
    if not hashed or not hashed.startswith("$2"):
        pytest.skip("this libc's crypt(3) has no bcrypt")
    return hashed


@pytest.fixture(scope="module")
def auth_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """docker-registry demanding HTTP Basic (htpasswd) of user USER, password PASSWORD."""
    root = tmp_path_factory.mktemp("auth-registry")
    (root / "htpasswd").write_text(f"{USER}:{_bcrypt(PASSWORD)}\n")
    yield from _start_registry(root, f"auth:\n  htpasswd:\n    realm: teu-it\n    path: {root / 'htpasswd'}\n")


def test_push_rmi_pull_run(engine: Engine, client: Client, registry: str) -> None:
    """An image pushed to the registry, removed locally and pulled back runs; a re-push uploads nothing."""
    ref = f"{registry}/teu/bb:1"
    client.tag("busybox", ref)
    pushed = subprocess.run([TEU, "push", ref], env=engine.env(), capture_output=True, text=True, timeout=120)
    assert pushed.returncode == 0, pushed.stderr
    digest = pushed.stdout.strip()
    assert digest.startswith("sha256:")
    again = subprocess.run([TEU, "push", ref], env=engine.env(), capture_output=True, text=True, timeout=120)
    assert again.stdout.strip() == digest and "exists" in again.stderr
    client.remove_image(ref)
    pulled = subprocess.run([TEU, "pull", ref], env=engine.env(), capture_output=True, text=True, timeout=120)
    assert pulled.returncode == 0, pulled.stderr
    assert client.run(ContainerOptions(image=ref, cmd=["echo", "pulled"], remove=True)).stdout == b"pulled\n"
    client.remove_image(ref)


def test_pull_unknown_is_not_found(engine: Engine, registry: str) -> None:
    """Pulling a repository the registry does not have fails with one clear line."""
    out = subprocess.run([TEU, "pull", f"{registry}/nope/none:1"], env=engine.env(), capture_output=True, text=True, timeout=60)
    assert out.returncode != 0 and out.stderr.count("\n") == 1 and "Error:" in out.stderr


def _teu(env: dict[str, str], *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([TEU, *args], env=env, input=stdin, capture_output=True, text=True, timeout=120)


def test_login_push_pull_logout(engine: Engine, client: Client, auth_registry: str, tmp_path: Path) -> None:
    """Against an htpasswd registry: push/pull fail without login, a wrong password is refused, teu login makes them work, teu logout undoes it."""
    env = {**engine.env(), "XDG_CONFIG_HOME": str(tmp_path / "xdg"), "DOCKER_CONFIG": str(tmp_path / "docker")}
    stored = tmp_path / "xdg" / "teu" / "auth.json"
    ref = f"{auth_registry}/teu/private:1"
    client.tag("busybox", ref)

    denied = _teu(env, "push", ref)
    assert denied.returncode != 0 and "unauthorized" in denied.stderr.lower(), denied.stderr
    assert denied.stderr.count("\n") == 1 and f"teu login {auth_registry}" in denied.stderr, denied.stderr

    wrong = _teu(env, "login", "-u", USER, "--password-stdin", auth_registry, stdin="nope\n")
    assert wrong.returncode != 0 and "unauthorized" in wrong.stderr and not stored.exists()

    login = _teu(env, "login", "-u", USER, "--password-stdin", auth_registry, stdin=PASSWORD + "\n")
    assert login.returncode == 0 and "Login Succeeded" in login.stdout, login.stderr
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600 and stat.S_IMODE(stored.parent.stat().st_mode) == 0o700
    assert auth_registry in json.loads(stored.read_text())["auths"]

    pushed = _teu(env, "push", ref)
    assert pushed.returncode == 0 and pushed.stdout.strip().startswith("sha256:"), pushed.stderr
    client.remove_image(ref)
    pulled = _teu(env, "pull", ref)
    assert pulled.returncode == 0, pulled.stderr
    assert client.run(ContainerOptions(image=ref, cmd=["echo", "private"], remove=True)).stdout == b"private\n"
    client.remove_image(ref)

    logout = _teu(env, "logout", auth_registry)
    assert logout.returncode == 0 and "Removing login credentials" in logout.stdout
    assert auth_registry not in json.loads(stored.read_text())["auths"]
    again = _teu(env, "pull", ref)
    assert again.returncode != 0 and "unauthorized" in again.stderr.lower(), again.stderr
    assert ref not in {t for i in client.list_images() for t in i.repo_tags}


def test_sdk_pull_with_auth(client: Client, auth_registry: str) -> None:
    """The SDK's pull takes a RegistryAuth for the image's registry; without one the registry refuses with FAILED_PRECONDITION."""
    ref = f"{auth_registry}/teu/sdk:1"
    client.tag("busybox", ref)
    creds = types_pb2.RegistryAuth(username=USER, password=PASSWORD)
    assert list(client.push(ref, auth=creds))[-1].digest.startswith("sha256:")
    client.remove_image(ref)
    with pytest.raises(FailedPrecondition, match="unauthorized"):
        list(client.pull(ref))
    assert ref in list(client.pull(ref, auth=creds))[-1].image.repo_tags
    client.remove_image(ref)


def test_run_pulls_a_missing_image_as_its_pull_policy_says(engine: Engine, client: Client, registry: str) -> None:
    """run --pull missing (the default) pulls what is not here, never refuses it, always pulls again;
    --platform refuses an image of another platform."""
    ref = f"{registry}/teu/bb:run"
    client.tag("busybox", ref)
    assert _teu(engine.env(), "push", ref).returncode == 0
    client.remove_image(ref)
    try:
        never = _teu(engine.env(), "run", "--rm", "--pull", "never", ref, "echo", "hi")
        assert never.returncode == 125 and "No such image" in never.stderr
        pulled = _teu(engine.env(), "run", "--rm", ref, "echo", "hi")
        assert (pulled.returncode, pulled.stdout) == (0, "hi\n") and f"Unable to find image '{ref}' locally" in pulled.stderr
        again = _teu(engine.env(), "create", "--pull", "always", ref)
        assert again.returncode == 0 and len(again.stdout.strip()) == 64
        client.remove(again.stdout.strip())
        arch = client.inspect_image(ref).platform
        other = "linux/arm64" if arch != "linux/arm64" else "linux/amd64"
        mismatch = _teu(engine.env(), "run", "--rm", "--platform", other, ref, "true")
        assert mismatch.returncode == 125 and "does not match the specified platform" in mismatch.stderr
        assert _teu(engine.env(), "run", "--rm", "--platform", arch, ref, "true").returncode == 0
    finally:
        client.remove_image(ref, force=True)


def test_build_pulls_its_from_image_with_the_stored_credentials(
    engine: Engine, client: Client, auth_registry: str, tmp_path: Path
) -> None:
    """`teu build` pulls a FROM image it lacks from a registry on this machine, with `teu login`'s credentials."""
    env = {**engine.env(), "XDG_CONFIG_HOME": str(tmp_path / "xdg"), "DOCKER_CONFIG": str(tmp_path / "docker")}
    ref = f"{auth_registry}/teu/base:1"
    client.tag("busybox", ref)
    assert _teu(env, "login", "-u", USER, "--password-stdin", auth_registry, stdin=PASSWORD + "\n").returncode == 0
    assert _teu(env, "push", ref).returncode == 0
    client.remove_image(ref)
    (tmp_path / "ctx").mkdir()
    (tmp_path / "ctx" / "Dockerfile").write_text(f"FROM {ref}\nRUN echo built-on-pulled > /mark\n")
    built = _teu(env, "build", "-t", "from-registry:1", str(tmp_path / "ctx"))
    try:
        assert built.returncode == 0, built.stderr + built.stdout
        assert (
            client.run(ContainerOptions(image="from-registry:1", cmd=["cat", "/mark"], remove=True)).stdout
            == b"built-on-pulled\n"
        )
    finally:
        _teu(env, "logout", auth_registry)
        for image in ("from-registry:1", ref):
            with contextlib.suppress(NotFound):
                client.remove_image(image)
