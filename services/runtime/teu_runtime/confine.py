"""How a container is confined: capabilities, seccomp, devices, rlimits, masked paths. Pure, except
:func:`gather_devices`, :func:`held_capabilities`, :func:`host_limits` and :func:`unserved_abis`,
which read the host.

Docker's defaults are the floor: its capability set, its default seccomp profile, no devices beyond
the runtime's standard ones, /proc and /sys paths masked or read-only. ``--privileged`` lifts all of
that; ``--cap-add/--cap-drop``, ``--security-opt``, ``--device``, ``--ulimit`` and ``--read-only``
adjust it with Docker's semantics.
"""

from __future__ import annotations

import ctypes
import functools
import os
import resource
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from teu_api.errors import FailedPrecondition, InvalidArgument
from teu_api.types.v1 import types_pb2
from teu_common.idmap import IdMap
from teu_runtime import seccomp

__all__ = [
    "ALL",
    "DEFAULT_CAPS",
    "KNOWN_CAPS",
    "HostDevice",
    "capabilities",
    "check",
    "devices_section",
    "gather_devices",
    "held_capabilities",
    "host_limits",
    "remapping",
    "rlimits",
    "seccomp_section",
    "unserved_abis",
]

ALL = "ALL"
# Docker's default capability set.
DEFAULT_CAPS = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
)  # fmt: skip
# Every capability Linux knows, by number (capability.h).
KNOWN_CAPS = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT",
    "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
    "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG",
    "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
)  # fmt: skip
# Docker's --ulimit names and Linux's resource numbers (Python's resource module lacks some).
ULIMITS = {
    "cpu": 0, "fsize": 1, "data": 2, "stack": 3, "core": 4, "rss": 5, "nproc": 6, "nofile": 7, "memlock": 8,
    "as": 9, "locks": 10, "sigpending": 11, "msgqueue": 12, "nice": 13, "rtprio": 14, "rttime": 15,
}  # fmt: skip
_UNLIMITED = 2**64 - 1  # RLIM_INFINITY as the OCI spec writes it
_DEVICE_ACCESS = frozenset("rwm")
# Directories of /dev whose nodes a privileged container does not take (Docker's list).
_SKIP_DEV = ("/dev/pts", "/dev/shm", "/dev/mqueue", "/dev/.lxc", "/dev/.udev")


@dataclass(frozen=True)
class HostDevice:
    """A device node to create in the container, with its cgroup permissions."""

    path: str
    kind: str  # "c" or "b"
    major: int
    minor: int
    file_mode: int
    uid: int
    gid: int
    access: str


def held_capabilities(status: str | None = None) -> tuple[str, ...]:
    """The capabilities this process may hand on (its bounding set: a runtime cannot grant more)."""
    text = status if status is not None else Path("/proc/self/status").read_text()
    line = next((ln for ln in text.splitlines() if ln.startswith("CapBnd:")), "CapBnd:\t0")
    mask = int(line.split()[1], 16)
    return tuple(name for bit, name in enumerate(KNOWN_CAPS) if mask >> bit & 1)


def host_limits() -> dict[str, int]:
    """The hard limit of each rlimit of this process (a container may not get more without
    CAP_SYS_RESOURCE, which an engine may lack); unlimited as the OCI spec's 2**64-1."""
    out = {}
    for name, res in ULIMITS.items():
        hard = resource.getrlimit(res)[1]
        out[name] = _UNLIMITED if hard == resource.RLIM_INFINITY else hard
    return out


def _cap_name(name: str) -> str:
    upper = name.strip().upper()
    if upper == ALL:
        return ALL
    full = upper if upper.startswith("CAP_") else "CAP_" + upper
    if full not in KNOWN_CAPS:
        raise InvalidArgument(f"unknown capability: {name!r}")
    return full


