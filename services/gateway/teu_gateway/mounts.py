"""A container's mounts: the user's MountSpecs checked and turned into the runtime's mounts. Pure.

Docker's rules: targets absolute and distinct, never ``/``; a bind source absolute, propagation
``rprivate`` unless asked; a tmpfs ``nosuid,nodev,noexec`` unless its options say otherwise.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable
from typing import Final

from teu_api.errors import InvalidArgument, Unimplemented
from teu_api.gateway.v1 import gateway_pb2 as gw
from teu_api.runtime.v1 import runtime_pb2 as rt
from teu_api.types.v1 import types_pb2
from teu_gateway.limits import shown

PROPAGATIONS: Final = frozenset({"private", "rprivate", "shared", "rshared", "slave", "rslave"})
#: tmpfs options that are flags, and those that take a number (uid=1000, nr_inodes=10k).
TMPFS_FLAGS: Final = frozenset({
    "exec", "noexec", "suid", "nosuid", "dev", "nodev", "atime", "noatime", "relatime", "norelatime",
    "strictatime", "nostrictatime", "diratime", "nodiratime",
})  # fmt: skip
TMPFS_NUMBERS: Final = frozenset({"uid", "gid", "nr_inodes", "nr_blocks"})
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


def resolve(specs: Iterable[gw.MountSpec]) -> list[rt.ContainerMount]:
    """The runtime's mounts for ``specs`` (volumes not yet built: UNIMPLEMENTED); InvalidArgument for
    a bad one or two at one target."""
    out: list[rt.ContainerMount] = []
    seen: set[str] = set()
    for m in specs:
        if m.type == "bind":
            mount = _bind(m)
        elif m.type == "tmpfs":
            mount = _tmpfs(m)
        elif m.type == "volume":
            raise Unimplemented("volumes are not available in this engine yet: use a bind mount or a tmpfs")
        else:
            raise InvalidArgument(f"invalid mount type {shown(m.type)}: want bind, volume or tmpfs")
        if mount.mount.destination in seen:
            raise InvalidArgument(f"duplicate mount point: {mount.mount.destination}")
        seen.add(mount.mount.destination)
        out.append(mount)
    return out
