"""Fixtures of the security suite: engines whose state sits in a world-readable place (as
/var/lib/teu sits in /var/lib), so only the engine's own modes protect it."""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import pytest

from teu.client import Client
from teu.testing import PrivateEngine
from teu_api.types.v1 import types_pb2

IMAGE_TAR = Path(__file__).resolve().parents[2] / "build" / "busybox.tar"
USERNS_BASE, USERNS_SIZE = 231072, 65536


@contextmanager
def _engine_in_open_dir(env: Mapping[str, str] | None = None) -> Iterator[PrivateEngine]:
    base = Path(tempfile.mkdtemp(prefix="teu-sec-", dir="/var/tmp"))
    os.chmod(base, 0o755)
    try:
        with PrivateEngine(base, env=env) as eng:
            with Client(eng.target) as c, IMAGE_TAR.open("rb") as f:
                c.import_image(f, "busybox", types_pb2.ImageConfig(cmd=["sh"]))
            yield eng
    finally:
        subprocess.run(["rm", "-rf", "--one-file-system", str(base)], check=False)


@pytest.fixture(scope="module")
def open_engine() -> Iterator[PrivateEngine]:
    """An engine in a 0755 directory: only its own modes stand between a local user and its state."""
    with _engine_in_open_dir() as eng:
        yield eng


@pytest.fixture(scope="module")
def remapped() -> Iterator[PrivateEngine]:
    """An engine in a 0755 directory that maps container ids 0..65535 to host ids 231072.. (the
    remapped root must pass through the directories above its state)."""
    with _engine_in_open_dir({"TEU_USERNS_REMAP": f"{USERNS_BASE}:{USERNS_BASE}:{USERNS_SIZE}"}) as eng:
        yield eng
