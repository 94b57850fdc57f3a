"""Turns the user's container options plus the image's config into a runtime spec. Pure."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping

from teu_api.errors import FailedPrecondition, InvalidArgument
from teu_api.gateway.v1 import gateway_pb2 as gw
from teu_api.runtime.v1 import runtime_pb2 as rt
from teu_api.storage.v1 import storage_pb2 as st
from teu_api.types.v1 import types_pb2
from teu_gateway import health, limits, netopts, resources
from teu_gateway.security import security_of

CONFIG_KEY = "teu.gateway.config"
_HOSTNAME = re.compile(r"[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?(\.[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*")
_ENV_KEY = re.compile(r"[^=\0]+")


def merge_env(image_env: list[str], overrides: list[str]) -> list[str]:
    """Image environment with the user's "K=V" set and bare "K" removed, keeping first-seen order."""
    env: dict[str, str] = {}
    for item in image_env:
        key, _, value = item.partition("=")
        env[key] = value
    for item in overrides:
        key, sep, value = item.partition("=")
        if not _ENV_KEY.fullmatch(key) or "\0" in value:
            raise InvalidArgument(f"invalid environment variable: {item!r}")
        if sep:
            env[key] = value
        else:
            env.pop(key, None)
    return [f"{k}={v}" for k, v in env.items()]


def command(config: gw.ContainerConfig, image: types_pb2.ImageConfig) -> list[str]:
    """argv: entrypoint (the user's, else the image's) + command (the user's, else the image's).

    As in Docker, overriding the entrypoint also drops the image's default command.
    """
    if config.HasField("entrypoint"):
        entrypoint = list(config.entrypoint.values)
        cmd = list(config.cmd)
    else:
        entrypoint = list(image.entrypoint)
        cmd = list(config.cmd) or list(image.cmd)
    args = entrypoint + cmd
    if not args:
        raise InvalidArgument("no command specified")
    return args


LOG_OPTS = ("max-size", "max-file", "max-files")


def log_backstop(max_size: int) -> int:
    """The most bytes one file of a log rotated at ``max_size`` may reach (conmon's RLIMIT_FSIZE): what
    bounds the disk while the logs service cannot rotate. Far enough above the rotation size (4x, at
    least 64 MiB) that a writer as fast as conmon can log never reaches it while the logs service
    rotates: output past it is dropped. Under ``yes`` on two busy cores a file rotated at 1 MiB was
    seen to reach 21 MB before conmon took the reopen (docs/architecture.md, Logs)."""
    return max(4 * max_size, 64 << 20)


def log_options(opts: Mapping[str, str]) -> tuple[int, int]:
    """(max segment bytes, max segments) from ``--log-opt``; 0 means the engine's default."""
    unknown = set(opts) - set(LOG_OPTS)
    if unknown:
        raise InvalidArgument(f"unknown log option {sorted(unknown)[0]!r}: use max-size or max-file")
    if "max-file" in opts and "max-files" in opts:
        raise InvalidArgument("give max-file or its alias max-files, not both")
    count = opts.get("max-file", opts.get("max-files"))
    size, files = 0, 0
    if "max-size" in opts:
        m = re.fullmatch(r"(\d+)([kmg]?)b?", opts["max-size"].strip().lower())
        if not m or int(m.group(1)) == 0:
            raise InvalidArgument(f"invalid max-size {opts['max-size']!r}: want e.g. 10m")
        size = int(m.group(1)) * {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}[m.group(2)]
        if not 4096 <= size <= 1 << 40:
            raise InvalidArgument("max-size must be from 4k to 1t")
    if count is not None:
        if not count.isdigit() or not 1 <= int(count) <= 1000:
            raise InvalidArgument(f"invalid max-file {count[:40]!r}: want 1 to 1000")
        files = int(count)
    return size, files


