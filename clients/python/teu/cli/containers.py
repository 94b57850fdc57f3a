"""Container commands: run, create, start/stop/kill/restart/wait/rm, ps, inspect, logs, diff, commit, export, cp."""

from __future__ import annotations

import argparse
import io
import os
import posixpath
import sys
import tarfile
from collections.abc import Callable
from contextlib import nullcontext
from typing import Any, BinaryIO

from teu import mounts
from teu.cli import format as fmt
from teu.cli import images, interactive, parse, system, template, volumes
from teu.cli.common import ENGINE_ERROR, add_format, each, inspect_all, verb
from teu.client import Client, ContainerOptions
from teu.errors import InvalidArgument, NotFound
from teu_api.gateway.v1 import gateway_pb2 as gw
from teu_api.times import duration_ns
from teu_api.types.v1 import types_pb2


def container_flags(p: argparse.ArgumentParser) -> None:
    """Docker's create/run options."""
    p.add_argument("--name", default="", help="assign a name to the container")
    p.add_argument("-e", "--env", action="append", default=[], help="set environment variables")
    p.add_argument("-w", "--workdir", default="", help="working directory inside the container")
    p.add_argument("-u", "--user", default="", help="user[:group] to run as")
    p.add_argument("--hostname", default="", help="container hostname")
    p.add_argument("-m", "--memory", default="0", help="memory limit (e.g. 64m)")
    p.add_argument("--cpus", default="0", help="number of CPUs (e.g. 0.5)")
    p.add_argument(
        "--pids-limit", type=parse.integer(-1, parse.INT64_MAX), default=0, help="maximum number of processes (-1: unlimited)"
    )
    p.add_argument("--entrypoint", default=None, help="overwrite the image's entrypoint")
    p.add_argument("--rm", action="store_true", help="remove the container when it exits")
    p.add_argument("-i", "--interactive", action="store_true", help="keep stdin open")
    p.add_argument("-t", "--tty", action="store_true", help="allocate a pseudo-TTY")
    p.add_argument("-l", "--label", action="append", default=[], help="set metadata")
    p.add_argument(
        "--stop-timeout", type=parse.integer(-1, parse.INT32_MAX), default=0, help="seconds to wait before killing on stop"
    )
    p.add_argument("--network", "--net", default="", help="network: bridge, none, host, container:NAME or a user network")
    p.add_argument("-p", "--publish", action="append", default=[],
                   help="publish a port: [ip:][host[-end]:]container[-end][/proto] (no host port: a free one)")  # fmt: skip
    p.add_argument("-P", "--publish-all", action="store_true", help="publish every exposed port on a free host port")
    p.add_argument("--expose", action="append", default=[], help="expose a port or range: PORT[-END][/proto]")
    p.add_argument("--log-opt", action="append", default=[], help="log option: max-size=10m, max-file=3")
    p.add_argument("--cap-add", action="append", default=[], help="add a Linux capability (or ALL)")
    p.add_argument("--cap-drop", action="append", default=[], help="drop a Linux capability (or ALL)")
    p.add_argument("--privileged", action="store_true", help="all capabilities and devices, no seccomp, no masked paths")
    p.add_argument("--read-only", action="store_true", help="mount the root filesystem read-only")
    p.add_argument("--security-opt", action="append", default=[],
                   help="no-new-privileges, seccomp=unconfined|PROFILE.json, apparmor=..., label=...")  # fmt: skip
    p.add_argument("--device", action="append", default=[], help="add a host device: HOST[:CONTAINER][:rwm]")
    p.add_argument("--ulimit", action="append", default=[], help="resource limit: NAME=SOFT[:HARD]")
    p.add_argument("--userns", default="", help='user namespace: "host" opts out of the engine\'s remapping')
    p.add_argument("-v", "--volume", action="append", default=[],
                   help="bind a host path or mount a volume: [SOURCE:]TARGET[:ro|rw|nocopy|PROPAGATION]")  # fmt: skip
    p.add_argument("--mount", action="append", default=[],
                   help="attach a mount: type=bind|volume|tmpfs,source=,target=,readonly,...")  # fmt: skip
    p.add_argument("--tmpfs", action="append", default=[], help="mount a tmpfs: TARGET[:size=64m,mode=1777,...]")
    p.add_argument("--volumes-from", action="append", default=[], help="mount the binds and volumes of a container: C[:ro|rw]")
    p.add_argument("--env-file", action="append", default=[], help="read environment variables from a file")
    p.add_argument("--label-file", action="append", default=[], help="read labels from a file")
    p.add_argument("--stop-signal", default="", help="signal to stop the container (default: the image's, else SIGTERM)")
    p.add_argument("--shm-size", default="0", help="size of /dev/shm (e.g. 128m; default 64m)")
    p.add_argument("--group-add", action="append", default=[], help="add a group to the process")
    p.add_argument(
        "--oom-score-adj", type=parse.integer(-1000, 1000), default=0, help="tune the OOM killer's preference (-1000 to 1000)"
    )
    p.add_argument("--oom-kill-disable", action="store_true", help="disable the OOM killer (with a memory limit)")
    p.add_argument(
        "--cgroup-parent", default="", help="the cgroup the container's goes under (absolute, or relative to the engine's)"
    )
    p.add_argument("--sysctl", action="append", default=[], help="namespaced kernel parameter: KEY=VALUE")
    p.add_argument("--memory-swap", default="0", help="memory plus swap (-1: unlimited swap)")
    p.add_argument("--memory-reservation", default="0", help="soft memory limit")
    p.add_argument("-c", "--cpu-shares", type=parse.integer(0, 262_144), default=0, help="relative CPU weight")
    p.add_argument("--cpuset-cpus", default="", help="CPUs to run on (0-3, 0,1)")
    p.add_argument("--cpu-period", type=parse.integer(0, 1_000_000), default=0, help="CFS period in microseconds")
    p.add_argument("--cpu-quota", type=parse.integer(-1, parse.INT64_MAX), default=0, help="CFS quota in microseconds")
    p.add_argument("--cidfile", default="", help="write the container's id to this file")
    p.add_argument("--add-host", action="append", default=[], help="add a line to /etc/hosts: NAME:IP (IP may be host-gateway)")
    p.add_argument("--dns", action="append", default=[], help="nameserver for the container")
    p.add_argument("--dns-search", action="append", default=[], help="DNS search domain")
    p.add_argument("--dns-option", action="append", default=[], help="resolv.conf option (ndots:2...)")
    p.add_argument("--ipc", default="", help="IPC namespace: private, shareable, container:NAME, host")
    p.add_argument("--pid", default="", help="PID namespace: container:NAME, host")
    p.add_argument("--uts", default="", help="UTS namespace: host")
    p.add_argument("--network-alias", action="append", default=[], help="another DNS name on a user network")
    p.add_argument("--restart", default="", help="restart policy: no, always, unless-stopped, on-failure[:N]")
    p.add_argument("--init", action="store_true", default=None, help="an init as PID 1: reaps zombies, forwards signals")
    p.add_argument("--health-cmd", default="", help="command to check health (run by /bin/sh -c)")
    for name in ("interval", "timeout", "start-period", "start-interval"):
        p.add_argument(f"--health-{name}", default="", help=f"health check {name.replace('-', ' ')} (e.g. 30s)")
    p.add_argument("--health-retries", type=parse.integer(0, parse.INT32_MAX), default=0, help="failures in a row for unhealthy")
    p.add_argument("--no-healthcheck", action="store_true", help="disable the image's HEALTHCHECK")
    p.add_argument("--health-on-failure", default="", help="none, or restart: kill an unhealthy container (--restart decides)")
    p.add_argument("--pull", default="missing", help="pull the image first: missing (default), always, never")
    p.add_argument("--platform", default="", help="the image must be of this platform: os/arch[/variant]")
    p.add_argument(
        "-a", "--attach", action="append", default=[], help="attach to stdin, stdout or stderr (default: both outputs)"
    )
    p.add_argument("image", help="image to run")
    p.add_argument("command", nargs=argparse.REMAINDER, help="command and arguments")


