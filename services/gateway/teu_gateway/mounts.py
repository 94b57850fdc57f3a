"""A container's mounts: the user's MountSpecs checked and turned into the runtime's mounts. Pure.

Docker's rules: targets absolute and distinct, never ``/``; a bind source absolute, propagation
``rprivate`` unless asked; a tmpfs ``nosuid,nodev,noexec`` unless its options say otherwise.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

from teu_api.errors import InvalidArgument
from teu_api.gateway.v1 import gateway_pb2 as gw
from teu_api.runtime.v1 import runtime_pb2 as rt
from teu_api.storage.v1 import storage_pb2 as st
from teu_api.types.v1 import types_pb2
from teu_gateway.limits import shown

PROPAGATIONS: Final = frozenset({"private", "rprivate", "shared", "rshared", "slave", "rslave"})
#: tmpfs options that are flags, and those that take a number (uid=1000, nr_inodes=10k).
TMPFS_FLAGS: Final = frozenset({
    "exec", "noexec", "suid", "nosuid", "dev", "nodev", "atime", "noatime", "relatime", "norelatime",
    "strictatime", "nostrictatime", "diratime", "nodiratime",
})  # fmt: skip
TMPFS_NUMBERS: Final = frozenset({"uid", "gid", "nr_inodes", "nr_blocks"})
VOLUME_NAME: Final = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]{1,254}")
_NUMBER: Final = re.compile(r"\d+[kmg]?", re.IGNORECASE)
TMPFS_DEFAULTS: Final = ("nosuid", "nodev", "noexec")


def target(path: str) -> str:
    """The mount's path in the container, cleaned; InvalidArgument unless absolute and not ``/``."""
    if not path.startswith("/"):
        raise InvalidArgument(f"invalid mount target {shown(path)}: it must be an absolute path")
    clean = posixpath.normpath(path)
    if clean == "/":
        raise InvalidArgument("invalid mount target '/': the root filesystem cannot be replaced by a mount")
    return clean


def _bind(m: gw.MountSpec) -> rt.ContainerMount:
    if not m.source.startswith("/"):
        raise InvalidArgument(f"invalid bind source {shown(m.source)}: it must be an absolute path on the host")
    if m.propagation and m.propagation not in PROPAGATIONS:
        raise InvalidArgument(f"invalid bind propagation {shown(m.propagation)}: want one of {', '.join(sorted(PROPAGATIONS))}")
    options = ["rbind", m.propagation or "rprivate", *(["ro"] if m.read_only else [])]
    mount = types_pb2.Mount(type="bind", source=posixpath.normpath(m.source), destination=target(m.target), options=options)
    return rt.ContainerMount(mount=mount, create_source=m.create_host_path)


def _tmpfs_option(option: str) -> str:
    key, eq, value = option.partition("=")
    if (not eq and key in TMPFS_FLAGS) or (eq and key in TMPFS_NUMBERS and _NUMBER.fullmatch(value)):
        return option
    raise InvalidArgument(f"invalid tmpfs option {shown(option)}")


def _tmpfs(m: gw.MountSpec) -> rt.ContainerMount:
    if m.source:
        raise InvalidArgument(f"a tmpfs mount takes no source, got {shown(m.source)}")
    if m.tmpfs_size < 0:
        raise InvalidArgument(f"invalid tmpfs size {m.tmpfs_size}: it must not be negative")
    if m.tmpfs_mode > 0o7777:
        raise InvalidArgument(f"invalid tmpfs mode {m.tmpfs_mode:o}")
    options = [*TMPFS_DEFAULTS, *(_tmpfs_option(o) for o in m.tmpfs_options)]
    options += [f"size={m.tmpfs_size}"] if m.tmpfs_size else []
    options += [f"mode={m.tmpfs_mode:o}"] if m.tmpfs_mode else []
    options += ["ro"] if m.read_only else []
    return rt.ContainerMount(mount=types_pb2.Mount(type="tmpfs", source="tmpfs", destination=target(m.target), options=options))


