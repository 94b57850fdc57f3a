"""OCI image configs: the JSON document whose sha256 is an image's id.

The serialized bytes are stored verbatim, so an image id can always be re-verified from the store.
"""

from __future__ import annotations

import datetime
import json
import platform
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from teu.errors import Internal

__all__ = ["ImageConfig", "build_config", "parse_config"]

# platform.machine() spellings mapped to the GOARCH names OCI uses.
_ARCH = {
    "x86_64": "amd64",
    "amd64": "amd64",
    "aarch64": "arm64",
    "arm64": "arm64",
    "armv7l": "arm",
    "i686": "386",
    "i386": "386",
    "ppc64le": "ppc64le",
    "s390x": "s390x",
    "riscv64": "riscv64",
}


@dataclass(frozen=True)
class ImageConfig:
    """The runnable configuration of an image (the "config" object of an OCI image config)."""

    entrypoint: Sequence[str] = ()
    cmd: Sequence[str] = ()
    env: Sequence[str] = ()
    working_dir: str = ""
    user: str = ""
    stop_signal: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)


def build_config(config: ImageConfig, diff_ids: Sequence[str], created_ns: int) -> bytes:
    """Serializes an OCI image config for layers ``diff_ids`` (bottom first) created at ``created_ns``.

    Only non-empty fields of ``config`` are written, as Docker does. The output is deterministic for
    equal inputs, so the same content always yields the same image id.
    """
    created = _rfc3339(created_ns)
    runnable: dict[str, Any] = {}
    for key, value in (
        ("Entrypoint", list(config.entrypoint)),
        ("Cmd", list(config.cmd)),
        ("Env", list(config.env)),
        ("WorkingDir", config.working_dir),
        ("User", config.user),
        ("StopSignal", config.stop_signal),
        ("Labels", dict(sorted(config.labels.items()))),
    ):
        if value:
            runnable[key] = value
    document = {
        "architecture": _ARCH.get(platform.machine().lower(), platform.machine().lower()),
        "os": "linux",
        "created": created,
        "config": runnable,
        "rootfs": {"type": "layers", "diff_ids": list(diff_ids)},
        "history": [{"created": created, "created_by": "teu import", "comment": "Imported from tar stream"}],
    }
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()


def parse_config(raw: bytes) -> ImageConfig:
    """Reads the runnable configuration back from stored config bytes; Internal if they are corrupt."""
    try:
        runnable = json.loads(raw).get("config") or {}
        return ImageConfig(
            entrypoint=tuple(runnable.get("Entrypoint") or ()),
            cmd=tuple(runnable.get("Cmd") or ()),
            env=tuple(runnable.get("Env") or ()),
            working_dir=str(runnable.get("WorkingDir") or ""),
            user=str(runnable.get("User") or ""),
            stop_signal=str(runnable.get("StopSignal") or ""),
            labels=dict(runnable.get("Labels") or {}),
        )
    except (ValueError, AttributeError, TypeError) as exc:
        raise Internal(f"corrupt image config in store: {exc}") from exc


def _rfc3339(ns: int) -> str:
    """RFC 3339 UTC with nanoseconds, the form Docker writes."""
    seconds, rest = divmod(ns, 1_000_000_000)
    stamp = datetime.datetime.fromtimestamp(seconds, tz=datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{rest:09d}Z"