def options(a: argparse.Namespace) -> ContainerOptions:
    """The SDK options for the parsed flags."""
    return ContainerOptions(
        image=a.image,
        cmd=list(a.command),
        name=a.name,
        entrypoint=None if a.entrypoint is None else ([a.entrypoint] if a.entrypoint else []),
        env=parse.env_files(a.env_file) + parse.env(a.env),
        workdir=a.workdir,
        user=a.user,
        hostname=a.hostname,
        memory=parse.memory(a.memory),
        nano_cpus=parse.nano_cpus(a.cpus),
        pids_limit=a.pids_limit,
        remove=a.rm,
        tty=a.tty,
        interactive=a.interactive,
        labels={**parse.label_files(a.label_file), **parse.labels(a.label)},
        stop_timeout=a.stop_timeout,
        network=a.network,
        ports=[m for p in a.publish for m in parse.ports(p)],
        publish_all=a.publish_all,
        expose=[e for x in a.expose for e in parse.exposed(x)],
        extra_hosts=a.add_host,
        dns=a.dns,
        dns_search=a.dns_search,
        dns_options=a.dns_option,
        ipc=a.ipc,
        pid=a.pid,
        uts=a.uts,
        platform=a.platform,
        network_aliases=a.network_alias,
        restart=a.restart,
        init=a.init,
        healthcheck=health_config(a),
        health_on_failure=a.health_on_failure,
        log_opts=parse.labels(a.log_opt),
        cap_add=a.cap_add,
        cap_drop=a.cap_drop,
        privileged=a.privileged,
        read_only=a.read_only,
        security_opt=[parse.security_opt(o) for o in a.security_opt],
        devices=[parse.device(d) for d in a.device],
        ulimits=[parse.ulimit(u) for u in a.ulimit],
        userns=a.userns,
        mounts=[*map(mounts.volume, a.volume), *map(mounts.mount, a.mount), *map(mounts.tmpfs, a.tmpfs)],
        volumes_from=a.volumes_from,
        stop_signal=a.stop_signal,
        shm_size=parse.memory(a.shm_size),
        group_add=a.group_add,
        oom_score_adj=a.oom_score_adj,
        oom_kill_disable=a.oom_kill_disable,
        cgroup_parent=a.cgroup_parent,
        sysctls=parse.labels(a.sysctl),
        memory_swap=parse.memory(a.memory_swap),
        memory_reservation=parse.memory(a.memory_reservation),
        cpu_shares=a.cpu_shares,
        cpuset_cpus=a.cpuset_cpus,
        cpu_period=a.cpu_period,
        cpu_quota=a.cpu_quota,
    )


