"""docker-compose (Debian's, 1.29) against the engine's docker.sock: a two-service app on a user
network with a named volume and a published port comes up, answers, shows its state and logs, and
goes away leaving nothing. The engine runs in a network namespace of the test's own."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_network import NamespacedEngine, in_ns

from conftest import IMAGE_TAR
from teu.client import Client
from teu_api.types.v1 import types_pb2

pytestmark = [pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root"), pytest.mark.timeout(180)]
COMPOSE = "/usr/bin/docker-compose"  # make test installs Debian's docker-compose
APP = """\
version: "3.8"
services:
  web:
    image: busybox
    command: ["httpd", "-f", "-p", "80", "-h", "/srv"]
    volumes: ["site:/srv"]
    ports: ["18081:80"]
    networks: [app]
  writer:
    image: busybox
    command: ["sh", "-c", "echo hello-from-compose > /srv/index.html; while true; do wget -qO- http://web/ && echo fetched; sleep 0.5; done"]
    volumes: ["site:/srv"]
    networks: [app]
    depends_on: [web]
volumes:
  site: {}
networks:
  app: {}
"""


@pytest.fixture(scope="module")
def engine_ns(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NamespacedEngine]:
    """An engine (bridge networking, nftables) in a fresh network namespace with lo up."""
    from pyroute2 import IPRoute
    from pyroute2 import netns as pnetns

    name = f"teucompose{os.getpid()}"
    pnetns.create(name)
    try:
        with IPRoute(netns=name, flags=0) as ipr:
            ipr.link("set", index=ipr.link_lookup(ifname="lo")[0], state="up")
        with NamespacedEngine(tmp_path_factory.mktemp("compose-engine"), name, "nftables") as eng:
            with Client(eng.target) as c, IMAGE_TAR.open("rb") as f:
                c.import_image(f, "busybox", types_pb2.ImageConfig(cmd=["sh"]))
            yield eng
    finally:
        pnetns.remove(name)


def test_compose_up_ps_logs_down(engine_ns: NamespacedEngine, tmp_path: Path) -> None:
    (tmp_path / "docker-compose.yml").write_text(APP)
    env = {"PATH": "/usr/bin:/bin", "DOCKER_HOST": f"unix://{engine_ns.run_dir}/docker.sock", "HOME": str(tmp_path)}

    def compose(*args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([COMPOSE, "-p", "demo", *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, (args, done.stdout, done.stderr)
        return done

    compose("up", "-d")
    try:
        ps = compose("ps").stdout
        assert "demo_web_1" in ps and "demo_writer_1" in ps and "0.0.0.0:18081->80/tcp" in ps, ps
        deadline = time.monotonic() + 30  # the writer reaches web by its service name, through the shared volume's page
        while "hello-from-compose" not in (logs := compose("logs", "writer").stdout):
            assert time.monotonic() < deadline, logs
            time.sleep(0.5)
        page = in_ns(engine_ns.ns, "wget", "-qO-", "http://127.0.0.1:18081/")  # the published port, in the namespace
        assert page.stdout == "hello-from-compose\n", page
    finally:
        compose("down", "-v")
    with Client(engine_ns.target) as c:
        assert [x.name for x in c.list(all=True)] == []
        assert [n.name for n in c.list_networks()] == ["bridge"]
        assert c.list_volumes() == []
