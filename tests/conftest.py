"""Fixtures shared by the integration and security suites: one private engine per test session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from teu.client import Client
from teu.testing import PrivateEngine, wait_ready
from teu_api.types.v1 import types_pb2

IMAGE_TAR = Path(__file__).resolve().parents[1] / "build" / "busybox.tar"


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
