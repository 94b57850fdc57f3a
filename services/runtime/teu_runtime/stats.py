"""One reading of a running container's resource use: its cgroups (v1 or v2, found from its init's
/proc/<pid>/cgroup) and its network namespace (/proc/<pid>/net/dev). Reads files only."""

from __future__ import annotations

import os
import time
from pathlib import Path

from teu_api.types.v1 import types_pb2

ROOT = Path("/sys/fs/cgroup")
_NO_LIMIT = 1 << 60  # v1 reports "no limit" as a huge page-rounded number


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def _int(path: Path) -> int:
    text = _read(path).strip()
    return int(text) if text.isdigit() else 0


def _keyed(path: Path) -> dict[str, int]:
    """A flat keyed file (cpu.stat, memory.stat): "key value" lines."""
    out = {}
    for line in _read(path).splitlines():
        key, _, value = line.partition(" ")
        if value.strip().isdigit():
            out[key] = int(value)
    return out


def cgroup_dirs(pid: int, root: Path = ROOT) -> dict[str, Path]:
    """Each controller's directory for process ``pid`` ("" is the v2 unified one)."""
    out: dict[str, Path] = {}
    for line in _read(Path(f"/proc/{pid}/cgroup")).splitlines():
        _, controllers, path = line.split(":", 2)
        if not controllers:
            out[""] = root / path.lstrip("/") if (root / "cgroup.controllers").exists() else root / "unified" / path.lstrip("/")
        for c in controllers.split(","):
            if c:
                mount = root / c if (root / c).exists() else root / controllers
                out[c] = mount / path.lstrip("/")
    return out


def _io_v2(text: str) -> tuple[int, int]:
    read = write = 0
    for line in text.splitlines():
        fields = dict(f.split("=", 1) for f in line.split()[1:] if "=" in f)
        read += int(fields.get("rbytes", 0))
        write += int(fields.get("wbytes", 0))
    return read, write


def _io_v1(text: str) -> tuple[int, int]:
    read = write = 0
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1] == "Read":
            read += int(parts[2])
        elif len(parts) == 3 and parts[1] == "Write":
            write += int(parts[2])
    return read, write


def networks(pid: int) -> list[types_pb2.InterfaceStats]:
    """Traffic of each interface of the container's network namespace but lo."""
    out = []
    for line in _read(Path(f"/proc/{pid}/net/dev")).splitlines()[2:]:
        name, _, rest = line.partition(":")
        cols = rest.split()
        if name.strip() != "lo" and len(cols) >= 10:
            out.append(types_pb2.InterfaceStats(name=name.strip(), rx_bytes=int(cols[0]), rx_packets=int(cols[1]),
                                                tx_bytes=int(cols[8]), tx_packets=int(cols[9])))  # fmt: skip
    return out


def read(cid: str, name: str, pid: int, paused: bool) -> types_pb2.ContainerStats:
    """One reading of the container whose init is ``pid``."""
    dirs = cgroup_dirs(pid)
    s = types_pb2.ContainerStats(id=cid, name=name, read_at=time.time_ns(), online_cpus=os.cpu_count() or 1, paused=paused)
    if (v2 := dirs.get("")) is not None and (v2 / "memory.current").exists():
        cpu = _keyed(v2 / "cpu.stat")
        s.cpu_ns, s.throttled_periods, s.throttled_ns = (
            cpu.get("usage_usec", 0) * 1000,
            cpu.get("nr_throttled", 0),
            cpu.get("throttled_usec", 0) * 1000,
        )
        mem = _keyed(v2 / "memory.stat")
        s.memory_usage, s.memory_cache = _int(v2 / "memory.current"), mem.get("file", 0)
        s.memory_limit = _int(v2 / "memory.max")  # "max" reads as 0: no limit
        s.memory_working_set = max(0, s.memory_usage - mem.get("inactive_file", 0))
        s.pids = _int(v2 / "pids.current")
        s.block_read, s.block_write = _io_v2(_read(v2 / "io.stat"))
    else:
        _read_v1(s, dirs)
    s.networks.extend(networks(pid))
    if not s.memory_limit:  # as Docker: the host's memory stands for "no limit"
        s.memory_limit = host_memory()
    return s


def host_memory() -> int:
    """The host's memory in bytes (MemTotal)."""
    for line in _read(Path("/proc/meminfo")).splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    return 0


def _read_v1(s: types_pb2.ContainerStats, dirs: dict[str, Path]) -> None:
    """The cgroup v1 part of a reading: each controller in its own hierarchy."""
    if (acct := dirs.get("cpuacct")) is not None:
        s.cpu_ns = _int(acct / "cpuacct.usage")
    if (quota := dirs.get("cpu")) is not None:
        throttling = _keyed(quota / "cpu.stat")
        s.throttled_periods, s.throttled_ns = throttling.get("nr_throttled", 0), throttling.get("throttled_time", 0)
    if (memcg := dirs.get("memory")) is not None:
        counts = _keyed(memcg / "memory.stat")
        s.memory_usage = _int(memcg / "memory.usage_in_bytes")
        s.memory_cache = counts.get("total_cache", counts.get("cache", 0))
        limit = _int(memcg / "memory.limit_in_bytes")
        s.memory_limit = 0 if limit >= _NO_LIMIT else limit
        s.memory_working_set = max(0, s.memory_usage - counts.get("total_inactive_file", counts.get("inactive_file", 0)))
    if (pids := dirs.get("pids")) is not None:
        s.pids = _int(pids / "pids.current")
    if (blkio := dirs.get("blkio")) is not None:
        s.block_read, s.block_write = _io_v1(_read(blkio / "blkio.throttle.io_service_bytes"))