def cmd_run(c: Client, a: argparse.Namespace) -> int:
    """Runs a command in a new container; exits with its exit code."""
    if a.interactive or a.tty:
        interactive.detach_keys(a.detach_keys)  # a bad sequence is refused before the engine is asked anything
    opts, record = options(a), cidfile(a.cidfile)
    images.ensure_image(c, a.image, a.pull)
    if a.detach:
        cid = c.run_detached(opts)
        record(cid)
        print(cid)
        return 0
    if a.interactive or a.tty:
        return interactive.run_attached(c, a, opts, record)
    out, err = sys.stdout.buffer, sys.stderr.buffer
    shown = streams(a.attach)
    code = ENGINE_ERROR
    with interactive.SignalProxy(c) if a.sig_proxy else nullcontext() as proxy:
        for frame in c.run_stream(opts):
            if frame.WhichOneof("event") == "output" and frame.output.stream not in shown:
                continue
            code = run_frame(frame, out, err, code)
            if frame.WhichOneof("event") == "created":
                record(frame.created.id)
                if proxy is not None:
                    proxy.target(frame.created.id)
    return code


def streams(attach: list[str]) -> set[int]:
    """The output streams ``-a`` shows (both without it)."""
    names = {"stdout": types_pb2.STREAM_STDOUT, "stderr": types_pb2.STREAM_STDERR, "stdin": None}
    for name in attach:
        if name.lower() not in names:
            raise InvalidArgument(f"invalid argument {name!r} for -a: want stdin, stdout or stderr")
    if not attach:
        return {types_pb2.STREAM_STDOUT, types_pb2.STREAM_STDERR}
    return {s for s in (names[n.lower()] for n in attach) if s is not None}


def cidfile(path: str) -> Callable[[str], None]:
    """``--cidfile``: claimed now (refused if it exists, as Docker does), written once the id is known."""
    if not path:
        return lambda _cid: None
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        raise InvalidArgument(f"container ID file found, make sure the other container isn't running or delete {path}") from None
    except OSError as exc:
        raise InvalidArgument(f"cannot create the container ID file {path}: {exc.strerror}") from None

    def write(cid: str) -> None:
        os.write(fd, cid.encode())
        os.close(fd)

    return write


def run_frame(frame: gw.RunResponse, out: BinaryIO, err: BinaryIO, code: int) -> int:
    """Shows one frame of an attached run; returns the exit code known so far."""
    kind = frame.WhichOneof("event")
    if kind == "output":
        target = err if frame.output.stream == types_pb2.STREAM_STDERR else out
        target.write(frame.output.data)
        target.flush()
    elif kind == "exit":
        code = frame.exit.exit_code
        if frame.exit.error:
            print(f"Error: {frame.exit.error}", file=sys.stderr)
    return code


def health_config(a: argparse.Namespace) -> types_pb2.HealthConfig | None:
    """The --health-* flags as the API message (None when none is given)."""
    if a.no_healthcheck:
        return types_pb2.HealthConfig(test=["NONE"])
    durations = {f: getattr(a, f"health_{f}") for f in ("interval", "timeout", "start_period", "start_interval")}
    if not a.health_cmd and not a.health_retries and not any(durations.values()):
        return None
    h = types_pb2.HealthConfig(test=["CMD-SHELL", a.health_cmd] if a.health_cmd else [], retries=a.health_retries)
    for field, value in durations.items():
        if value:
            setattr(h, f"{field}_ns", duration_ns(value))
    return h


