"""Who may read the engine's state: root only, except the gateway socket for the ``teu`` group.

Every engine process runs with umask 077, so whatever it creates (databases, OCI specs, exec
specs, logs, tar spools) is 0600 and every directory 0700 unless made otherwise on purpose. A
local user who could reach a container's root filesystem through the host's path would run a
setuid file planted by the container's root (the CVE-2021-41091 class), and the specs hold every
container's environment; so the state root is 0700. The one exception is the socket directory:
members of the ``teu`` group must traverse it to reach ``gateway.sock`` (root-equivalent, like
Docker's ``docker`` group), so it is 0710 with that group when the group exists.

With user namespace remapping (``TEU_USERNS_REMAP``), a container's root is an unprivileged host
uid that must pass through the state root, the runtime's directory and the container's bundle to
reach its root filesystem: those are then 0710 with the range's group (Docker does the same).

The OCI runtime is the one process started under umask 022: it creates the container's cgroup
directories, which the container's own root must traverse and read (a remapped root is an
unprivileged host uid; Docker's cgroups are 0755 too). Whatever else conmon and the runtime
write lands in the engine's 0700 directories, or is given its mode explicitly (conmon's log 0600,
attach socket 0700).

Files a container reads through a bind mount (/etc/hosts, /etc/hostname, /etc/resolv.conf) and
directories it sees as its own (the root of its writable layer) are given their modes explicitly.
"""

from __future__ import annotations

import grp
import os
from pathlib import Path

from teu_common import idmap

__all__ = [
    "API_GROUP",
    "OCI_RUNTIME_UMASK",
    "api_gid",
    "lock_down",
    "private_dir",
    "public_file",
    "socket_dir",
    "state_root",
    "traversable",
]

API_GROUP = "teu"
UMASK = 0o077
OCI_RUNTIME_UMASK = 0o022  # its cgroup directories must be 0755 (see above)


def lock_down() -> None:
    """Sets the process umask so that nothing it creates is readable by other users."""
    os.umask(UMASK)


def api_gid() -> int | None:
    """The gid of the ``teu`` group, None if the host has none."""
    try:
        return grp.getgrnam(API_GROUP).gr_gid
    except KeyError:
        return None


def private_dir(path: Path) -> Path:
    """Creates ``path`` if missing and makes it 0700 (also when an older engine left it 0755)."""
    return traversable(path, None)


def traversable(path: Path, gid: int | None) -> Path:
    """Creates ``path`` if missing: 0710 root:``gid`` when a remapped container's root (host group
    ``gid``) must pass through it to reach its root filesystem and bind-mounted files, else 0700.
    Traversal only: that group can list nothing, and no local user is in it."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    if gid is None:
        os.chmod(path, 0o700)
    else:
        os.chown(path, 0, gid)
        os.chmod(path, 0o710)
    return path


def state_root(path: Path) -> Path:
    """The engine's state root: traversable by the remapped root's group when the engine remaps
    user namespaces (``TEU_USERNS_REMAP``), else 0700."""
    mapping = idmap.configured()
    return traversable(path, mapping.gid if mapping else None)


def socket_dir(path: Path) -> Path:
    """Creates the socket directory before any socket is bound in it: 0710 root:teu when the
    ``teu`` group exists (its members reach the gateway socket), else 0700."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    gid = api_gid()
    if gid is None:
        os.chmod(path, 0o700)
    else:
        os.chown(path, 0, gid)
        os.chmod(path, 0o710)
    return path


def public_file(path: Path, text: str) -> None:
    """Writes ``text`` to a file any user of a container may read (0644), e.g. its /etc/hosts."""
    path.write_text(text)
    os.chmod(path, 0o644)


def service_socket(sock: Path, public: bool) -> None:
    """A front door's socket (``public``: the gateway's, the Docker API's) is root:teu 0660 when the
    ``teu`` group exists (root-equivalent, like Docker's group); every other socket, and a front
    door's without that group, is 0600."""
    gid = api_gid() if public else None
    if gid is None:
        os.chmod(sock, 0o600)
        return
    os.chown(sock, 0, gid)
    os.chmod(sock, 0o660)