def publish_all(config: gw.ContainerConfig, image: types_pb2.ImageConfig) -> list[types_pb2.PortMapping]:
    """-P: each exposed port (the image's, then --expose) not published already, on a free host port."""
    taken = {(p.container_port, p.protocol or "tcp") for p in config.ports}
    out = []
    for entry in dict.fromkeys([*image.exposed_ports, *config.expose]):
        number, _, proto = entry.partition("/")
        if not number.isdigit() or not 1 <= int(number) <= 65535 or proto not in ("", "tcp", "udp"):
            raise InvalidArgument(f"invalid exposed port {limits.shown(entry)}: want PORT[/tcp|udp]")
        key = (int(number), proto or "tcp")
        if key not in taken:
            taken.add(key)
            out.append(types_pb2.PortMapping(host_port=0, container_port=key[0], protocol=key[1]))
    return out


_PLATFORM = re.compile(r"[a-z0-9]+/[a-z0-9_]+(/[a-z0-9]+)?|[a-z0-9_]+")


def check_platform(config: gw.ContainerConfig, image: st.Image) -> None:
    """--platform: the image must be of it (os/arch[/variant], the os linux if left out; no variant
    asked matches any)."""
    if not config.platform:
        return
    wanted = config.platform.lower()
    if not _PLATFORM.fullmatch(wanted):
        raise InvalidArgument(f"invalid platform {limits.shown(config.platform)}: want os/arch[/variant], e.g. linux/amd64")
    if "/" not in wanted:
        wanted = f"linux/{wanted}"
    actual = image.platform.lower()
    if actual != wanted and not actual.startswith(wanted + "/"):
        raise FailedPrecondition(f"image with reference {limits.shown(config.image)} was found but does not match the "
                                 f"specified platform: wanted {wanted}, actual: {actual or 'unknown'}")  # fmt: skip


def check_joined_network(config: gw.ContainerConfig) -> None:
    """--network container:NAME takes that container's network, names and files: Docker refuses what
    would change them."""
    if not config.network.startswith("container:"):
        return
    for given, flag in ((config.hostname, "--hostname"), (config.ports or config.publish_all, "published ports"),
                        (config.dns or config.dns_search or config.dns_options, "--dns options"),
                        (config.extra_hosts, "--add-host")):  # fmt: skip
        if given:
            raise InvalidArgument(f"conflicting options: {flag} and the network mode container:")