def update_limits(a: argparse.Namespace) -> dict[str, Any]:
    """``update``'s limits: only those given, as Resources fields."""
    given: dict[str, Any] = {}
    fields: list[tuple[str, str, Callable[[str], Any]]] = [
        ("memory", "memory_bytes", parse.memory), ("memory_swap", "memory_swap", parse.memory),
        ("memory_reservation", "memory_reservation", parse.memory), ("cpus", "nano_cpus", parse.nano_cpus),
        ("cpu_shares", "cpu_shares", int), ("cpuset_cpus", "cpuset_cpus", str), ("cpu_period", "cpu_period", int),
        ("cpu_quota", "cpu_quota", int), ("pids_limit", "pids_limit", int),
    ]  # fmt: skip
    for name, field, conv in fields:
        value = getattr(a, name)
        if value is not None:
            try:
                given[field] = conv(value)
            except ValueError:
                raise InvalidArgument(f"invalid value {value[:40]!r} for --{name.replace('_', '-')}") from None
    return given


def cmd_top(c: Client, a: argparse.Namespace) -> int:
    """Prints a running container's processes as ps shows them."""
    r = c.top(a.container, a.ps_args)
    print(fmt.table([list(r.titles), *(list(p.columns) for p in r.processes)]))
    return 0


def cmd_container_prune(c: Client, a: argparse.Namespace) -> int:
    """Removes the containers that are not running."""
    deleted = c.prune_containers(a.filter)
    if deleted:
        print("Deleted Containers:\n" + "\n".join(deleted) + "\n")
    return 0


STATS_HEADERS = {"ID": "CONTAINER ID", "Name": "NAME", "CPUPerc": "CPU %", "MemUsage": "MEM USAGE / LIMIT", "MemPerc": "MEM %",
                 "NetIO": "NET I/O", "BlockIO": "BLOCK I/O", "PIDs": "PIDS"}  # fmt: skip
STATS_TABLE = "table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}"


def stats_row(u: gw.ContainerUsage) -> dict[str, Any]:
    """A reading as ``stats --format`` sees it: Docker's field names."""
    s = u.stats
    rx, tx = sum(n.rx_bytes for n in s.networks), sum(n.tx_bytes for n in s.networks)
    return {
        "ID": s.id[:12], "Name": s.name, "CPUPerc": f"{u.cpu_percent:.2f}%", "MemPerc": f"{u.memory_percent:.2f}%",
        "MemUsage": f"{fmt.size(s.memory_usage)} / {fmt.size(s.memory_limit)}", "NetIO": f"{fmt.size(rx)} / {fmt.size(tx)}",
        "BlockIO": f"{fmt.size(s.block_read)} / {fmt.size(s.block_write)}", "PIDs": str(s.pids),
    }  # fmt: skip


def cmd_stats(c: Client, a: argparse.Namespace) -> int:
    """Prints resource use: one table, or a table redrawn in place every second until Ctrl-C."""
    live = not a.no_stream and sys.stdout.isatty()
    idle = [gw.ContainerUsage(stats=types_pb2.ContainerStats(id=s.id, name=s.name)) for s in c.list(all=True)
            if a.all and not a.containers and s.state != types_pb2.CONTAINER_STATE_RUNNING]  # fmt: skip
    for reading in c.stats(a.containers, stream=not a.no_stream):
        rows = (stats_row(u) for u in [*reading.containers, *idle])
        lines = template.lines(a.format or STATS_TABLE, rows, STATS_HEADERS)
        if live:
            sys.stdout.write("\x1b[2J\x1b[H")  # redraw in place, as docker stats
        print("\n".join(lines), flush=True)
    return 0


def cmd_port(c: Client, a: argparse.Namespace) -> int:
    """Lists a container's published ports, or where one private port is published."""
    ports = c.inspect(a.container).network.ports
    if a.port:
        number, _, proto = a.port.partition("/")
        chosen = [p for p in ports if str(p.container_port) == number and (p.protocol or "tcp") == (proto or "tcp")]
        if not chosen:
            raise NotFound(f"no public port '{a.port}' published for {a.container}")
        for p in chosen:
            print(f"{p.host_ip or '0.0.0.0'}:{p.host_port}")
        return 0
    for p in ports:
        print(f"{p.container_port}/{p.protocol or 'tcp'} -> {p.host_ip or '0.0.0.0'}:{p.host_port}")
    return 0


