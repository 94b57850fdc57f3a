"""What one request may carry: a documented bound for every field of a container's configuration,
checked once, at the gateway, before any back end is asked anything. Pure.

A value out of bounds is INVALID_ARGUMENT naming the field; the value itself is never echoed whole
(:func:`shown`), so a huge one cannot make the error bigger than the request. The bounds are the
kernel's where it has one (an argument string, the argument and environment area, a path, a
hostname, pid_max), and otherwise far above what any real container uses.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sized
from typing import Final

from teu_api.errors import InvalidArgument
from teu_api.gateway.v1 import gateway_pb2 as gw

#: An image reference, a container name, id or id prefix, a network name, as given.
MAX_REF: Final = 1024
#: A container name (Docker's pattern, checked by the runtime, allows 253 characters after the first).
MAX_NAME: Final = 254
#: A path (PATH_MAX).
MAX_PATH: Final = 4096
#: One argument or environment string (the kernel's MAX_ARG_STRLEN).
MAX_ARG: Final = 128 << 10
#: All arguments and environment strings of the process together, with a pointer each: half of
#: Linux's ARG_MAX under the default 8 MiB stack, so the image's own environment still fits.
MAX_ARGV_ENV: Final = 1 << 20
#: A user or group, "user[:group]" with names or ids.
MAX_USER: Final = 256
#: Labels: how many, and the bytes of all keys and values together.
MAX_LABELS: Final = 1000
#: Most masked or read-only paths a container may name.
MAX_SYSTEM_PATHS: Final = 64
MAX_LABEL_BYTES: Final = 256 << 10
#: Published ports, devices, ulimits, capabilities, security options (each list).
MAX_PORTS: Final = 1024
MAX_DEVICES: Final = 256
MAX_ULIMITS: Final = 64
MAX_CAPS: Final = 64
MAX_SECURITY_OPTS: Final = 16
#: One security option; "seccomp=<profile JSON>" carries a whole profile (Docker's is ~30 KiB).
MAX_SECURITY_OPT: Final = 1 << 20
#: --pids-limit: the kernel's PID_MAX_LIMIT on 64-bit.
MAX_PIDS: Final = 1 << 22
#: Containers one Logs request reads (each holds files open in the logs service while it follows).
MAX_LOG_CONTAINERS: Final = 64
#: Mounts of one container; options of one tmpfs or one volume.
MAX_MOUNTS: Final = 256
MAX_MOUNT_OPTIONS: Final = 32
#: Short strings: capability names, log options, the user namespace mode, the stop signal.
MAX_WORD: Final = 64


def shown(value: str, limit: int = 40) -> str:
    """``value`` as an error message may quote it: at most ``limit`` characters of it."""
    return repr(value if len(value) <= limit else value[: limit - 3] + "...")


def check_length(value: str, limit: int, field: str) -> None:
    """InvalidArgument naming ``field`` when ``value`` is longer than ``limit`` bytes."""
    size = len(value.encode())
    if size > limit:
        raise InvalidArgument(f"{field} is too long: {size} bytes, at most {limit} ({shown(value)})")


def check_all(values: Iterable[str], limit: int, field: str) -> None:
    for value in values:
        check_length(value, limit, field)


def check_count(items: Sized, limit: int, field: str) -> None:
    count = len(items)
    if count > limit:
        raise InvalidArgument(f"{field} has {count} entries, at most {limit}")


def check_argv_env(args: Iterable[str], env: Iterable[str]) -> None:
    """The process's command and environment (the image's merged in) fit the kernel's limits."""
    total = 0
    for field, values in (("cmd", args), ("env", env)):
        for value in values:
            check_length(value, MAX_ARG, field)
            total += len(value.encode()) + 1 + 8  # the string, its NUL, its pointer
    if total > MAX_ARGV_ENV:
        raise InvalidArgument(f"cmd and env together take {total} bytes, at most {MAX_ARGV_ENV}")


