"""OCI image configs: the JSON document whose sha256 is an image's id.

The serialized bytes are stored verbatim, so an image id can always be re-verified from the store.
"""

from __future__ import annotations

import datetime
import json
import platform
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from teu_api.errors import Internal, InvalidArgument

__all__ = [
    "HistoryItem",
    "ImageConfig",
    "build_config",
    "history",
    "host_architecture",
    "parse_config",
    "parse_created",
    "platform_of",
    "platform_string",
    "rfc3339",
]

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
    #: Paths that get a volume in every container (Dockerfile VOLUME), sorted.
    volumes: Sequence[str] = ()
    #: Ports the image listens on, "80/tcp" each (Dockerfile EXPOSE), sorted.
    exposed_ports: Sequence[str] = ()
    #: Dockerfile HEALTHCHECK as Docker stores it: Test, Interval, Timeout, StartPeriod, StartInterval (ns), Retries.
    healthcheck: Mapping[str, Any] = field(default_factory=dict)
    #: The shell of a build's shell-form instructions (Dockerfile SHELL); empty is ["/bin/sh", "-c"].
    shell: Sequence[str] = ()
    #: Instructions a build based on this image runs first (Dockerfile ONBUILD).
    on_build: Sequence[str] = ()


@dataclass(frozen=True)
class HistoryItem:
    """One entry of an OCI config's history; ``empty_layer`` entries added no layer."""

    created: str = ""
    created_by: str = ""
    comment: str = ""
    author: str = ""
    empty_layer: bool = False

    def to_json(self) -> dict[str, Any]:
        """The entry as OCI writes it (empty fields left out)."""
        out: dict[str, Any] = {}
        for key, value in (
            ("created", self.created),
            ("created_by", self.created_by),
            ("comment", self.comment),
            ("author", self.author),
        ):
            if value:
                out[key] = value
        if self.empty_layer:
            out["empty_layer"] = True
        return out


def build_config(
    config: ImageConfig,
    diff_ids: Sequence[str],
    created_ns: int,
    *,
    steps: Sequence[HistoryItem] | None = None,
    base_platform: Mapping[str, str] | None = None,
    author: str = "",
) -> bytes:
    """Serializes an OCI image config for layers ``diff_ids`` (bottom first) created at ``created_ns``.

    Only non-empty fields of ``config`` are written, as Docker does. ``steps`` is the history (an
    import entry if None); ``base_platform`` (architecture, os, variant) carries a parent's platform
    over to a commit. The output is deterministic for equal inputs, so the same content always
    yields the same image id.
    """
    created = rfc3339(created_ns)
    runnable: dict[str, Any] = {}
    for key, value in (
        ("Entrypoint", list(config.entrypoint)),
        ("Cmd", list(config.cmd)),
        ("Env", list(config.env)),
        ("WorkingDir", config.working_dir),
        ("User", config.user),
        ("StopSignal", config.stop_signal),
        ("Labels", dict(sorted(config.labels.items()))),
        ("Volumes", {path: {} for path in sorted(config.volumes)}),
        ("ExposedPorts", {port: {} for port in sorted(config.exposed_ports)}),
        ("Healthcheck", dict(config.healthcheck)),
        ("Shell", list(config.shell)),
        ("OnBuild", list(config.on_build)),
    ):
        if value:
            runnable[key] = value
    if steps is None:
        steps = [HistoryItem(created=created, created_by="teu import", comment="Imported from tar stream")]
    document: dict[str, Any] = {
        "architecture": host_architecture(),
        "os": "linux",
    }
    document.update(base_platform or {})
    if author:
        document["author"] = author
    document.update(
        {
            "created": created,
            "config": runnable,
            "rootfs": {"type": "layers", "diff_ids": list(diff_ids)},
            "history": [step.to_json() for step in steps],
        }
    )
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()


def host_architecture() -> str:
    """This machine's architecture in OCI (GOARCH) spelling."""
    return _ARCH.get(platform.machine().lower(), platform.machine().lower())


def history(raw: bytes, layers: int) -> list[HistoryItem]:
    """The history of stored config ``raw``, oldest first; one blank entry per layer if it has none."""
    try:
        items = json.loads(raw).get("history") or []
        steps = [
            HistoryItem(
                created=str(h.get("created") or ""),
                created_by=str(h.get("created_by") or ""),
                comment=str(h.get("comment") or ""),
                author=str(h.get("author") or ""),
                empty_layer=bool(h.get("empty_layer")),
            )
            for h in items
            if isinstance(h, dict)
        ]
    except (ValueError, AttributeError) as exc:
        raise Internal(f"corrupt image config in store: {exc}") from exc
    if sum(not s.empty_layer for s in steps) != layers:
        return [HistoryItem() for _ in range(layers)]  # a history that does not match is no help
    return steps


def platform_of(raw: bytes) -> dict[str, str]:
    """architecture, os and variant of stored config ``raw``."""
    try:
        doc = json.loads(raw)
        return {k: str(doc[k]) for k in ("architecture", "os", "variant") if doc.get(k)}
    except (ValueError, AttributeError) as exc:
        raise Internal(f"corrupt image config in store: {exc}") from exc


def platform_string(raw: bytes) -> str:
    """ "os/architecture[/variant]" of stored config ``raw`` ("" parts left out)."""
    p = platform_of(raw)
    return "/".join(x for x in (p.get("os", ""), p.get("architecture", ""), p.get("variant", "")) if x)


def parse_created(stamp: str) -> int | None:
    """Unix nanoseconds of an RFC 3339 time as OCI writes it, None if unreadable."""
    m = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9})\d*)?(Z|[+-]\d\d:\d\d)", stamp)
    if m is None:
        return None
    try:
        zone = "+00:00" if m.group(3) == "Z" else m.group(3)
        moment = datetime.datetime.fromisoformat(m.group(1) + zone)
    except ValueError:
        return None
    return int(moment.timestamp()) * 1_000_000_000 + int((m.group(2) or "0").ljust(9, "0"))


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
            volumes=tuple(sorted(runnable.get("Volumes") or {})),
            exposed_ports=tuple(sorted(runnable.get("ExposedPorts") or {})),
            healthcheck=dict(runnable.get("Healthcheck") or {}),
            shell=tuple(runnable.get("Shell") or ()),
            on_build=tuple(runnable.get("OnBuild") or ()),
        )
    except (ValueError, AttributeError, TypeError) as exc:
        raise Internal(f"corrupt image config in store: {exc}") from exc


def rfc3339(ns: int) -> str:
    """RFC 3339 UTC with nanoseconds, the form Docker writes."""
    seconds, rest = divmod(ns, 1_000_000_000)
    stamp = datetime.datetime.fromtimestamp(seconds, tz=datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{rest:09d}Z"


DIGEST = re.compile(r"sha256:[a-f0-9]{64}", re.ASCII)


def diff_ids(doc: Any, prefix: str = "") -> list[str]:
    """``rootfs.diff_ids`` of a parsed image config; InvalidArgument (with ``prefix``) if missing or malformed."""
    rootfs = doc.get("rootfs") if isinstance(doc, dict) else None
    found = rootfs.get("diff_ids") if isinstance(rootfs, dict) else None
    if not isinstance(found, list) or not all(isinstance(d, str) and DIGEST.fullmatch(d) for d in found):
        raise InvalidArgument(f"{prefix}image config without valid rootfs.diff_ids")
    return found


def created_field(config: bytes) -> str:
    """The raw ``created`` string of an image config ("" if absent or unreadable)."""
    try:
        value = json.loads(config).get("created")
    except (ValueError, AttributeError):
        return ""
    return value if isinstance(value, str) else ""