def cmd_create(c: Client, a: argparse.Namespace) -> int:
    """Creates a container without starting it; prints its id."""
    opts, record = options(a), cidfile(a.cidfile)
    images.ensure_image(c, a.image, a.pull)
    cid = c.create(opts).id
    record(cid)
    print(cid)
    return 0


PS_HEADERS = {"ID": "CONTAINER ID", "Image": "IMAGE", "Command": "COMMAND", "CreatedAt": "CREATED AT", "RunningFor": "CREATED",
              "Ports": "PORTS", "State": "STATE", "Status": "STATUS", "Names": "NAMES", "Labels": "LABELS",
              "Mounts": "MOUNTS", "Networks": "NETWORKS", "Size": "SIZE"}  # fmt: skip
PS_TABLE = "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}"


def ps_row(s: gw.ContainerSummary, no_trunc: bool) -> dict[str, Any]:
    """A container as ``ps --format`` sees it: Docker's field names, each a string."""
    command = " ".join(s.command)
    return {
        "ID": s.id if no_trunc else s.id[:12],
        "Image": s.image,
        "Command": f'"{command if no_trunc else fmt.truncate(command, 20)}"',
        "CreatedAt": fmt.local_time(s.created_at),
        "RunningFor": f"{fmt.ago(s.created_at)} ago",
        "Ports": fmt.ports(s.ports),
        "State": "paused" if s.paused else fmt.STATES.get(s.state, "unknown"),
        "Status": fmt.status(s),
        "Names": s.name,
        "Labels": ",".join(f"{k}={v}" for k, v in sorted(s.labels.items())),
        "Mounts": ",".join(s.mounts),
        "Networks": s.network,
        "Size": f"{fmt.size(s.size_rw)} (virtual {fmt.size(s.size_root_fs)})" if s.size_root_fs else "",
        "_labels": dict(s.labels),
    }


def cmd_ps(c: Client, a: argparse.Namespace) -> int:
    """Lists containers."""
    found = c.list(all=a.all, filters=a.filter, last=1 if a.latest else a.last, size=a.size)
    if a.quiet:
        for s in found:
            print(s.id if a.no_trunc else s.id[:12])
        return 0
    table = PS_TABLE + ("\t{{.Size}}" if a.size else "")
    for line in template.lines(a.format or table, (ps_row(s, a.no_trunc) for s in found), PS_HEADERS):
        print(line)
    return 0


def cmd_logs(c: Client, a: argparse.Namespace) -> int:
    """Prints the output of one container, or of several merged in time order with their names."""
    out, err = sys.stdout.buffer, sys.stderr.buffer
    req = gw.LogsRequest(
        containers=a.containers, tail=a.tail, follow=a.follow, since=parse.when(a.since), until=parse.when(a.until),
        stdout_only=a.stdout_only, stderr_only=a.stderr_only, grep=a.grep or "", timestamps=a.timestamps,
    )  # fmt: skip
    several = len(a.containers) > 1
    width = max(len(n) for n in a.containers)
    for batch in c.log_chunks(req):
        for chunk in batch.chunks:
            (err if chunk.stream == types_pb2.STREAM_STDERR else out).write(chunk.data)
        for line in batch.lines:
            target = err if line.stream == types_pb2.STREAM_STDERR else out
            if several:
                target.write(f"{line.container:<{width}} | ".encode())
            if a.timestamps:
                target.write(fmt.rfc3339(line.timestamp).encode() + b" ")
            target.write(line.data)
        if a.follow:
            out.flush()
            err.flush()
    return 0


def cmd_start(c: Client, a: argparse.Namespace) -> int:
    """Starts containers; with -a/-i one, attached, until it exits (its exit code), as docker's."""
    if not (a.attach or a.interactive):
        return each(a.names, c.start, lambda n, _r: n)
    if len(a.names) > 1:
        raise InvalidArgument("you cannot start and attach multiple containers at once")
    return interactive.start_attached(c, a, a.names[0])


INSPECT_KINDS = ("container", "image", "network", "volume")


def cmd_inspect(c: Client, a: argparse.Namespace) -> int:
    """Details of each NAME as docker's inspect gives them: of the container so named, else of the
    image, network or volume (in that order), or of the one kind ``--type`` names."""
    kinds: dict[str, tuple[Callable[[str], Any], Callable[[Any], dict[str, Any]]]] = {
        "container": (c.inspect, fmt.inspect_json),
        "image": (c.inspect_image, fmt.image_json),
        "network": (c.inspect_network, system.network_json),
        "volume": (c.inspect_volume, volumes.volume_json),
    }

    def get(name: str) -> dict[str, Any]:
        for kind in [a.type] if a.type else INSPECT_KINDS:
            find, shape = kinds[kind]
            try:
                return shape(find(name))
            except NotFound:
                continue
        raise NotFound(f"No such {a.type or 'object'}: {name}")

    return inspect_all(a.names, get, lambda found: found, a.format)


