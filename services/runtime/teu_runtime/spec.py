"""Builds a container's OCI runtime config (config.json) from its spec. Pure: no I/O here."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from teu_api.runtime.v1 import runtime_pb2
from teu_common.idmap import IdMap
from teu_runtime import confine, usermounts
from teu_runtime.confine import HostDevice

DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
CPU_PERIOD = 100_000
SHM_SIZE = 64 << 20  # Docker's default /dev/shm
INIT_PATH = "/sbin/docker-init"  # where --init's binary is bound, Docker's path
PROBER_PATH = "/dev/.teu/busybox"  # where the healthcheck prober's static busybox is bound (prober.py)

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
    """Facts about the host that bound the spec: the engine's hard rlimits (by Docker's ulimit
    name), the capabilities it can hand on, whether cgroups are v2 (a private cgroup namespace),
    whether swap is accounted (else a swap limit is left out, as Docker does with a warning), and the
    sub-architectures the kernel does not run (no seccomp filter is built for them)."""

    limits: Mapping[str, int]
    held_caps: tuple[str, ...] = confine.KNOWN_CAPS
    cgroup_v2: bool = False
    swap_limit: bool = True
    unserved_abis: frozenset[str] = frozenset()


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


def _mounts(extra: list[dict[str, Any]], privileged: bool, user: list[dict[str, Any]], shm_size: int = 0) -> list[dict[str, Any]]:
    """The engine's mounts, then ``extra`` (the network's files, a shared /dev/shm), then the user's
    (parents before their children); a later one replaces an earlier one at the same path."""
    base: list[dict[str, Any]] = [
        {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
         "options": ["nosuid", "noexec", "nodev", "mode=1777", f"size={shm_size or SHM_SIZE}"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
        {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
         "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]},
    ]  # fmt: skip
    if privileged:  # Docker's --privileged: /sys and the cgroup tree writable
        for m in base[-2:]:
            m["options"] = [o for o in m["options"] if o != "ro"]
    taken = {m["destination"] for m in user}
    ordered = sorted(user, key=lambda m: m["destination"].rstrip("/").count("/"))
    extra = [m for m in extra if m["destination"] not in taken]
    taken |= {m["destination"] for m in extra}
    return [m for m in base if m["destination"] not in taken] + extra + ordered


def _resources(res: Any, device_rules: list[dict[str, Any]], swap_limit: bool) -> dict[str, Any]:
    """The OCI ``linux.resources``: Docker's meaning of each flag (swap twice the memory unless
    asked, an explicit CFS period or quota over the one --cpus implies)."""
    out: dict[str, Any] = {"devices": device_rules}
    memory: dict[str, Any] = {}
    if res.memory_bytes:
        memory["limit"] = res.memory_bytes
        if swap_limit:
            memory["swap"] = res.memory_swap or 2 * res.memory_bytes  # -1: unlimited
    if res.memory_reservation:
        memory["reservation"] = res.memory_reservation
    if res.oom_kill_disable:
        memory["disableOOMKiller"] = True
    if memory:
        out["memory"] = memory
    cpu: dict[str, Any] = {}
    if res.nano_cpus:
        cpu = {"quota": res.nano_cpus * CPU_PERIOD // 1_000_000_000, "period": CPU_PERIOD}
    if res.cpu_period:
        cpu["period"] = res.cpu_period
    if res.cpu_quota:
        cpu["quota"] = res.cpu_quota
    if res.cpu_shares:
        cpu["shares"] = res.cpu_shares
    if res.cpuset_cpus:
        cpu["cpus"] = res.cpuset_cpus
    if cpu:
        out["cpu"] = cpu
    if res.pids_limit:
        out["pids"] = {"limit": res.pids_limit}
    return out


@dataclass(frozen=True)
class Shared:
    """The namespaces a container does not make for itself: a path to join, or None for the host's
    (see sharing.py); where /dev/shm comes from when IPC is shared; the hostname it shows when it
    shares another container's network (the donor's)."""

    namespaces: Mapping[str, str | None] = field(default_factory=dict)
    shm_source: str = ""
    hostname: str = ""


def resources_section(res: Any, swap_limit: bool, lift_pids: bool = False) -> dict[str, Any]:
    """The OCI ``linux.resources`` an update applies (no device rules: those stay as started)."""
    out = _resources(res, [], swap_limit)
    out.pop("devices")
    if lift_pids:
        out["pids"] = {"limit": -1}
    return out


def build(
    cid: str,
    spec: runtime_pb2.ContainerSpec,
    user: User,
    host: Host,
    bind_files: dict[str, str],
    cgroups_path: str,
    shared: Shared = Shared(),
    devices: Sequence[HostDevice] = (),
    remap: IdMap | None = None,
    init: str = "",
    prober: str = "",
) -> dict[str, Any]:
    """The OCI config.json document for container ``cid``.

    ``bind_files`` maps container paths (e.g. /etc/hosts) to host files that are bind-mounted there.
    ``shared`` says which namespaces it joins or takes from the host (``--network host``...).
    ``devices`` are the host devices it gets (see :func:`confine.gather_devices`); with ``remap``
    it runs in a user namespace where its ids are that range of the host's. ``init`` (a host path)
    is bound read-only at /sbin/docker-init and runs as PID 1 before the command, as Docker's --init.
    ``prober`` (a host path: a static busybox) is bound read-only where the healthcheck prober runs from.
    """
    proc, sec = spec.process, spec.security
    hostname = shared.hostname or hostname_of(cid, spec)
    binds = [
        {"destination": dst, "type": "bind", "source": src, "options": ["rbind", "rprivate"]}
        for dst, src in sorted(bind_files.items())
    ]
    if init:
        binds.append({"destination": INIT_PATH, "type": "bind", "source": init, "options": ["rbind", "rprivate", "ro"]})
    if prober:
        binds.append({"destination": PROBER_PATH, "type": "bind", "source": prober,
                      "options": ["rbind", "rprivate", "ro", "nosuid", "nodev"]})  # fmt: skip
    if shared.shm_source:
        binds.append({"destination": "/dev/shm", "type": "bind", "source": shared.shm_source, "options": ["rbind", "rprivate"]})
    nodes, device_rules = confine.devices_section(devices, sec.privileged)
    kinds = ["pid", "network", "ipc", "uts", "mount", *(["user"] if remap else []), *(["cgroup"] if host.cgroup_v2 else [])]
    namespaces = [{"type": t, **({"path": path} if (path := shared.namespaces.get(t)) else {})}
                  for t in kinds if t not in shared.namespaces or shared.namespaces[t]]  # fmt: skip
    linux: dict[str, Any] = {
        "cgroupsPath": cgroups_path,
        "resources": _resources(spec.resources, device_rules, host.swap_limit),
        "namespaces": namespaces,
        "maskedPaths": [] if sec.privileged else list(sec.masked_paths.values) if sec.HasField("masked_paths") else MASKED_PATHS,
        "readonlyPaths": []
        if sec.privileged
        else list(sec.readonly_paths.values)
        if sec.HasField("readonly_paths")
        else READONLY_PATHS,
        "devices": nodes,
    }
    process = _process(proc, spec, user, host, environment(list(proc.env), user, hostname, proc.terminal))
    if init:
        process["args"] = [INIT_PATH, "--", *process["args"]]
    if (filters := confine.seccomp_section(sec, process["capabilities"]["bounding"], host.unserved_abis)) is not None:
        linux["seccomp"] = filters
    if spec.sysctls:
        linux["sysctl"] = dict(spec.sysctls)
    if remap:
        linux["uidMappings"] = [{"containerID": 0, "hostID": remap.uid, "size": remap.size}]
        linux["gidMappings"] = [{"containerID": 0, "hostID": remap.gid, "size": remap.size}]
    mounts = _mounts(binds, sec.privileged, usermounts.oci(spec.mounts), spec.shm_size)
    if propagation := rootfs_propagation(mounts):
        linux["rootfsPropagation"] = propagation
    return {
        "ociVersion": "1.0.2",
        "process": process,
        "root": {"path": "rootfs", "readonly": sec.read_only},
        **({"hostname": hostname} if "uts" not in shared.namespaces else {}),
        "mounts": mounts,
        "linux": linux,
    }


def rootfs_propagation(mounts: list[dict[str, Any]]) -> str:
    """The propagation the container's root needs for its mounts' (as Docker and containerd set it):
    rshared when a mount is shared (its mounts reach the host back through it), rslave when one is
    a slave, else the runtime's default (""); under a private root neither would propagate."""
    options = {o for m in mounts for o in m.get("options", ())}
    if options & {"shared", "rshared"}:
        return "rshared"
    return "rslave" if options & {"slave", "rslave"} else ""