def container_spec(
    config: gw.ContainerConfig, image: st.Image, cpus: int | None = None, apparmor: bool = False
) -> rt.ContainerSpec:
    """The runtime spec for ``config`` on ``image`` (without the log path, which comes later);
    ``apparmor`` says whether the host has AppArmor (for ``--security-opt apparmor=...``). ``config``
    is within :func:`limits.check_config` already (the caller checks it before asking for the image)."""
    ic = image.config
    check_platform(config, image)
    cwd = config.working_dir or ic.working_dir or "/"
    if not cwd.startswith("/"):
        raise InvalidArgument(f"the working directory {cwd!r} is invalid: it needs to be an absolute path")
    if config.hostname and not _HOSTNAME.fullmatch(config.hostname):
        raise InvalidArgument(f"invalid hostname {config.hostname!r}")
    log_options(config.log_opts)
    process = types_pb2.Process(
        args=command(config, ic),
        env=merge_env(list(ic.env), list(config.env)),
        cwd=cwd,
        user=config.user or ic.user,
        terminal=config.tty,
        open_stdin=config.open_stdin,
    )
    limits.check_argv_env(process.args, process.env)  # with the image's environment
    spec = rt.ContainerSpec(
        image_ref=config.image,
        image_id=image.id,
        process=process,
        hostname=config.hostname,
        resources=resources.check_resources(config.resources, cpus or os.cpu_count() or 1),
        auto_remove=config.auto_remove,
        stop_signal=resources.stop_signal(config.stop_signal or ic.stop_signal or "SIGTERM"),
        stop_timeout=config.stop_timeout if config.stop_timeout > 0 else 10,
        labels={**ic.labels, **config.labels},
    )
    spec.security.CopyFrom(security_of(config, apparmor))
    spec.network = config.network
    spec.ports.extend(config.ports)  # validated by the runtime, which knows the networks
    if config.publish_all:
        spec.ports.extend(publish_all(config, ic))
    spec.shm_size = resources.check_shm_size(config.shm_size)
    spec.sysctls.update(resources.check_sysctls(config.sysctls, config.network))
    spec.oom_score_adj = resources.check_oom_score_adj(config.oom_score_adj)
    spec.cgroup_parent = config.cgroup_parent  # checked by the runtime, which makes the cgroups
    spec.group_add.extend(config.group_add)
    spec.extra_hosts.extend(netopts.extra_hosts(config.extra_hosts))
    check_joined_network(config)
    spec.restart_policy.CopyFrom(config.restart)  # checked by the runtime, which restarts
    spec.healthcheck.CopyFrom(health.merged(config.healthcheck, ic.healthcheck))
    if config.health_on_failure not in ("", "none", "restart"):
        raise InvalidArgument(f"invalid --health-on-failure {limits.shown(config.health_on_failure)}: want none or restart")
    spec.health_on_failure = config.health_on_failure
    if config.HasField("init"):
        spec.init = config.init
    spec.network_aliases.extend(netopts.aliases(config.network_aliases, config.network))
    spec.ipc, spec.pid, spec.uts = config.ipc, config.pid, config.uts
    if config.network == "host" and (config.dns or config.dns_search or config.dns_options):
        raise InvalidArgument("conflicting options: --dns, --dns-search and --dns-option cannot be used with --network host")
    spec.dns.extend(netopts.nameservers(config.dns))
    spec.dns_search.extend(netopts.search_domains(config.dns_search))
    spec.dns_options.extend(netopts.resolver_options(config.dns_options))
    spec.extensions[CONFIG_KEY] = config.SerializeToString()
    return spec


COMMIT_FIELDS = ("entrypoint", "cmd", "env", "working_dir", "user", "stop_signal", "labels", "volumes", "exposed_ports",
                 "healthcheck")  # fmt: skip


def commit_config(
    spec: rt.ContainerSpec, image: types_pb2.ImageConfig, changes: types_pb2.ImageConfig, changed: Iterable[str]
) -> types_pb2.ImageConfig:
    """The committed image's config: the container's (as it runs), then ``--change`` fields on top."""
    config = gw.ContainerConfig()
    config.ParseFromString(spec.extensions.get(CONFIG_KEY, b""))
    out = types_pb2.ImageConfig(
        entrypoint=list(config.entrypoint.values) if config.HasField("entrypoint") else list(image.entrypoint),
        cmd=list(config.cmd) or ([] if config.HasField("entrypoint") else list(image.cmd)),
        env=list(spec.process.env),
        working_dir=spec.process.cwd if spec.process.cwd != "/" else image.working_dir,
        user=spec.process.user,
        stop_signal=spec.stop_signal if spec.stop_signal != "SIGTERM" else image.stop_signal,
        labels=dict(spec.labels),
        volumes=list(image.volumes),
        exposed_ports=list(image.exposed_ports),
        healthcheck=image.healthcheck,
    )
    for name in changed:
        if name not in COMMIT_FIELDS:
            raise InvalidArgument(f"unknown config field {name!r} in changes")
        if name == "env":
            out.env[:] = merge_env(list(out.env), list(changes.env))
        elif name == "labels":
            out.labels.update(changes.labels)
        elif name == "healthcheck":
            out.healthcheck.CopyFrom(changes.healthcheck)
        elif name in ("volumes", "exposed_ports"):
            have = getattr(out, name)
            have.extend(v for v in getattr(changes, name) if v not in have)
        elif name in ("entrypoint", "cmd"):
            getattr(out, name)[:] = list(getattr(changes, name))
        else:
            setattr(out, name, getattr(changes, name))
    return out
