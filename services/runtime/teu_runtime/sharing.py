"""Namespaces a container shares: with another container (``--network``/``--ipc``/``--pid
container:NAME``) or with the host (``host``), Docker's rules. Pure, given the containers."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from teu_api.errors import FailedPrecondition, InvalidArgument
from teu_api.runtime.v1 import runtime_pb2

CONTAINER: Final = "container:"
HOST: Final = "host"
_MODES: Final = {"ipc": ("", "private", "shareable", HOST), "pid": ("", HOST), "uts": ("", HOST)}


@dataclass(frozen=True)
class Donor:
    """A running container whose namespaces another joins."""

    id: str
    name: str
    pid: int
    ipc: str


def joined(mode: str) -> str:
    """The container id a ``container:ID`` mode names ("" for any other mode)."""
    return mode[len(CONTAINER) :] if mode.startswith(CONTAINER) else ""


def check(spec: runtime_pb2.ContainerSpec, find_id: Callable[[str], str], remapped: bool) -> None:
    """Checks the modes and rewrites each ``container:NAME`` to the full id ``find_id`` gives (NotFound
    for an unknown one), at create. InvalidArgument for an unknown mode; FailedPrecondition for a
    host namespace or a join under user namespace remapping (Docker's rule: --userns=host first)."""
    for kind, allowed in _MODES.items():
        mode = getattr(spec, kind)
        if mode.startswith(CONTAINER) and kind in ("ipc", "pid"):
            setattr(spec, kind, CONTAINER + find_id(joined(mode)))
        elif mode not in allowed:
            raise InvalidArgument(f"invalid --{kind} mode {mode[:80]!r}: want one of {', '.join(m for m in allowed if m)}"
                                  + (" or container:NAME" if kind in ("ipc", "pid") else ""))  # fmt: skip
    if spec.network.startswith(CONTAINER):
        spec.network = CONTAINER + find_id(joined(spec.network))
    if remapped:
        for kind in ("network", "ipc", "pid", "uts"):
            mode = getattr(spec, kind)
            if (mode == HOST and kind != "network") or mode.startswith(CONTAINER):
                raise FailedPrecondition(f"--{kind} {mode} is incompatible with user namespace remapping: add --userns=host")


def namespaces(spec: runtime_pb2.ContainerSpec, donors: Mapping[str, Donor], host_network: bool) -> dict[str, str | None]:
    """Each namespace the container does not make for itself: a path to join, or None for the
    host's. ``donors`` are the running containers its modes name (by id); FailedPrecondition for one
    that is not running, or whose IPC namespace is not shareable."""
    out: dict[str, str | None] = {}
    if host_network:
        out["network"] = None
    for kind, ns in (("network", "net"), ("ipc", "ipc"), ("pid", "pid"), ("uts", "uts")):
        mode = getattr(spec, kind)
        if mode == HOST and kind != "network":
            out[kind] = None
        elif cid := joined(mode):
            donor = donors.get(cid)
            if donor is None:
                raise FailedPrecondition(f"cannot join the {kind} namespace of container {cid[:12]}: it is not running")
            if kind == "ipc" and donor.ipc != "shareable":
                raise FailedPrecondition(
                    f"cannot join the IPC namespace of container {donor.name}: non-shareable IPC "
                    "(hint: use --ipc shareable for the donor container)"
                )
            out[kind] = f"/proc/{donor.pid}/ns/{ns}"
    return out


def shm_source(spec: runtime_pb2.ContainerSpec, own: Path, donors: Mapping[str, Path]) -> str:
    """Where /dev/shm comes from when IPC is shared: the host's; the container's own tmpfs mounted
    at ``own`` when it is shareable; the donor's (``donors``: each donor's such tmpfs). "" for a
    tmpfs of its own made by the OCI runtime."""
    if spec.ipc == HOST:
        return "/dev/shm"
    if spec.ipc == "shareable":
        return str(own)
    if cid := joined(spec.ipc):
        return str(donors[cid])
    return ""