def _process(proc: Any, spec: runtime_pb2.ContainerSpec, user: User, host: Host, env: list[str]) -> dict[str, Any]:
    """An OCI ``process``: the container's capabilities, rlimits and no-new-privileges for ``proc``."""
    caps = confine.capabilities(spec.security, host.held_caps)
    return {
        "terminal": proc.terminal,
        "user": {"uid": user.uid, "gid": user.gid, "additionalGids": list(user.additional_gids)},
        "args": list(proc.args),
        "env": env,
        "cwd": proc.cwd or spec.process.cwd or "/",
        "capabilities": dict.fromkeys(("bounding", "effective", "permitted"), caps),
        "rlimits": confine.rlimits(spec.security, host.limits),
        "noNewPrivileges": spec.security.no_new_privileges,
        **({"oomScoreAdj": spec.oom_score_adj} if spec.oom_score_adj else {}),
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
    the container's capabilities, limits and no-new-privileges, the session's user, directory and
    terminal (the container's seccomp filter applies to it too)."""
    hostname = hostname_of(cid, container)
    base_env = environment(list(container.process.env), user, hostname, proc.terminal)
    keys = {e.split("=", 1)[0] for e in proc.env}
    env = [e for e in base_env if e.split("=", 1)[0] not in keys] + list(proc.env)
    return _process(proc, container, user, host, env)
