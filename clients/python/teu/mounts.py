"""Docker's three spellings of a mount, parsed into the API's MountSpec: ``-v``, ``--mount`` and
``--tmpfs``. Pure; the engine checks the result again (paths, options, bounds)."""

from __future__ import annotations

import os
import re

from teu.errors import InvalidArgument
from teu_api.gateway.v1 import gateway_pb2 as gw

#: A local volume's name, as Docker allows it.
VOLUME_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]+")
PROPAGATIONS = frozenset({"private", "rprivate", "shared", "rshared", "slave", "rslave"})
#: Options of -v that ask for SELinux relabelling: accepted and ignored (no SELinux labels here).
_RELABEL = frozenset({"z", "Z"})
_TRUE, _FALSE = frozenset({"", "1", "true"}), frozenset({"0", "false"})


def _shown(value: str) -> str:
    return repr(value if len(value) <= 60 else value[:57] + "...")


def volume(spec: str, cwd: str | None = None) -> gw.MountSpec:
    """``-v [SOURCE:]TARGET[:OPTIONS]``: an absolute SOURCE (or one starting with ``.``, taken from
    ``cwd``) is a bind mount whose missing directory is created; another SOURCE names a volume; no
    SOURCE is a new anonymous volume. OPTIONS: ro, rw, nocopy, a propagation, z/Z."""
    parts = spec.split(":")
    if not spec or len(parts) > 3:
        raise InvalidArgument(f"invalid volume specification: {_shown(spec)}")
    opts = parts[2] if len(parts) == 3 else ""
    if len(parts) == 1:
        source, target = "", parts[0]
    else:
        source, target = parts[0], parts[1]
    m = gw.MountSpec(target=target)
    if source.startswith(("/", ".")):
        m.type, m.create_host_path = "bind", True
        m.source = source if source.startswith("/") else os.path.normpath(os.path.join(cwd or os.getcwd(), source))
    else:
        if source and not VOLUME_NAME.fullmatch(source):
            raise InvalidArgument(
                f"{_shown(source)} includes invalid characters for a local volume name, only "
                '"[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass a host directory, use absolute path'
            )
        m.type, m.source = "volume", source
    for opt in filter(None, opts.split(",")):
        if opt in ("ro", "rw"):
            m.read_only = opt == "ro"
        elif opt in PROPAGATIONS and m.type == "bind":
            m.propagation = opt
        elif opt == "nocopy" and m.type == "volume":
            m.no_copy = True
        elif opt not in _RELABEL:
            raise InvalidArgument(f"invalid mode {_shown(opt)} in volume specification {_shown(spec)}")
    return m


def _flag(key: str, value: str) -> bool:
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise InvalidArgument(f"invalid value for {key}: {_shown(value)}")


def mount(spec: str) -> gw.MountSpec:
    """``--mount type=bind|volume|tmpfs,source=,target=,readonly,...`` (Docker's keys and aliases).
    The type defaults to volume; a bind source must exist (the engine checks)."""
    fields: list[tuple[str, str]] = []
    for item in spec.split(","):
        key, eq, value = item.partition("=")
        key = key.strip().lower()
        if not key:
            raise InvalidArgument(f"invalid mount specification: {_shown(spec)}")
        fields.append((key, value if eq else ""))
    kind = next((v for k, v in fields if k == "type"), "volume")
    if kind not in ("bind", "volume", "tmpfs"):
        raise InvalidArgument(f"invalid mount type {_shown(kind)}: want bind, volume or tmpfs")
    m = gw.MountSpec(type=kind)
    for key, value in fields:
        if key == "type":
            continue
        if key in ("source", "src"):
            m.source = value
        elif key in ("target", "destination", "dst"):
            m.target = value
        elif key in ("readonly", "ro"):
            m.read_only = _flag(key, value)
        elif key == "consistency":
            continue  # a macOS file-sharing hint: nothing to do on Linux
        elif kind == "bind" and key == "bind-propagation":
            if value not in PROPAGATIONS:
                raise InvalidArgument(f"invalid bind-propagation {_shown(value)}")
            m.propagation = value
        elif kind == "volume" and key == "volume-nocopy":
            m.no_copy = _flag(key, value)
        elif kind == "volume" and key in ("volume-label", "volume-opt"):
            k, eq, v = value.partition("=")
            if not k or not eq:
                raise InvalidArgument(f"invalid {key} {_shown(value)}: want KEY=VALUE")
            (m.volume_labels if key == "volume-label" else m.volume_options)[k] = v
        elif kind == "volume" and key == "volume-driver":
            if value != "local":
                raise InvalidArgument(f"volume driver {_shown(value)} is not available: only local")
        elif kind == "tmpfs" and key == "tmpfs-size":
            m.tmpfs_size = size(value)
        elif kind == "tmpfs" and key == "tmpfs-mode":
            m.tmpfs_mode = mode(value)
        else:
            raise InvalidArgument(f"unexpected key {_shown(key)} in mount of type {kind}: {_shown(spec)}")
    if not m.target:
        raise InvalidArgument(f"invalid mount specification {_shown(spec)}: target is required")
    if kind == "bind" and not m.source:
        raise InvalidArgument(f"invalid mount specification {_shown(spec)}: source is required for a bind mount")
    if kind == "tmpfs" and m.source:
        raise InvalidArgument(f"invalid mount specification {_shown(spec)}: a tmpfs mount takes no source")
    return m


def tmpfs(spec: str) -> gw.MountSpec:
    """``--tmpfs TARGET[:OPTIONS]``: OPTIONS are tmpfs mount options (size=64m, mode=1777, ro, exec...)."""
    target, _, opts = spec.partition(":")
    m = gw.MountSpec(type="tmpfs", target=target)
    for opt in filter(None, opts.split(",")):
        key, eq, value = opt.partition("=")
        if key in ("ro", "rw") and not eq:
            m.read_only = key == "ro"
        elif key == "size" and eq:
            m.tmpfs_size = size(value)
        elif key == "mode" and eq:
            m.tmpfs_mode = mode(value)
        else:
            m.tmpfs_options.append(opt)
    return m


_SIZE = re.compile(r"(\d+)([kmg]?)b?", re.IGNORECASE)


def size(value: str) -> int:
    """Bytes for a tmpfs size: ``65536``, ``64k``, ``64m``, ``1g``."""
    found = _SIZE.fullmatch(value.strip())
    if not found:
        raise InvalidArgument(f"invalid tmpfs size {_shown(value)}")
    return int(found.group(1)) << {"": 0, "k": 10, "m": 20, "g": 30}[found.group(2).lower()]


def mode(value: str) -> int:
    """A tmpfs root's mode, octal (``1777``, ``0700``)."""
    try:
        number = int(value, 8)
    except ValueError:
        raise InvalidArgument(f"invalid tmpfs mode {_shown(value)}: want an octal number") from None
    if not 0 <= number <= 0o7777:
        raise InvalidArgument(f"invalid tmpfs mode {_shown(value)}")
    return number