def cmd_diff(c: Client, a: argparse.Namespace) -> int:
    """Prints a container's filesystem changes, one ``A|C|D path`` per line."""
    for change in c.diff(a.container):
        print(f"{change.kind} {change.path}")
    return 0


def cmd_commit(c: Client, a: argparse.Namespace) -> int:
    """Makes an image of a container; prints its id."""
    print(c.commit(a.container, a.reference or "", message=a.message, author=a.author, changes=a.change).id)
    return 0


def cmd_export(c: Client, a: argparse.Namespace) -> int:
    """Writes a container's filesystem as a tar to a file or stdout."""
    if a.output is None and sys.stdout.isatty():
        raise InvalidArgument("refusing to write a tar to a terminal: use -o FILE or redirect stdout")
    _write_chunks(c.export(a.container), a.output)
    return 0


def _write_chunks(chunks: Any, path: str | None) -> None:
    with open(path, "wb") if path else nullcontext(sys.stdout.buffer) as f:
        for chunk in chunks:
            f.write(chunk)


def cmd_cp(c: Client, a: argparse.Namespace) -> int:
    """Copies between a container and the local filesystem (``CONTAINER:PATH`` on one side)."""
    src, dst = a.source, a.destination
    if ":" in src and not os.path.exists(src):
        container, _, path = src.partition(":")
        _extract(b"".join(c.copy_from_tar(container, path)), dst)
        return 0
    if ":" in dst:
        container, _, path = dst.partition(":")
        _copy_in(c, container, path, src)
        return 0
    raise InvalidArgument("one side of cp must be CONTAINER:PATH")


def _copy_in(c: Client, container: str, path: str, src: str) -> None:
    """``docker cp``'s rules for the destination: an existing directory (a symlink to one too)
    receives SRC under its own name; else PATH names the copy, in a directory that must exist (a
    file there is replaced, by a file only); a PATH that ends in "/" must be a directory."""
    kind = _kind(c, container, path)
    if kind == "dir":
        c.copy_to(container, path.rstrip("/") or "/", [_pack(src)])
        return
    if path.endswith("/"):
        if kind is None:
            raise NotFound(f"destination directory {path} does not exist in container {container}")
        raise InvalidArgument(f"destination {path} is not a directory")
    if kind is not None and os.path.isdir(src):
        raise InvalidArgument(f"cannot copy a directory onto the file {path}")
    parent, name = posixpath.split(path)
    c.copy_to(container, parent or "/", [_pack(src, name)])


def _kind(c: Client, container: str, path: str) -> str | None:
    """What a container's ``path`` is: "dir", "file" (anything else) or None (nothing there); a
    symlink is followed once, as docker's client does."""
    try:
        info = c.stat_path(container, path)
        if info.issym():
            info = c.stat_path(container, posixpath.join(posixpath.dirname(path.rstrip("/")), info.linkname))
    except NotFound:
        return None
    return "dir" if info.isdir() else "file"


def _extract(data: bytes, dst: str) -> None:
    """Unpacks a one-entry-rooted tar at ``dst`` (a file path, or into a directory), safely."""
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        members = tf.getmembers()
        if len(members) == 1 and members[0].isfile() and not os.path.isdir(dst):
            f = tf.extractfile(members[0])
            assert f is not None
            with open(dst, "wb") as out:
                out.write(f.read())
            mode = members[0].mode & 0o7777
            if os.geteuid() == 0:
                # `docker cp` keeps the modes (as `cp -a` would), setuid/setgid included, and the
                # copy belongs to whoever runs it: run as root, that turns a file made by root in
                # a container into a setuid-root program on the host. We strip them for root only
                # (a setuid-self file is harmless); the "data" filter below strips them for everyone.
                mode &= ~0o6000  # S_ISUID | S_ISGID
            os.chmod(dst, mode)
            return
        tf.extractall(dst if os.path.isdir(dst) else os.path.dirname(dst) or ".", filter="data")