def capabilities(sec: types_pb2.Security, held: Sequence[str]) -> list[str]:
    """The container's capabilities, Docker's rules: privileged gets every one; ``--cap-add ALL``
    gets every one but those dropped; ``--cap-drop ALL`` gets only those added; otherwise the
    default set less those dropped plus those added. Never more than ``held``."""
    if sec.privileged:
        return list(held)
    adds = [_cap_name(c) for c in sec.cap_add]
    drops = {_cap_name(c) for c in sec.cap_drop}
    if ALL in adds:
        caps = [c for c in held if c not in drops]
    elif ALL in drops:
        caps = list(dict.fromkeys(adds))
    else:
        caps = list(dict.fromkeys([c for c in DEFAULT_CAPS if c not in drops] + adds))
    missing = [c for c in caps if c not in held]
    if missing:
        raise FailedPrecondition(f"the engine does not hold {missing[0]}, so it cannot give it to a container")
    return caps


def seccomp_section(
    sec: types_pb2.Security, caps: Sequence[str], unserved: frozenset[str] = frozenset()
) -> dict[str, Any] | None:
    """The OCI ``linux.seccomp`` object: Docker's default profile unless the container is privileged
    or asked for ``unconfined`` or a profile of its own. None means no filter. ``unserved``: the
    sub-architectures the kernel does not run (:func:`unserved_abis`), which no filter is built for."""
    if sec.privileged or sec.seccomp == "unconfined":
        return None
    if not sec.seccomp:
        return _default_filter(tuple(sorted(caps)), unserved)
    return seccomp.to_oci(seccomp.load_profile(sec.seccomp), caps, unserved=unserved)


@functools.lru_cache(maxsize=64)
def _default_filter(caps: tuple[str, ...], unserved: frozenset[str]) -> dict[str, Any]:
    """The default profile for ``caps``, converted once per capability set (1.6 ms each time saved
    on every start; the result is only ever serialised, never changed)."""
    return seccomp.to_oci(seccomp.default_profile(), caps, unserved=unserved)


X32_SYSCALL_BIT = 0x40000000
_GETPID = 39  # x86_64's number, which x32 shares


def unserved_abis(machine: str = seccomp.NATIVE_ARCH) -> frozenset[str]:
    """The sub-architectures of Docker's profile the running kernel refuses: x32 on an x86_64 kernel
    built or booted without it (most distributions' default). Asked of the kernel itself: a child
    process makes x32's getpid, which such a kernel answers ENOSYS; the child, not this process,
    since a filter this service may run under could kill a caller of a foreign ABI."""
    if machine != "x86_64":
        return frozenset()
    libc = ctypes.CDLL(None, use_errno=True)  # loaded here: the child takes no lock another thread may hold
    libc.syscall.restype = ctypes.c_long
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child only makes the call and leaves
        served = libc.syscall(ctypes.c_long(X32_SYSCALL_BIT | _GETPID)) == os.getpid()
        os._exit(0 if served else 1)
    _, status = os.waitpid(pid, 0)
    return frozenset() if os.waitstatus_to_exitcode(status) == 0 else frozenset({"SCMP_ARCH_X32"})


def rlimits(sec: types_pb2.Security, limits: Mapping[str, int]) -> list[dict[str, Any]]:
    """The process's rlimits: nofile and nproc as high as the host allows (up to 2**20), fsize as high
    as the host allows (the container must not inherit the bound its conmon has on the log file),
    then the ``--ulimit`` ones, each checked against the host's hard limit."""
    out = {
        "nofile": (min(1 << 20, limits["nofile"]),) * 2,
        "nproc": (min(1 << 20, limits["nproc"]),) * 2,
        "fsize": (limits["fsize"],) * 2,
    }
    for u in sec.ulimits:
        name = u.name.strip().lower()
        if name not in ULIMITS:
            raise InvalidArgument(f"invalid ulimit type: {u.name!r}")
        soft = _UNLIMITED if u.soft == -1 else u.soft
        hard = _UNLIMITED if u.hard == -1 else u.hard
        if soft < 0 or hard < 0:
            raise InvalidArgument(f"invalid ulimit {name}: limits must be positive or -1 (unlimited)")
        if soft > hard:
            raise InvalidArgument(f"ulimit soft limit must be less than or equal to hard limit: {soft} > {hard}")
        if hard > limits[name]:
            raise InvalidArgument(f"ulimit {name}: hard limit {hard} exceeds the engine's own hard limit {limits[name]}")
        out[name] = (soft, hard)
    return [{"type": f"RLIMIT_{n.upper()}", "soft": s, "hard": h} for n, (s, h) in out.items()]


