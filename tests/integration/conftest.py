"""Names the integration tests import; the engine and client fixtures live in ``tests/conftest.py``."""

from __future__ import annotations

from pathlib import Path

from teu.testing import PrivateEngine, wait_ready

REPO = Path(__file__).resolve().parents[2]
IMAGE_TAR = REPO / "build" / "busybox.tar"
Engine = PrivateEngine

__all__ = ["IMAGE_TAR", "REPO", "Engine", "wait_ready"]