def _pack(src: str, name: str = "") -> bytes:
    """``src`` (a file or directory) as a tar with ``name`` (by default its base name) at the top."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        tf.add(src, arcname=name or os.path.basename(os.path.normpath(src)))
    return buf.getvalue()


def register(sub: Any) -> None:
    """Adds the container commands."""
    p = sub.add_parser("run", help="run a command in a new container")
    p.add_argument("-d", "--detach", action="store_true", help="run in the background and print the id")
    interactive.add_attach_flags(p)
    container_flags(p)
    p.set_defaults(func=cmd_run, engine_error=ENGINE_ERROR)
    p = sub.add_parser("attach", help="attach to a running container's input and output")
    p.add_argument("--no-stdin", action="store_true", help="do not attach stdin")
    interactive.add_attach_flags(p)
    p.add_argument("container")
    p.set_defaults(func=interactive.cmd_attach)
    p = sub.add_parser("exec", help="run a command in a running container")
    p.add_argument("-d", "--detach", action="store_true", help="run the command in the background")
    p.add_argument("-i", "--interactive", action="store_true", help="keep stdin open")
    p.add_argument("-t", "--tty", action="store_true", help="allocate a pseudo-TTY")
    p.add_argument("-e", "--env", action="append", default=[], help="set environment variables")
    p.add_argument("-u", "--user", default="", help="user[:group] to run as")
    p.add_argument("-w", "--workdir", default="", help="working directory inside the container")
    interactive.add_attach_flags(p, sig_proxy=False)
    p.add_argument("container")
    p.add_argument("command", nargs=argparse.REMAINDER, help="command and arguments")
    p.set_defaults(func=interactive.cmd_exec, engine_error=ENGINE_ERROR)
    p = sub.add_parser("create", help="create a new container")
    container_flags(p)
    p.set_defaults(func=cmd_create, engine_error=ENGINE_ERROR)
    p = verb(sub, "start", "start stopped containers")
    p.add_argument("-a", "--attach", action="store_true", help="attach stdout/stderr and forward signals")
    p.add_argument("-i", "--interactive", action="store_true", help="attach the container's stdin")
    interactive.add_attach_flags(p, sig_proxy=False)
    p.set_defaults(func=cmd_start)
    timeout = lambda p: p.add_argument("-t", "--time", type=parse.integer(-1, parse.INT32_MAX), default=None)  # noqa: E731
    p = verb(sub, "stop", "stop running containers", timeout)
    p.add_argument("-s", "--signal", default="", help="signal to send first (default: the container's stop signal)")
    p.set_defaults(func=lambda c, a: each(a.names, lambda n: c.stop(n, a.time, a.signal), lambda n, _r: n))
    p = verb(sub, "pause", "freeze the processes of containers")
    p.set_defaults(func=lambda c, a: each(a.names, c.pause, lambda n, _r: n))
    p = verb(sub, "unpause", "thaw paused containers")
    p.set_defaults(func=lambda c, a: each(a.names, c.unpause, lambda n, _r: n))
    p = verb(sub, "update", "change the limits and restart policy of containers")
    for flag, helptext in (("-m", "--memory"), ("--memory-swap", ""), ("--memory-reservation", ""), ("--cpus", ""),
                           ("-c", "--cpu-shares"), ("--cpuset-cpus", ""), ("--cpu-period", ""), ("--cpu-quota", ""),
                           ("--pids-limit", ""), ("--restart", "")):  # fmt: skip
        p.add_argument(*(f for f in (flag, helptext) if f), default=None)
    p.set_defaults(func=lambda c, a: each(a.names, lambda n: c.update(n, a.restart, **update_limits(a)), lambda n, _r: n))
    p = sub.add_parser("rename", help="give a container another name")
    p.add_argument("container")
    p.add_argument("name")
    p.set_defaults(func=lambda c, a: c.rename(a.container, a.name) and 0)
    p = sub.add_parser("stats", help="show the resource use of containers")
    p.add_argument("--no-stream", action="store_true", help="print one reading and exit")
    p.add_argument(
        "-a", "--all", action="store_true", help="accepted for Docker's spelling: containers that do not run have no use to show"
    )
    p.add_argument("--format", default="", help="table, json, or a Go template: '{{.Name}} {{.CPUPerc}}'")
    p.add_argument("containers", nargs="*", metavar="CONTAINER")
    p.set_defaults(func=cmd_stats)
    p = sub.add_parser("top", help="show the processes of a running container")
    p.add_argument("container")
    p.add_argument("ps_args", nargs=argparse.REMAINDER, help="ps options (default -ef)")
    p.set_defaults(func=cmd_top)
    p = sub.add_parser("container", help="manage containers (also: container ls|inspect|VERB as teu ps|inspect|VERB)")
    csub = p.add_subparsers(dest="container_verb", required=True, metavar="COMMAND")
    cp = csub.add_parser("prune", help="remove every container that is not running")
    cp.add_argument("--filter", action="append", default=[], help="until=TIME|DURATION, label=K[=V], label!=K[=V]")
    cp.add_argument("-f", "--force", action="store_true", help="do not ask (Teu never asks)")
    cp.set_defaults(func=cmd_container_prune)
    p = verb(sub, "restart", "restart containers", timeout)
    p.set_defaults(func=lambda c, a: each(a.names, lambda n: c.restart(n, a.time), lambda n, _r: n))
    p = verb(sub, "kill", "send a signal to containers", lambda p: p.add_argument("-s", "--signal", default="KILL"))
    p.set_defaults(func=lambda c, a: each(a.names, lambda n: c.kill(n, a.signal), lambda n, _r: n))
    p = verb(sub, "wait", "block until containers stop, then print their exit codes")
    p.add_argument("--condition", default="", help="not-running (default), next-exit, removed, healthy")
    p.set_defaults(func=lambda c, a: each(a.names, lambda n: c.wait(n, a.condition), lambda _n, r: str(r.exit_code)))
    p = verb(sub, "rm", "remove containers", lambda p: p.add_argument("-f", "--force", action="store_true"))
    p.add_argument("-v", "--volumes", action="store_true", help="also remove the container's anonymous volumes")
    p.set_defaults(func=lambda c, a: each(a.names, lambda n: c.remove(n, a.force, a.volumes), lambda n, _r: n))
    p = sub.add_parser("port", help="list a container's published ports")
    p.add_argument("container")
    p.add_argument("port", nargs="?", help="PRIVATE_PORT[/PROTO]")
    p.set_defaults(func=cmd_port)
    p = verb(sub, "inspect", "show details of containers (or images, networks, volumes) as JSON", add_format, metavar="NAME")
    p.add_argument("--type", choices=INSPECT_KINDS, help="only this kind of object (default: the first kind that has NAME)")
    p.set_defaults(func=cmd_inspect)
    p = sub.add_parser("ps", help="list containers")
    p.add_argument("-a", "--all", action="store_true", help="show all containers (default: running)")
    p.add_argument("-q", "--quiet", action="store_true", help="only ids")
    p.add_argument("--no-trunc", action="store_true", help="do not truncate output")
    keys = "id, name, label, status, ancestor, exited, before, since, network, volume, publish, expose"
    p.add_argument("-f", "--filter", action="append", default=[], help=f"KEY=VALUE; keys: {keys}")
    p.add_argument("--format", default="", help="table, json, or a Go template: '{{.ID}}\\t{{.Names}}'")
    p.add_argument("-n", "--last", type=parse.integer(0, parse.INT32_MAX), default=0, help="the newest N containers (all states)")
    p.add_argument("-l", "--latest", action="store_true", help="the newest container (all states)")
    p.add_argument("-s", "--size", action="store_true", help="show what each container wrote, and its virtual size")
    p.set_defaults(func=cmd_ps)
    p = sub.add_parser("logs", help="fetch the logs of one or more containers")
    p.add_argument("-f", "--follow", action="store_true", help="follow output until the containers exit")
    p.add_argument("-n", "--tail", type=parse.integer(0, parse.INT32_MAX), default=0, help="only the last N lines")
    p.add_argument("-t", "--timestamps", action="store_true", help="show timestamps")
    p.add_argument("--since", default="", help="only lines since a time (RFC 3339) or a duration ago (10m)")
    p.add_argument("--until", default="", help="only lines before a time (RFC 3339) or a duration ago")
    p.add_argument("--stdout-only", action="store_true", help="only standard output")
    p.add_argument("--stderr-only", action="store_true", help="only standard error")
    p.add_argument("--grep", default=None, help="only lines matching this regular expression (filtered by the engine)")
    p.add_argument("containers", nargs="+", metavar="CONTAINER")
    p.set_defaults(func=cmd_logs)
    p = sub.add_parser("diff", help="show changes to a container's filesystem")
    p.add_argument("container")
    p.set_defaults(func=cmd_diff)
    p = sub.add_parser("commit", help="create an image from a container's changes")
    p.add_argument("-m", "--message", default="", help="commit message")
    p.add_argument("-a", "--author", default="", help="author")
    p.add_argument("-c", "--change", action="append", default=[], help="Dockerfile instruction (CMD, ENV...)")
    p.add_argument("container")
    p.add_argument("reference", nargs="?", help="REPOSITORY[:TAG]")
    p.set_defaults(func=cmd_commit)
    p = sub.add_parser("export", help="export a container's filesystem as a tar")
    p.add_argument("-o", "--output", default=None, help="write to a file instead of stdout")
    p.add_argument("container")
    p.set_defaults(func=cmd_export)
    p = sub.add_parser("cp", help="copy files between a container and the local filesystem")
    p.add_argument("source", help="CONTAINER:PATH or a local path")
    p.add_argument("destination", help="CONTAINER:PATH or a local path")
    p.set_defaults(func=cmd_cp)
