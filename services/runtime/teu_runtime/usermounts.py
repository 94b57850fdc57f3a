"""The mounts a container asks for over its root filesystem (binds, volumes, tmpfs): checked at
create, their sources made ready at start, and their place in the OCI config. runc performs them
(it resolves each destination inside the root filesystem, so a symlink in the image cannot send a
mount outside it)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from teu_api.errors import InvalidArgument
from teu_api.runtime.v1 import runtime_pb2

_TYPES = ("bind", "tmpfs")


def check(mounts: Sequence[runtime_pb2.ContainerMount]) -> None:
    """InvalidArgument for a mount this runtime cannot perform, or a bind source that is missing and
    not to be created (Docker's ``--mount`` refuses it at create)."""
    for cm in mounts:
        m = cm.mount
        if m.type not in _TYPES:
            raise InvalidArgument(f"unsupported mount type {m.type!r}")
        if not m.destination.startswith("/") or m.destination == "/":
            raise InvalidArgument(f"invalid mount destination {m.destination!r}")
        if m.type == "bind":
            if not m.source.startswith("/"):
                raise InvalidArgument(f"invalid bind source {m.source!r}: it must be absolute")
            if not cm.create_source and not os.path.lexists(m.source):
                raise InvalidArgument(f'invalid mount config for type "bind": bind source path does not exist: {m.source}')


def prepare(mounts: Sequence[runtime_pb2.ContainerMount]) -> None:
    """Before the runtime mounts them: the missing sources that may be created, created (mode 0755,
    as Docker's -v)."""
    for cm in mounts:
        if cm.create_source and not os.path.lexists(cm.mount.source):
            _make_dirs(cm.mount.source)


def _make_dirs(path: str) -> None:
    """``mkdir -p`` with mode 0755 whatever this process's umask (the runtime's is strict)."""
    parent = os.path.dirname(path)
    if parent != path and not os.path.lexists(parent):
        _make_dirs(parent)
    try:
        os.mkdir(path)
    except FileExistsError:
        return
    os.chmod(path, 0o755)


def oci(mounts: Sequence[runtime_pb2.ContainerMount]) -> list[dict[str, Any]]:
    """The mounts as config.json lists them."""
    return [
        {"destination": cm.mount.destination, "type": cm.mount.type, "source": cm.mount.source, "options": list(cm.mount.options)}
        for cm in mounts
    ]