@dataclass(frozen=True)
class VolumeRequest:
    """A volume to mount: made if missing (a new anonymous one when ``name`` is empty)."""

    name: str
    target: str
    read_only: bool = False
    no_copy: bool = False
    labels: Mapping[str, str] = field(default_factory=dict)
    options: Mapping[str, str] = field(default_factory=dict)


#: A mount ready for the runtime, or a volume the engine must find or make first.
Planned = rt.ContainerMount | VolumeRequest


def _volume(m: gw.MountSpec) -> VolumeRequest:
    if m.source and not VOLUME_NAME.fullmatch(m.source):
        raise InvalidArgument(
            f"invalid volume name {shown(m.source)}: want 2 to 255 characters of [a-zA-Z0-9_.-], starting with a letter or digit"
        )
    return VolumeRequest(m.source, target(m.target), m.read_only, m.no_copy, dict(m.volume_labels), dict(m.volume_options))


def plan(
    specs: Iterable[gw.MountSpec], inherited: Sequence[rt.ContainerMount] = (), image_volumes: Iterable[str] = ()
) -> list[Planned]:
    """A container's mounts: the user's (``specs``), then those of ``--volumes-from`` containers
    (``inherited``), then a new volume at each of the image's VOLUME paths, each at a path none before
    took. InvalidArgument for a bad one or two of the user's at one target."""
    out: list[Planned] = []
    seen: set[str] = set()
    for m in specs:
        planned: Planned
        if m.type == "bind":
            planned = _bind(m)
        elif m.type == "tmpfs":
            planned = _tmpfs(m)
        elif m.type == "volume":
            planned = _volume(m)
        else:
            raise InvalidArgument(f"invalid mount type {shown(m.type)}: want bind, volume or tmpfs")
        path = destination(planned)
        if path in seen:
            raise InvalidArgument(f"duplicate mount point: {path}")
        seen.add(path)
        out.append(planned)
    for cm in inherited:
        if cm.mount.destination not in seen:
            seen.add(cm.mount.destination)
            out.append(cm)
    for path in image_volumes:
        clean = posixpath.normpath(path)
        if path.startswith("/") and clean != "/" and clean not in seen:
            seen.add(clean)
            out.append(VolumeRequest("", clean))
    return out


def destination(m: Planned) -> str:
    """Where a planned mount goes in the container."""
    return m.target if isinstance(m, VolumeRequest) else m.mount.destination


def volume_mount(req: VolumeRequest, volume: st.Volume) -> rt.ContainerMount:
    """The runtime's mount of ``volume`` for ``req``: its own mount (a bind of its data, a tmpfs, a
    bind of a host path) at the target, private, read-only if asked."""
    m = volume.mount
    options = [*m.options, *(["rprivate"] if m.type == "bind" else []), *(["ro"] if req.read_only else [])]
    mount = types_pb2.Mount(type=m.type, source=m.source, destination=req.target, options=options)
    return rt.ContainerMount(mount=mount, volume=volume.name, anonymous_volume=volume.anonymous)


def inherit(c: rt.Container, mode: str) -> list[rt.ContainerMount]:
    """``--volumes-from C[:ro|:rw]``: C's binds and volumes, read-only with ``ro``, as they are without
    a mode; never C's anonymous volumes as this container's own (they go with C)."""
    if mode not in ("", "ro", "rw"):
        raise InvalidArgument(f"invalid mode {shown(mode)} in --volumes-from: want ro or rw")
    out = []
    for cm in c.spec.mounts:
        if cm.mount.type != "bind" and not cm.volume:
            continue  # a tmpfs of its own
        copy = rt.ContainerMount()
        copy.CopyFrom(cm)
        copy.anonymous_volume = False
        copy.create_source = False
        if mode:
            copy.mount.options[:] = [o for o in cm.mount.options if o not in ("ro", "rw")] + (["ro"] if mode == "ro" else [])
        out.append(copy)
    return out
