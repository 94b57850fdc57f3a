"""Names the integration tests import; the engine and client fixtures live in ``tests/conftest.py``."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from teu.testing import PrivateEngine, wait_ready

REPO = Path(__file__).resolve().parents[2]
IMAGE_TAR = REPO / "build" / "busybox.tar"
DEBIAN_TAR = REPO / "build" / "debian.tar"


def debian_tar() -> Path:
    """The Debian 12 image (python3) as a tar, built once by ``scripts/build-debian-image.sh``
    (the test is skipped if the Debian mirror is unreachable)."""
    if not DEBIAN_TAR.exists():
        DEBIAN_TAR.parent.mkdir(exist_ok=True)
        built = subprocess.run([str(REPO / "scripts" / "build-debian-image.sh"), str(DEBIAN_TAR)],
                               capture_output=True, text=True, timeout=900)  # fmt: skip
        if built.returncode == 3:
            pytest.skip(f"debootstrap cannot reach the Debian mirror: {built.stderr.strip()}")
        assert built.returncode == 0, built.stderr
    return DEBIAN_TAR


Engine = PrivateEngine

__all__ = ["DEBIAN_TAR", "IMAGE_TAR", "REPO", "Engine", "debian_tar", "wait_ready"]