def check_labels(labels: Mapping[str, str]) -> None:
    """Labels: at most MAX_LABELS of them, MAX_LABEL_BYTES in all."""
    check_count(labels, MAX_LABELS, "labels")
    size = sum(len(k.encode()) + len(v.encode()) for k, v in labels.items())
    if size > MAX_LABEL_BYTES:
        raise InvalidArgument(f"labels take {size} bytes, at most {MAX_LABEL_BYTES}")


def check_config(config: gw.ContainerConfig) -> None:
    """Every field of a container's configuration within its bound (InvalidArgument naming the first
    that is not)."""
    check_length(config.image, MAX_REF, "image")
    check_length(config.name, MAX_NAME, "name")
    check_argv_env([*config.entrypoint.values, *config.cmd], config.env)
    check_length(config.working_dir, MAX_PATH, "working_dir")
    check_length(config.user, MAX_USER, "user")
    check_length(config.hostname, 253, "hostname")
    check_labels(config.labels)
    check_length(config.network, MAX_REF, "network")
    check_count(config.ports, MAX_PORTS, "ports")
    check_count(config.expose, MAX_PORTS, "expose")
    check_all(config.expose, MAX_WORD, "expose")
    for field, values in (("extra_hosts", config.extra_hosts), ("dns", config.dns), ("dns_search", config.dns_search),
                          ("dns_options", config.dns_options), ("network_aliases", config.network_aliases)):  # fmt: skip
        check_count(values, MAX_LABELS, field)
        check_all(values, MAX_NAME, field)
    check_count(config.log_opts, 8, "log_opts")
    check_all([*config.log_opts, *config.log_opts.values()], MAX_WORD, "log_opts")
    for field, caps in (("cap_add", config.cap_add), ("cap_drop", config.cap_drop)):
        check_count(caps, MAX_CAPS, field)
        check_all(caps, MAX_WORD, field)
    check_count(config.security_opt, MAX_SECURITY_OPTS, "security_opt")
    check_all(config.security_opt, MAX_SECURITY_OPT, "security_opt")
    check_count(config.devices, MAX_DEVICES, "devices")
    for d in config.devices:
        check_all((d.path_on_host, d.path_in_container), MAX_PATH, "devices")
        check_length(d.cgroup_permissions, 3, "devices")
    check_count(config.ulimits, MAX_ULIMITS, "ulimits")
    for field, paths in (("masked_paths", config.masked_paths.values), ("readonly_paths", config.readonly_paths.values)):
        check_count(paths, MAX_SYSTEM_PATHS, field)
        check_all(paths, MAX_PATH, field)
        for path in paths:
            if not path.startswith("/") or ".." in path.split("/"):
                raise InvalidArgument(f"{field}: {path[:80]!r} is not an absolute path")
    check_all((u.name for u in config.ulimits), MAX_WORD, "ulimits")
    check_length(config.userns, MAX_WORD, "userns")
    for field, value in (("ipc", config.ipc), ("pid", config.pid), ("uts", config.uts), ("platform", config.platform),
                         ("health_on_failure", config.health_on_failure)):  # fmt: skip
        check_length(value, MAX_REF, field)
    check_count(config.mounts, MAX_MOUNTS, "mounts")
    for m in config.mounts:
        check_length(m.type, MAX_WORD, "mounts.type")
        check_length(m.propagation, MAX_WORD, "mounts.propagation")
        check_all((m.source, m.target), MAX_PATH, "mounts")
        check_count(m.tmpfs_options, MAX_MOUNT_OPTIONS, "mounts.tmpfs_options")
        check_all(m.tmpfs_options, MAX_WORD, "mounts.tmpfs_options")
        check_labels(m.volume_labels)
        check_count(m.volume_options, MAX_MOUNT_OPTIONS, "mounts.volume_options")
        check_all([*m.volume_options, *m.volume_options.values()], MAX_PATH, "mounts.volume_options")
    if config.resources.pids_limit > MAX_PIDS:
        raise InvalidArgument(f"pids_limit {config.resources.pids_limit} is above the kernel's limit of {MAX_PIDS} processes")
    if config.stop_timeout < -1:
        raise InvalidArgument(f"stop_timeout must be -1 (the default) or more, got {config.stop_timeout}")
