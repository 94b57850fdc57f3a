"""A private Teu engine for the integration tests: real services, real containers, in a temp dir."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from teu.client import Client
from teu.errors import TeuError
from teu.types.v1 import types_pb2

REPO = Path(__file__).resolve().parents[2]
IMAGE_TAR = REPO / "build" / "busybox.tar"


@dataclass
class Engine:
    """A running private engine."""

    root: Path
    run_dir: Path
    proc: subprocess.Popen[bytes]

    @property
    def target(self) -> str:
        """The gateway address."""
        return f"unix:{self.run_dir}/gateway.sock"

    def env(self) -> dict[str, str]:
        """Environment that points the `teu` CLI at this engine."""
        return {**os.environ, "TEU_RUN": str(self.run_dir), "TEU_ROOT": str(self.root)}

    def service_pid(self, name: str) -> int:
        """pid of one of the four services (from its socket's owner)."""
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                cmd = (proc / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if f"teu.{name}".encode() in cmd and str(self.run_dir).encode() in cmd:
                return int(proc.name)
        raise LookupError(name)


def wait_ready(client: Client, timeout: float = 30.0) -> None:
    """Blocks until the gateway and every backend answer."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            client.info()
            return
        except TeuError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


@pytest.fixture(scope="session")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """Starts teu-engine with its state under a temp dir; stops it and removes every container after."""
    base = tmp_path_factory.mktemp("engine")
    root, run_dir = base / "lib", base / "run"
    env = {**os.environ, "TEU_METRICS_PORT_BASE": "0"}
    log = open(base / "engine.log", "ab")  # noqa: SIM115 - closed at teardown
    proc = subprocess.Popen(
        [sys.executable, "-m", "teu.engine", "--root", str(root), "--run-dir", str(run_dir)],
        env=env,
        stdout=log,
        stderr=log,
        start_new_session=True,
    )
    eng = Engine(root, run_dir, proc)
    with Client(eng.target) as c:
        wait_ready(c)
        with IMAGE_TAR.open("rb") as f:
            c.import_image(f, "busybox", types_pb2.ImageConfig(cmd=["sh"]))
    yield eng
    with Client(eng.target) as c:
        for s in c.list(all=True):
            try:
                c.remove(s.id, force=True)
            except TeuError:
                pass
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)
    log.close()


@pytest.fixture()
def client(engine: Engine) -> Iterator[Client]:
    """An SDK client of the private engine."""
    with Client(engine.target) as c:
        wait_ready(c)
        yield c
