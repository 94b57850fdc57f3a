"""Fixtures of the security suite: an engine in a world-readable place (as /var/lib/teu is)."""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from teu.client import Client
from teu.testing import PrivateEngine
from teu.types.v1 import types_pb2

IMAGE_TAR = Path(__file__).resolve().parents[2] / "build" / "busybox.tar"


@pytest.fixture(scope="module")
def open_engine() -> Iterator[PrivateEngine]:
    """An engine whose state root sits in a 0755 directory, as /var/lib/teu sits in /var/lib: only the
    engine's own modes stand between a local user and its state."""
    base = Path(tempfile.mkdtemp(prefix="teu-sec-", dir="/var/tmp"))
    os.chmod(base, 0o755)
    try:
        with PrivateEngine(base) as eng:
            with Client(eng.target) as c, IMAGE_TAR.open("rb") as f:
                c.import_image(f, "busybox", types_pb2.ImageConfig(cmd=["sh"]))
            yield eng
    finally:
        subprocess.run(["rm", "-rf", "--one-file-system", str(base)], check=False)
