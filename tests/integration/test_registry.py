"""pull and push through the CLI, against Debian's docker-registry started on 127.0.0.1 by the test."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import REPO, Engine
from teu.client import Client, ContainerOptions

TEU = str(REPO / ".venv" / "bin" / "teu")
REGISTRY_BIN = "/usr/bin/docker-registry"


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """docker-registry on a free loopback port, with its storage in a temp dir; stopped by pid."""
    if not os.access(REGISTRY_BIN, os.X_OK):
        pytest.skip("docker-registry is not installed (make test installs it: apt-get install docker-registry)")
    root: Path = tmp_path_factory.mktemp("registry")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    (root / "config.yml").write_text(
        "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n"
        f"storage:\n  filesystem:\n    rootdirectory: {root / 'data'}\nhttp:\n  addr: 127.0.0.1:{port}\n  secret: teu-it\n"
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
