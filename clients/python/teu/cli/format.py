"""How the CLI prints things: tables, ages, sizes, Docker-shaped inspect JSON. Pure."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterable
from typing import Any

from teu_api.gateway.v1 import gateway_pb2 as gw
from teu_api.types.v1 import types_pb2

STATES = {
    types_pb2.CONTAINER_STATE_CREATED: "created",
    types_pb2.CONTAINER_STATE_RUNNING: "running",
    types_pb2.CONTAINER_STATE_EXITED: "exited",
}


def rfc3339(ns: int) -> str:
    """Unix ns as RFC 3339 with nanoseconds, UTC; Docker's zero time for 0."""
    if not ns:
        return "0001-01-01T00:00:00Z"
    secs, frac = divmod(ns, 1_000_000_000)
    return dt.datetime.fromtimestamp(secs, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{frac:09d}Z"


def local_time(ns: int) -> str:
    """Docker's CreatedAt: "2026-12-06 05:00:00 +0000 UTC"."""
    return dt.datetime.fromtimestamp(ns / 1e9, dt.UTC).strftime("%Y-%m-%d %H:%M:%S +0000 UTC")


def ports(mappings: Iterable[types_pb2.PortMapping]) -> str:
    """Docker's PORTS column: "0.0.0.0:8080->80/tcp, 127.0.0.1:5353->53/udp"."""
    return ", ".join(f"{p.host_ip or '0.0.0.0'}:{p.host_port}->{p.container_port}/{p.protocol or 'tcp'}" for p in mappings)


def ago(ns: int, now: float | None = None) -> str:
    """ "5 seconds", "3 minutes", "2 hours", "4 days"."""
    delta = max(0.0, (now or time.time()) - ns / 1e9)
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if delta >= size:
            n = int(delta // size)
            return f"{n} {unit}{'s' if n != 1 else ''}"
    n = int(delta)
    return "Less than a second" if n < 1 else f"{n} second{'s' if n != 1 else ''}"


def status(c: gw.ContainerSummary, now: float | None = None) -> str:
    """Docker's STATUS column."""
    if c.state == types_pb2.CONTAINER_STATE_RUNNING:
        return f"Up {ago(c.started_at, now)}" + (" (Paused)" if c.paused else "") + (f" ({c.health})" if c.health else "")
    if c.state == types_pb2.CONTAINER_STATE_EXITED:
        return f"Exited ({c.exit_code}) {ago(c.finished_at, now)} ago"
    return "Created"


def size(n: int) -> str:
    """Bytes in Docker's units (kB, MB, GB; powers of 1000)."""
    value = float(n)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if value < 1000:
            return f"{value:.3g}{unit}"
        value /= 1000
    return f"{value:.3g}PB"


def table(rows: list[list[str]]) -> str:
    """Left-aligned columns separated by three spaces."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("   ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in rows)


def truncate(text: str, width: int) -> str:
    """``text`` cut to ``width`` with an ellipsis."""
    return text if len(text) <= width else text[: width - 1] + "…"


def inspect_json(d: gw.ContainerDetails) -> dict[str, Any]:
    """A container as ``docker inspect`` shapes it."""
    s, cfg, p = d.summary, d.config, d.process
    state = STATES.get(s.state, "unknown")
    return {
        "Id": s.id,
        "Created": rfc3339(s.created_at),
        "Path": p.args[0] if p.args else "",
        "Args": list(p.args[1:]),
        "State": {
            "Status": "paused" if d.paused else state,
            "Running": state == "running",
            "Paused": d.paused,
            **({"Health": health_json(d.health)} if d.health.status else {}),
            "Pid": d.pid,
            "ExitCode": s.exit_code,
            "OOMKilled": d.oom_killed,
            **({"OOMKills": d.oom_kills, "LastOOM": oom_json(d.last_oom)} if d.oom_kills else {}),
            "Error": d.error,
            "StartedAt": rfc3339(s.started_at),
            "FinishedAt": rfc3339(s.finished_at),
        },
        "Image": d.image_id,
        "Name": "/" + s.name,
        "RestartCount": d.restart_count,
        "LogPath": d.log_path,
        "Config": {
            "Hostname": cfg.hostname or s.id[:12],
            "User": p.user,
            "Env": list(p.env),
            "Cmd": list(cfg.cmd) or None,
            "Entrypoint": list(cfg.entrypoint.values) if cfg.HasField("entrypoint") else None,
            "Image": s.image,
            "WorkingDir": p.cwd,
            "Tty": p.terminal,
            "OpenStdin": p.open_stdin,
            "Labels": dict(cfg.labels),
            "StopSignal": cfg.stop_signal or None,
            "ExposedPorts": {e: {} for e in cfg.expose} or None,
        },
        "HostConfig": host_config(cfg),
        "NetworkSettings": network_settings(d.network, d.connected),
        "Mounts": [
            {
                "Type": m.type,
                **({"Name": m.name, "Driver": "local"} if m.type == "volume" else {}),
                "Source": m.source,
                "Destination": m.destination,
                "Mode": "" if m.type != "volume" else "z",
                "RW": m.rw,
                "Propagation": m.propagation,
            }
            for m in d.mount_points
        ],
        "GraphDriver": {"Name": "overlay", "Data": dict(o.split("=", 1) for m in d.mounts for o in m.options if "=" in o)},
        "Monitor": {"Pid": d.monitor_pid},
    }


def oom_json(o: types_pb2.OomKill) -> dict[str, Any]:
    """The kernel's report of the last OOM kill in a container (Teu's, in inspect's State)."""
    return {"Time": rfc3339(o.time_unix_nano), "Limit": o.limit, "Cgroup": o.cgroup, "Pid": o.pid, "Command": o.command,
            "UsageBytes": o.usage_bytes, "LimitBytes": o.limit_bytes}  # fmt: skip


def health_json(h: types_pb2.Health) -> dict[str, Any]:
    """State.Health as Docker shows it."""
    return {
        "Status": h.status,
        "FailingStreak": h.failing_streak,
        "Log": [{"Start": rfc3339(r.start), "End": rfc3339(r.end), "ExitCode": r.exit_code, "Output": r.output} for r in h.log],
    }


def host_config(cfg: gw.ContainerConfig) -> dict[str, Any]:
    """The options a container was created with, as ``docker inspect`` shows its HostConfig."""
    r = cfg.resources
    dash_v = [m for m in cfg.mounts if m.type == "bind" and m.create_host_path]  # -v spellings are Binds
    others = [m for m in cfg.mounts if m not in dash_v]
    return {
        "Binds": [f"{m.source}:{m.target}" + (":ro" if m.read_only else "") for m in dash_v] or None,
        "NetworkMode": cfg.network or "bridge",
        "PortBindings": port_bindings(cfg.ports),
        "PublishAllPorts": cfg.publish_all,
        "AutoRemove": cfg.auto_remove,
        "RestartPolicy": {"Name": cfg.restart.name or "no", "MaximumRetryCount": cfg.restart.maximum_retry_count},
        "VolumesFrom": list(cfg.volumes_from) or None,
        "Mounts": [{"Type": m.type, "Source": m.source, "Target": m.target, "ReadOnly": m.read_only} for m in others] or None,
        "CapAdd": list(cfg.cap_add) or None,
        "CapDrop": list(cfg.cap_drop) or None,
        "Dns": list(cfg.dns),
        "DnsOptions": list(cfg.dns_options),
        "DnsSearch": list(cfg.dns_search),
        "ExtraHosts": list(cfg.extra_hosts) or None,
        "GroupAdd": list(cfg.group_add) or None,
        "IpcMode": cfg.ipc or "private",
        "PidMode": cfg.pid,
        "UTSMode": cfg.uts,
        "OomScoreAdj": cfg.oom_score_adj,
        "CgroupParent": cfg.cgroup_parent,
        "Privileged": cfg.privileged,
        "ReadonlyRootfs": cfg.read_only,
        "SecurityOpt": list(cfg.security_opt) or None,
        "ShmSize": cfg.shm_size or 64 << 20,
        "Sysctls": dict(cfg.sysctls) or None,
        "LogConfig": {"Type": "k8s-file", "Config": dict(cfg.log_opts)},
        "Memory": r.memory_bytes,
        "MemoryReservation": r.memory_reservation,
        "MemorySwap": r.memory_swap,
        "NanoCpus": r.nano_cpus,
        "CpuShares": r.cpu_shares,
        "CpuPeriod": r.cpu_period,
        "CpuQuota": r.cpu_quota,
        "CpusetCpus": r.cpuset_cpus,
        "OomKillDisable": r.oom_kill_disable,
        "PidsLimit": r.pids_limit or None,
    }


def port_bindings(ports: Iterable[types_pb2.PortMapping]) -> dict[str, list[dict[str, str]]]:
    """Published ports as Docker shows them: {"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}]}."""
    out: dict[str, list[dict[str, str]]] = {}
    for p in ports:
        out.setdefault(f"{p.container_port}/{p.protocol or 'tcp'}", []).append(
            {"HostIp": p.host_ip or "0.0.0.0", "HostPort": str(p.host_port) if p.host_port else ""}
        )
    return out


def _endpoint(n: types_pb2.NetworkAttachment) -> dict[str, Any]:
    ip, _, prefix = n.address.partition("/")
    return {"IPAddress": ip, "IPPrefixLen": int(prefix or 0), "Gateway": n.gateway, "MacAddress": n.mac,
            "Aliases": list(n.aliases) or None}  # fmt: skip


def network_settings(n: types_pb2.NetworkAttachment, connected: Iterable[types_pb2.NetworkAttachment] = ()) -> dict[str, Any]:
    """A running container's networks as ``docker inspect`` shows them (empty values when it has none):
    the one it was started on first, then those it was connected to."""
    networks = {n.network: _endpoint(n)} if n.network else {}
    networks.update({c.network: _endpoint(c) for c in connected})
    top = {k: v for k, v in _endpoint(n).items() if k != "Aliases"}
    return {**top, "Ports": port_bindings(n.ports), "Networks": networks}


def image_json(i: gw.ImageSummary) -> dict[str, Any]:
    """An image as ``docker image inspect`` shapes it."""
    c = i.config
    os_, _, arch = i.platform.partition("/")
    arch, _, variant = arch.partition("/")
    return {
        "Id": i.id,
        "RepoTags": list(i.repo_tags),
        "Parent": i.parent,
        "Comment": i.comment,
        "Created": rfc3339(i.created_at),
        "Architecture": arch,
        **({"Variant": variant} if variant else {}),
        "Os": os_,
        "Size": i.size,
        "Config": {
            "Entrypoint": list(c.entrypoint) or None,
            "Cmd": list(c.cmd) or None,
            "Env": list(c.env),
            "WorkingDir": c.working_dir,
            "User": c.user,
            "Labels": dict(c.labels),
            "ExposedPorts": {p: {} for p in c.exposed_ports} or None,
            "Volumes": {v: {} for v in c.volumes} or None,
            "StopSignal": c.stop_signal or None,
            "Healthcheck": healthcheck_json(c.healthcheck),
            "Shell": list(c.shell) or None,
            "OnBuild": list(c.on_build) or None,
        },
        "RootFS": {"Type": "layers", "Layers": list(i.layers)},
    }


def healthcheck_json(h: types_pb2.HealthConfig) -> dict[str, Any] | None:
    """A HEALTHCHECK in Docker's shape (durations in nanoseconds, zeros left out); None without one."""
    if not h.test:
        return None
    out: dict[str, Any] = {"Test": list(h.test)}
    for key, value in (("Interval", h.interval_ns), ("Timeout", h.timeout_ns), ("StartPeriod", h.start_period_ns),
                       ("StartInterval", h.start_interval_ns), ("Retries", h.retries)):  # fmt: skip
        if value:
            out[key] = value
    return out
