"""Fixtures shared by the integration and security suites: one private engine per test session."""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from teu.client import Client
from teu.testing import PrivateEngine, residents, wait_ready
from teu_api.types.v1 import types_pb2

IMAGE_TAR = Path(__file__).resolve().parents[1] / "build" / "busybox.tar"


@pytest.fixture(scope="session", autouse=True)
def resident_folder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The `teu` commands of this session talk to resident clients of its own (XDG_RUNTIME_DIR under
    its temp dir), stopped at its end: no resident outlives the suite."""
    folder = tmp_path_factory.mktemp("xdg")
    folder.chmod(0o700)
    old = os.environ.get("XDG_RUNTIME_DIR")
    os.environ["XDG_RUNTIME_DIR"] = str(folder)
    yield folder
    if old is None:
        os.environ.pop("XDG_RUNTIME_DIR", None)
    else:
        os.environ["XDG_RUNTIME_DIR"] = old
    for pid in residents(folder):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)


@pytest.fixture(scope="session")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateEngine]:
    """Starts teu-engine with its state under a temp dir, with the busybox image imported."""
    with PrivateEngine(tmp_path_factory.mktemp("engine")) as eng:
        with Client(eng.target) as c, IMAGE_TAR.open("rb") as f:
            c.import_image(f, "busybox", types_pb2.ImageConfig(cmd=["sh"]))
        yield eng


@pytest.fixture()
def client(engine: PrivateEngine) -> Iterator[Client]:
    """An SDK client of the private engine."""
    with Client(engine.target) as c:
        wait_ready(c)
        yield c
