"""Checks of a container's resource and kernel settings, with Docker's rules and wording. Pure."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final

from teu_api.errors import InvalidArgument
from teu_api.types.v1 import types_pb2
from teu_common.signals import parse_signal
from teu_gateway.limits import shown

MIN_MEMORY: Final = 6 << 20  # Docker's minimum: a smaller limit cannot even start a process
MAX_MEMORY: Final = 1 << 50  # 1 PiB: anything above is a typo
MIN_NANO_CPUS: Final = 10_000_000  # 0.01 CPU
_CPUSET: Final = re.compile(r"\d+(-\d+)?(,\d+(-\d+)?)*")
#: Sysctls of the IPC namespace (Docker's list), and prefixes of the IPC and network namespaces'.
IPC_SYSCTLS: Final = frozenset({
    "kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem", "kernel.shmall", "kernel.shmmax",
    "kernel.shmmni", "kernel.shm_rmid_forced",
})  # fmt: skip
_KEY: Final = re.compile(r"[a-z0-9_]+(\.[a-zA-Z0-9_-]+)+")


def _cpus(cpuset: str) -> set[int]:
    out: set[int] = set()
    for part in cpuset.split(","):
        low, _, high = part.partition("-")
        if int(high or low) < int(low):
            raise InvalidArgument(f"invalid value {shown(cpuset)} for cpuset cpus")
        out.update(range(int(low), int(high or low) + 1))
    return out


def check_resources(res: types_pb2.Resources, cpus: int) -> types_pb2.Resources:
    """Validates limits; InvalidArgument with Docker's wording for those out of range."""
    if res.memory_bytes < 0 or res.nano_cpus < 0:
        raise InvalidArgument("memory and cpus limits must not be negative")
    if res.memory_bytes and res.memory_bytes < MIN_MEMORY:
        raise InvalidArgument("minimum memory limit allowed is 6MB")
    for value, name in (
        (res.memory_bytes, "memory"),
        (res.memory_swap, "memory-swap"),
        (res.memory_reservation, "memory reservation"),
    ):
        if value > MAX_MEMORY:
            raise InvalidArgument(f"{name} limit {value} bytes is absurd (maximum 1PB)")
    if res.memory_swap:
        if not res.memory_bytes:
            raise InvalidArgument("you should always set the memory limit when using the memoryswap limit, see usage")
        if res.memory_swap != -1 and res.memory_swap < res.memory_bytes:
            raise InvalidArgument("minimum memoryswap limit should be larger than memory limit, see usage")
    if res.memory_reservation < 0 or (res.memory_bytes and res.memory_reservation > res.memory_bytes):
        raise InvalidArgument("minimum memory limit can not be less than memory reservation limit, see usage")
    if res.nano_cpus and not MIN_NANO_CPUS <= res.nano_cpus <= cpus * 1_000_000_000:
        raise InvalidArgument(f"range of CPUs is from 0.01 to {cpus}.00, as there are only {cpus} CPUs available")
    if res.nano_cpus and (res.cpu_period or res.cpu_quota):
        raise InvalidArgument("conflicting options: Nano CPUs cannot be set with CPU period or quota")
    if res.cpu_period and not 1000 <= res.cpu_period <= 1_000_000:
        raise InvalidArgument("CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)")
    if res.cpu_quota and res.cpu_quota != -1 and not 1000 <= res.cpu_quota <= MAX_MEMORY:
        raise InvalidArgument("CPU cfs quota can not be less than 1ms (i.e. 1000)")
    if res.cpu_shares and not 2 <= res.cpu_shares <= 262_144:
        raise InvalidArgument(f"cpu shares {res.cpu_shares} out of range: from 2 to 262144")
    if res.cpuset_cpus:
        if not _CPUSET.fullmatch(res.cpuset_cpus):
            raise InvalidArgument(f"invalid value {shown(res.cpuset_cpus)} for cpuset cpus")
        wanted = _cpus(res.cpuset_cpus)
        if max(wanted) >= cpus:
            raise InvalidArgument(f"requested CPUs are not available - requested {res.cpuset_cpus}, available: 0-{cpus - 1}")
    if res.pids_limit < -1:
        raise InvalidArgument("pids limit must be positive, or -1 for unlimited")
    out = types_pb2.Resources()
    out.CopyFrom(res)
    out.pids_limit = max(res.pids_limit, 0)
    return out


def stop_signal(value: str) -> str:
    """The signal ``stop`` sends first, as the runtime records it; InvalidArgument if it is none."""
    parse_signal(value)
    return value


def check_shm_size(size: int) -> int:
    """--shm-size in bytes: 0 (the default, 64 MiB) or positive."""
    if size < 0:
        raise InvalidArgument(f"invalid shm size {size}: it must not be negative")
    if size > MAX_MEMORY:
        raise InvalidArgument(f"shm size {size} bytes is absurd (maximum 1PB)")
    return size


def check_oom_score_adj(value: int) -> int:
    """--oom-score-adj: Docker's range."""
    if not -1000 <= value <= 1000:
        raise InvalidArgument(f"invalid value {value}, range for oom score adj is [-1000, 1000]")
    return value


def check_sysctls(sysctls: Mapping[str, str], network: str) -> dict[str, str]:
    """--sysctl: only parameters of the container's own namespaces (IPC: kernel.msg*, kernel.sem,
    kernel.shm*, fs.mqueue.*; network: net.*; UTS: kernel.domainname), never one of a namespace it
    shares with the host."""
    for key, value in sysctls.items():
        if not _KEY.fullmatch(key) or "\n" in value or len(value) > 4096:
            raise InvalidArgument(f"invalid sysctl {shown(key)}={shown(value)}")
        if key.startswith("net."):
            if network == "host":
                raise InvalidArgument(f"sysctl {key} is not allowed with --network host: it would change the host's")
        elif key not in IPC_SYSCTLS and not key.startswith("fs.mqueue.") and key != "kernel.domainname":
            raise InvalidArgument(f"sysctl {shown(key)} is not allowed: it is not in a namespace of the container")
    return dict(sysctls)


def merged(current: types_pb2.Resources, changes: types_pb2.Resources) -> types_pb2.Resources:
    """The limits after an update: each field of ``changes`` that is not 0 replaces the current one
    (pids_limit -1, no limit, becomes 0 once checked)."""
    out = types_pb2.Resources()
    out.CopyFrom(current)
    for f in changes.DESCRIPTOR.fields:
        if value := getattr(changes, f.name):
            setattr(out, f.name, value)
    return out
