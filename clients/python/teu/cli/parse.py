"""Parsing of Docker-style option values: sizes, CPUs, env, times, ports, image changes. Pure."""

from __future__ import annotations

import argparse
import ipaddress
import math
import os
import re
import time
from collections.abc import Callable

from teu.changes import changes as changes  # re-exported for the CLI
from teu.errors import InvalidArgument as InvalidArgument
from teu_api import times
from teu_api.types.v1 import types_pb2

_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
INT32_MAX = (1 << 31) - 1
INT64_MAX = (1 << 63) - 1


def _shown(value: str) -> str:
    """A value as an error message may quote it: never more than 40 characters of it."""
    return repr(value if len(value) <= 40 else value[:37] + "...")


def memory(value: str) -> int:
    """Bytes for "16m", "1g", "512k", "100" (units of 1024, as Docker)."""
    m = re.fullmatch(r"\s*(-?\d+(?:\.\d+)?)\s*([bkmgt]?)b?\s*", value.lower())
    if not m:
        raise InvalidArgument(f"invalid size: {_shown(value)}")
    size = int(float(m.group(1)) * _UNITS[m.group(2)])
    if not -1 <= size <= INT64_MAX:
        raise InvalidArgument(f"invalid size: {_shown(value)} is out of range")
    return size


def nano_cpus(value: str) -> int:
    """Billionths of a CPU for "0.5", "2"."""
    try:
        cpus = float(value)
    except ValueError:
        raise InvalidArgument(f"invalid cpus value: {_shown(value)}") from None
    if not math.isfinite(cpus) or not 0 <= cpus * 1_000_000_000 <= INT64_MAX:
        raise InvalidArgument(f"invalid cpus value: {_shown(value)} is out of range")
    return round(cpus * 1_000_000_000)


def integer(low: int, high: int) -> Callable[[str], int]:
    """An argparse type: a whole number from ``low`` to ``high`` (a usage error otherwise, not a traceback)."""

    def parse(value: str) -> int:
        try:
            number = int(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid number {_shown(value)}") from None
        if not low <= number <= high:
            raise argparse.ArgumentTypeError(f"{_shown(value)} is out of range ({low} to {high})")
        return number

    return parse


def env(items: list[str]) -> list[str]:
    """``-e`` values: "K=V" as is; a bare "K" takes the caller's value, or is dropped if unset."""
    out = []
    for item in items:
        if "=" in item:
            out.append(item)
        elif item in os.environ:
            out.append(f"{item}={os.environ[item]}")
    return out


def _file_lines(path: str) -> list[str]:
    """Docker's env-file format: one entry a line, ``#`` comments and blank lines skipped, no quoting."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read(1 << 20)
    except OSError as exc:
        raise InvalidArgument(f"cannot read {_shown(path)}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise InvalidArgument(f"{_shown(path)} is not UTF-8 text") from None
    return [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]


def env_files(paths: list[str]) -> list[str]:
    """``--env-file`` contents, as ``-e`` values (a bare KEY takes the caller's value)."""
    return env([line for path in paths for line in _file_lines(path)])


def label_files(paths: list[str]) -> dict[str, str]:
    """``--label-file`` contents as labels."""
    return labels([line for path in paths for line in _file_lines(path)])


def labels(items: list[str]) -> dict[str, str]:
    """``-l K=V`` values as a dict."""
    return {key: value for key, _, value in (item.partition("=") for item in items)}


def when(value: str, now_ns: int | None = None) -> int:
    """Unix ns for ``--since``/``--until``: "" (none), a duration ago ("10m", "1h30m"), RFC 3339
    ("2026-11-30T10:00:00Z", with or without fraction and offset), or Unix seconds."""
    if not value.strip():
        return 0
    return times.time_ns(value, now_ns if now_ns is not None else time.time_ns())


def _port_range(text: str, value: str) -> range:
    low, dash, high = text.partition("-")
    if not low.isdigit() or (dash and not high.isdigit()):
        raise InvalidArgument(f"invalid port {_shown(text)} in {_shown(value)}")
    first, last = int(low), int(high or low)
    if not 1 <= first <= last <= 65535:
        raise InvalidArgument(f"invalid port range {_shown(text)} in {_shown(value)}: ports are 1-65535")
    return range(first, last + 1)


def ports(value: str) -> list[types_pb2.PortMapping]:
    """``-p [ip:][host[-end]:]container[-end][/proto]``: one mapping per port of a range, a host
    port of 0 (the engine picks a free one) where none is given."""
    spec, _, proto = value.partition("/")
    parts = spec.rsplit(":", 2)
    ip, host, ctr = ["", "", *parts][-3:] if len(parts) < 3 else parts
    container = _port_range(ctr, value)
    hosts = _port_range(host, value) if host else None
    if hosts is not None and len(hosts) != len(container):
        raise InvalidArgument(f"invalid port mapping {_shown(value)}: the host and container port ranges differ in size")
    ip, proto = ip.strip("[]"), proto or "tcp"
    if ip:
        try:
            ipaddress.ip_address(ip)
        except ValueError:
            raise InvalidArgument(f"invalid IP address {_shown(ip)} in {_shown(value)}") from None
    return [
        types_pb2.PortMapping(host_ip=ip, host_port=hosts[i] if hosts else 0, container_port=c, protocol=proto)
        for i, c in enumerate(container)
    ]


def exposed(value: str) -> list[str]:
    """``--expose PORT[-END][/PROTO]`` as "port/proto" entries."""
    spec, _, proto = value.partition("/")
    return [f"{p}/{proto or 'tcp'}" for p in _port_range(spec, value)]


def device(value: str) -> types_pb2.Device:
    """``--device HOST[:CONTAINER][:PERMISSIONS]`` (permissions any of r, w, m)."""
    parts = value.split(":")
    if not parts[0] or len(parts) > 3:
        raise InvalidArgument(f"invalid device specification {value!r}: want HOST[:CONTAINER][:rwm]")
    host, target, perms = parts[0], "", ""
    if len(parts) == 3:
        target, perms = parts[1], parts[2]
    elif len(parts) == 2:
        if parts[1] and set(parts[1]) <= set("rwm"):
            perms = parts[1]
        else:
            target = parts[1]
    return types_pb2.Device(path_on_host=host, path_in_container=target, cgroup_permissions=perms)


def ulimit(value: str) -> types_pb2.Ulimit:
    """``--ulimit NAME=SOFT[:HARD]`` (-1 is unlimited; HARD defaults to SOFT)."""
    name, sep, limits = value.partition("=")
    soft, _, hard = limits.partition(":")
    try:
        low = int(soft)
        high = int(hard) if hard else low
    except ValueError:
        raise InvalidArgument(f"invalid ulimit {value!r}: want NAME=SOFT[:HARD], e.g. nofile=1024:2048") from None
    if not sep or not name:
        raise InvalidArgument(f"invalid ulimit {value!r}: want NAME=SOFT[:HARD], e.g. nofile=1024:2048")
    return types_pb2.Ulimit(name=name, soft=low, hard=high)


def security_opt(value: str) -> str:
    """``--security-opt``: as given, except ``seccomp=FILE``, whose profile text is read here (as
    Docker's CLI does: the engine never reads a client's files)."""
    key, sep, path = value.partition("=")
    if key != "seccomp" or not sep or path in ("unconfined", "") or path.lstrip().startswith("{"):
        return value
    try:
        with open(path, encoding="utf-8") as f:
            return "seccomp=" + f.read((1 << 20) + 1)
    except OSError as exc:
        raise InvalidArgument(f"opening seccomp profile ({path}) failed: {exc.strerror}") from None
