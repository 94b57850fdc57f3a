"""Builds a container's OCI runtime config (config.json) from its spec. Pure: no I/O here."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from teu.runtime.v1 import runtime_pb2

DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
CPU_PERIOD = 100_000

# Docker's default capability set.
DEFAULT_CAPS = [
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
]  # fmt: skip

MASKED_PATHS = [
    "/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
    "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
    "/sys/firmware", "/sys/devices/virtual/powercap",
]  # fmt: skip
READONLY_PATHS = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]


@dataclass(frozen=True)
class User:
    """A user resolved against the image's /etc/passwd and /etc/group."""

    uid: int
    gid: int
    additional_gids: tuple[int, ...] = ()
    home: str = "/"


@dataclass(frozen=True)
class Host:
    """Facts about the host that bound the spec."""

    nofile_hard: int
    nproc_hard: int


def hostname_of(cid: str, spec: runtime_pb2.ContainerSpec) -> str:
    """The container's hostname: the one asked for, else the short id."""
    return spec.hostname or cid[:12]


def environment(env: list[str], user: User, hostname: str, terminal: bool) -> list[str]:
    """The process environment: the given one plus PATH, HOSTNAME, HOME and TERM defaults."""
    keys = {e.split("=", 1)[0] for e in env}
    out = list(env)
    if "PATH" not in keys:
        out.insert(0, DEFAULT_PATH)
    if "HOSTNAME" not in keys:
        out.append(f"HOSTNAME={hostname}")
    if "HOME" not in keys:
        out.append(f"HOME={user.home}")
    if terminal and "TERM" not in keys:
        out.append("TERM=xterm")
    return out


def _mounts(extra: list[dict[str, Any]]) -> list[dict[str, Any]]:
    base: list[dict[str, Any]] = [
        {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
         "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
        {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
         "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]},
    ]  # fmt: skip
    return base + extra


def _resources(res: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"devices": [{"allow": False, "access": "rwm"}]}
    if res.memory_bytes:
        out["memory"] = {"limit": res.memory_bytes}
    if res.nano_cpus:
        out["cpu"] = {"quota": res.nano_cpus * CPU_PERIOD // 1_000_000_000, "period": CPU_PERIOD}
    if res.pids_limit:
        out["pids"] = {"limit": res.pids_limit}
    return out


def build(
    cid: str,
    spec: runtime_pb2.ContainerSpec,
    user: User,
    host: Host,
    bind_files: dict[str, str],
    cgroups_path: str,
    network_namespace: bool = True,
) -> dict[str, Any]:
    """The OCI config.json document for container ``cid``.

    ``bind_files`` maps container paths (e.g. /etc/hosts) to host files that are bind-mounted there.
    Without ``network_namespace`` (``--network host``) the container shares the engine's network.
    """
    proc = spec.process
    hostname = hostname_of(cid, spec)
    nofile = min(1_048_576, host.nofile_hard)
    nproc = min(1_048_576, host.nproc_hard)
    binds = [
        {"destination": dst, "type": "bind", "source": src, "options": ["rbind", "rprivate"]}
        for dst, src in sorted(bind_files.items())
    ]
    return {
        "ociVersion": "1.0.2",
        "process": {
            "terminal": proc.terminal,
            "user": {"uid": user.uid, "gid": user.gid, "additionalGids": list(user.additional_gids)},
            "args": list(proc.args),
            "env": environment(list(proc.env), user, hostname, proc.terminal),
            "cwd": proc.cwd or "/",
            "capabilities": dict.fromkeys(("bounding", "effective", "permitted"), DEFAULT_CAPS),
            "rlimits": [
                {"type": "RLIMIT_NOFILE", "hard": nofile, "soft": nofile},
                {"type": "RLIMIT_NPROC", "hard": nproc, "soft": nproc},
            ],
            "noNewPrivileges": False,
        },
        "root": {"path": "rootfs", "readonly": False},
        "hostname": hostname,
        "mounts": _mounts(binds),
        "linux": {
            "cgroupsPath": cgroups_path,
            "resources": _resources(spec.resources),
            "namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount") if network_namespace or t != "network"],
            "maskedPaths": MASKED_PATHS,
            "readonlyPaths": READONLY_PATHS,
        },
    }


def exit_code_for_start_error(message: str) -> int:
    """Docker's exit codes for a process that could not be started: 127 not found, 126 not runnable."""
    lowered = message.lower()
    if "no such file or directory" in lowered or "not found" in lowered:
        return 127
    if "permission denied" in lowered or "is a directory" in lowered or "exec format error" in lowered:
        return 126
    return 125


def exec_process(cid: str, container: runtime_pb2.ContainerSpec, proc: Any, user: User, host: Host) -> dict[str, Any]:
    """The OCI ``process`` of an exec session: the container's environment plus the session's own,
    the container's capabilities and limits, the session's user, directory and terminal."""
    hostname = hostname_of(cid, container)
    base_env = environment(list(container.process.env), user, hostname, proc.terminal)
    keys = {e.split("=", 1)[0] for e in proc.env}
    env = [e for e in base_env if e.split("=", 1)[0] not in keys] + list(proc.env)
    nofile = min(1_048_576, host.nofile_hard)
    return {
        "terminal": proc.terminal,
        "user": {"uid": user.uid, "gid": user.gid, "additionalGids": list(user.additional_gids)},
        "args": list(proc.args),
        "env": env,
        "cwd": proc.cwd or container.process.cwd or "/",
        "capabilities": dict.fromkeys(("bounding", "effective", "permitted"), DEFAULT_CAPS),
        "rlimits": [{"type": "RLIMIT_NOFILE", "hard": nofile, "soft": nofile}],
        "noNewPrivileges": False,
    }