def check(sec: types_pb2.Security, held: Sequence[str], limits: Mapping[str, int]) -> None:
    """Refuses, at create time, what could only fail at start: unknown or unavailable capabilities,
    bad profiles, bad ulimits, bad device permissions, a user namespace mode not offered."""
    seccomp_section(sec, capabilities(sec, held))
    rlimits(sec, limits)
    for d in sec.devices:
        _device_access(d)
        if d.path_in_container and not d.path_in_container.startswith("/"):
            raise InvalidArgument(f"invalid device path in container {d.path_in_container!r}: it must be absolute")
    if sec.userns not in ("", "host"):
        raise InvalidArgument(f'invalid userns mode {sec.userns!r}: want "host"')


def remapping(sec: types_pb2.Security, engine: IdMap | None, host_network: bool) -> IdMap | None:
    """The container's user namespace mapping: the engine's, unless it asked for ``--userns=host``.
    Docker's rules: a privileged container, or one on the host's network, must opt out."""
    if engine is None or sec.userns == "host":
        return None
    if sec.privileged:
        raise FailedPrecondition("privileged mode is incompatible with user namespace remapping: add --userns=host")
    if host_network:
        raise FailedPrecondition("the host's network cannot be shared with user namespace remapping: add --userns=host")
    return engine


def _device_access(d: types_pb2.Device) -> str:
    access = d.cgroup_permissions or "rwm"
    if not set(access) <= _DEVICE_ACCESS:
        raise InvalidArgument(f"invalid device permissions {access!r}: want any of r, w, m")
    return access


def gather_devices(sec: types_pb2.Security, dev: str = "/dev") -> list[HostDevice]:
    """The device nodes to create: every host device for a privileged container, else those of
    ``--device`` (a directory gives each device below it). InvalidArgument for a path that is no
    device, as Docker says it."""
    if sec.privileged:
        return _walk_devices(dev, dev, "rwm")
    out: list[HostDevice] = []
    for d in sec.devices:
        access = _device_access(d)
        target = d.path_in_container or d.path_on_host
        try:
            st = os.stat(d.path_on_host)
        except OSError as exc:
            raise InvalidArgument(
                f"error gathering device information while adding custom device {d.path_on_host!r}: {exc.strerror}"
            ) from exc
        if stat.S_ISDIR(st.st_mode):
            out += _walk_devices(d.path_on_host, target, access)
        elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
            out.append(_device(target, st, access))
        else:
            raise InvalidArgument(f"{d.path_on_host!r} is not a device node")
    return out


def _device(path: str, st: os.stat_result, access: str) -> HostDevice:
    kind = "c" if stat.S_ISCHR(st.st_mode) else "b"
    return HostDevice(path, kind, os.major(st.st_rdev), os.minor(st.st_rdev), stat.S_IMODE(st.st_mode), st.st_uid,
                      st.st_gid, access)  # fmt: skip


def _walk_devices(top: str, target: str, access: str) -> list[HostDevice]:
    out = []
    for dirpath, dirnames, filenames in os.walk(top):
        dirnames[:] = [d for d in dirnames if os.path.join(dirpath, d) not in _SKIP_DEV]
        for name in sorted(filenames):
            path = os.path.join(dirpath, name)
            try:
                st = os.lstat(path)
            except OSError:
                continue
            if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                out.append(_device(target + path[len(top) :], st, access))
    return out


def devices_section(devices: Sequence[HostDevice], privileged: bool) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(``linux.devices``, ``linux.resources.devices``): the nodes, and the cgroup rules that deny
    every device but the runtime's standard ones and these (all of them when privileged)."""
    nodes = [
        {"path": d.path, "type": d.kind, "major": d.major, "minor": d.minor, "fileMode": d.file_mode,
         "uid": d.uid, "gid": d.gid}
        for d in devices
    ]  # fmt: skip
    if privileged:
        return nodes, [{"allow": True, "access": "rwm"}]
    rules: list[dict[str, Any]] = [{"allow": False, "access": "rwm"}]
    rules += [{"allow": True, "type": d.kind, "major": d.major, "minor": d.minor, "access": d.access} for d in devices]
    return nodes, rules
