"""The project's distributions: one version for all, each installable on its own terms."""

from __future__ import annotations

import tomllib
from pathlib import Path

import teu_api

ROOT = Path(__file__).resolve().parents[3]
DISTRIBUTIONS = sorted(ROOT.glob("*/python/pyproject.toml")) + sorted(ROOT.glob("services/*/pyproject.toml"))


def test_every_distribution_has_the_engine_version() -> None:
    """Each pyproject.toml states teu_api.VERSION, the version the CLI and the gateway report."""
    versions = {p.relative_to(ROOT).as_posix(): tomllib.loads(p.read_text())["project"]["version"] for p in DISTRIBUTIONS}
    assert len(versions) == 11
    assert versions == dict.fromkeys(versions, teu_api.VERSION)


def test_the_sdk_depends_on_no_service() -> None:
    """The SDK (distribution ``teu``) needs only the contracts and grpcio: it installs without the services."""
    sdk = tomllib.loads((ROOT / "clients/python/pyproject.toml").read_text())["project"]
    assert sorted(d.split(">")[0] for d in sdk["dependencies"]) == ["grpcio", "teu-api"]
