"""Teu's Python SDK: a typed, synchronous client of the public gRPC API.

    from teu.client import Client, ContainerOptions
    with Client() as teu:
        result = teu.run(ContainerOptions(image="busybox", cmd=["echo", "hi"], remove=True))
        assert result.stdout == b"hi\\n"

Every method raises the errors of :mod:`teu.errors` (``NotFound``, ``InvalidArgument``...), never
raw gRPC errors. The transport is one gRPC channel, injectable for tests.

A remote engine (``teu-engine --tls-listen``) is reached over mutual TLS only:

    Client("tcp://127.0.0.1:2376", tls=TlsConfig(ca="ca.pem", cert="cert.pem", key="key.pem"))

or with ``TEU_HOST=tcp://...`` and ``TEU_TLS_CA/TEU_TLS_CERT/TEU_TLS_KEY`` (or ``TEU_CERT_PATH``, a
directory holding ca.pem, cert.pem and key.pem). A TCP target without them is refused.
"""

from __future__ import annotations

import builtins
import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from teu import _rpc, policies
from teu._images import ImagesMixin
from teu._rpc import stream, unary
from teu.errors import InvalidArgument, from_status
from teu.session import ExecResult, Session, feed, window
from teu_api.gateway.v1 import gateway_pb2 as gw
from teu_api.gateway.v1 import gateway_pb2_grpc
from teu_api.types.v1 import types_pb2

__all__ = ["Client", "ContainerOptions", "ExecResult", "RunResult", "Session", "TlsConfig", "default_target"]
CHUNK = 1 << 20


_MESSAGE_SIZES = [
    ("grpc.max_receive_message_length", 16 << 20),
    ("grpc.max_send_message_length", 16 << 20),
    # a restarted gateway is back within a second: reconnect as soon
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
]
#: How long a followed log waits for a gateway that restarts before giving up.
RESUME_PATIENCE = 30.0


def default_target(env: Mapping[str, str] | None = None) -> str:
    """The gateway address: $TEU_HOST (``unix:PATH`` or ``tcp://HOST:PORT``), else the gateway
    socket in $TEU_RUN (default /run/teu); in ``env`` if given, else this process's environment."""
    env = os.environ if env is None else env
    if host := env.get("TEU_HOST"):
        return host
    return f"unix:{env.get('TEU_RUN', '/run/teu')}/gateway.sock"


@dataclass(frozen=True)
class TlsConfig:
    """The client's side of mutual TLS: the CA that signed the engine's certificate, and this
    client's certificate and key (its CN is who it is, its OU the role it gets)."""

    ca: str | os.PathLike[str]
    cert: str | os.PathLike[str]
    key: str | os.PathLike[str]

    @classmethod
    def resolve(cls, ca: str | None = None, cert: str | None = None, key: str | None = None) -> TlsConfig | None:
        """The settings from arguments (the CLI's flags), else $TEU_TLS_CA, $TEU_TLS_CERT and
        $TEU_TLS_KEY, else ca.pem, cert.pem and key.pem in $TEU_CERT_PATH; None if nothing is set."""
        cert_path = os.environ.get("TEU_CERT_PATH")

        def pick(name: str, given: str | None) -> str | None:
            if found := given or os.environ.get(f"TEU_TLS_{name.upper()}"):
                return found
            return os.path.join(cert_path, f"{name}.pem") if cert_path else None

        files = {"ca": pick("ca", ca), "cert": pick("cert", cert), "key": pick("key", key)}
        if not any(files.values()):
            return None
        if missing := [name for name, value in files.items() if not value]:
            raise InvalidArgument(f"incomplete TLS settings: no {', '.join(missing)} (--tls-ca/--tls-cert/--tls-key)")
        return cls(str(files["ca"]), str(files["cert"]), str(files["key"]))

    def credentials(self) -> grpc.ChannelCredentials:
        """The channel credentials; InvalidArgument if a file cannot be read."""
        try:
            ca, cert, key = (Path(path).read_bytes() for path in (self.ca, self.cert, self.key))
        except OSError as exc:
            raise InvalidArgument(f"cannot read TLS file: {exc}") from None
        return grpc.ssl_channel_credentials(root_certificates=ca, private_key=key, certificate_chain=cert)


def open_channel(target: str, tls: TlsConfig | None = None) -> grpc.Channel:
    """A channel to ``target``: plain on a unix socket (its file mode is its access control),
    mutual TLS on anything else (``tcp://HOST:PORT`` or a gRPC target), never plaintext over TCP."""
    if target.startswith(("unix:", "unix-abstract:")):
        if tls is not None:
            raise InvalidArgument(f"TLS settings are for tcp:// targets, not {target}")
        return grpc.insecure_channel(target, options=_MESSAGE_SIZES)
    tls = tls or TlsConfig.resolve()
    if tls is None:
        raise InvalidArgument(
            f"refusing to connect to {target} without TLS: give --tls-ca, --tls-cert and --tls-key "
            "(or TEU_TLS_CA, TEU_TLS_CERT, TEU_TLS_KEY, or TEU_CERT_PATH)"
        )
    address = target.removeprefix("tcp://")
    return grpc.secure_channel(address, tls.credentials(), options=_MESSAGE_SIZES)


@dataclass
class ContainerOptions:
    """What ``create`` and ``run`` take: Docker's options, by their long names."""

    image: str
    cmd: list[str] = field(default_factory=list)
    name: str = ""
    entrypoint: list[str] | None = None
    env: list[str] = field(default_factory=list)
    workdir: str = ""
    user: str = ""
    hostname: str = ""
    memory: int = 0
    nano_cpus: int = 0
    pids_limit: int = 0
    remove: bool = False
    tty: bool = False
    interactive: bool = False
    labels: dict[str, str] = field(default_factory=dict)
    stop_timeout: int = 0
    network: str = ""
    ports: list[types_pb2.PortMapping] = field(default_factory=list)
    log_opts: dict[str, str] = field(default_factory=dict)
    cap_add: list[str] = field(default_factory=list)
    cap_drop: list[str] = field(default_factory=list)
    privileged: bool = False
    read_only: bool = False
    security_opt: list[str] = field(default_factory=list)
    devices: list[types_pb2.Device] = field(default_factory=list)
    ulimits: list[types_pb2.Ulimit] = field(default_factory=list)
    userns: str = ""
    mounts: list[gw.MountSpec] = field(default_factory=list)
    volumes_from: list[str] = field(default_factory=list)
    stop_signal: str = ""
    shm_size: int = 0
    group_add: list[str] = field(default_factory=list)
    oom_score_adj: int = 0
    #: --cgroup-parent: an absolute cgroup path, or one relative to the engine's parent.
    cgroup_parent: str = ""
    sysctls: dict[str, str] = field(default_factory=dict)
    memory_swap: int = 0
    memory_reservation: int = 0
    cpu_shares: int = 0
    cpuset_cpus: str = ""
    cpu_period: int = 0
    cpu_quota: int = 0
    oom_kill_disable: bool = False
    publish_all: bool = False
    expose: list[str] = field(default_factory=list)
    extra_hosts: list[str] = field(default_factory=list)
    dns: list[str] = field(default_factory=list)
    dns_search: list[str] = field(default_factory=list)
    dns_options: list[str] = field(default_factory=list)
    ipc: str = ""
    pid: str = ""
    uts: str = ""
    platform: str = ""
    network_aliases: list[str] = field(default_factory=list)
    restart: str = ""  # no, always, unless-stopped, on-failure[:N]
    init: bool | None = None  # None: the engine's default
    healthcheck: types_pb2.HealthConfig | None = None  # --health-*; test ["NONE"]: --no-healthcheck
    health_on_failure: str = ""  # "restart": an unhealthy container is killed (its restart policy decides)
    masked_paths: list[str] | None = None  # None: the engine's defaults (parts of /proc and /sys); []: none
    readonly_paths: list[str] | None = None  # None: the engine's defaults; []: none

    def resources(self) -> types_pb2.Resources:
        """The resource limits of these options."""
        return types_pb2.Resources(
            memory_bytes=self.memory, nano_cpus=self.nano_cpus, pids_limit=self.pids_limit, memory_swap=self.memory_swap,
            memory_reservation=self.memory_reservation, cpu_shares=self.cpu_shares, cpuset_cpus=self.cpuset_cpus,
            cpu_period=self.cpu_period, cpu_quota=self.cpu_quota, oom_kill_disable=self.oom_kill_disable,
        )  # fmt: skip

    def to_proto(self) -> gw.ContainerConfig:
        """The API message for these options."""
        config = gw.ContainerConfig(
            image=self.image,
            name=self.name,
            cmd=self.cmd,
            env=self.env,
            working_dir=self.workdir,
            user=self.user,
            hostname=self.hostname,
            resources=self.resources(),
            auto_remove=self.remove,
            tty=self.tty,
            open_stdin=self.interactive,
            labels=self.labels,
            stop_timeout=self.stop_timeout,
            network=self.network,
            ports=self.ports,
            log_opts=self.log_opts,
            cap_add=self.cap_add,
            cap_drop=self.cap_drop,
            privileged=self.privileged,
            read_only=self.read_only,
            security_opt=self.security_opt,
            devices=self.devices,
            ulimits=self.ulimits,
            userns=self.userns,
            mounts=self.mounts,
            volumes_from=self.volumes_from,
            stop_signal=self.stop_signal,
            shm_size=self.shm_size,
            group_add=self.group_add,
            oom_score_adj=self.oom_score_adj,
            cgroup_parent=self.cgroup_parent,
            sysctls=self.sysctls,
            publish_all=self.publish_all,
            expose=self.expose,
            extra_hosts=self.extra_hosts,
            dns=self.dns,
            dns_search=self.dns_search,
            dns_options=self.dns_options,
            ipc=self.ipc,
            pid=self.pid,
            uts=self.uts,
            platform=self.platform,
            network_aliases=self.network_aliases,
            restart=policies.restart_policy(self.restart),
            health_on_failure=self.health_on_failure,
        )
        if self.entrypoint is not None:
            config.entrypoint.values.extend(self.entrypoint)
        if self.init is not None:
            config.init = self.init
        if self.healthcheck is not None:
            config.healthcheck.CopyFrom(self.healthcheck)
        if self.masked_paths is not None:
            config.masked_paths.CopyFrom(types_pb2.StringList(values=self.masked_paths))
        if self.readonly_paths is not None:
            config.readonly_paths.CopyFrom(types_pb2.StringList(values=self.readonly_paths))
        return config


@dataclass
class RunResult:
    """The outcome of an attached ``run``."""

    id: str
    name: str
    exit_code: int
    oom_killed: bool = False
    error: str = ""
    stdout: bytes = b""
    stderr: bytes = b""


class Client(ImagesMixin):
    """A connection to a Teu engine's gateway."""

    def __init__(self, target: str | None = None, channel: grpc.Channel | None = None, tls: TlsConfig | None = None) -> None:
        """``target``: ``unix:PATH`` or ``tcp://HOST:PORT`` (default :func:`default_target`); ``tls``:
        the client certificate for a tcp:// target (default from the environment, see
        :meth:`TlsConfig.resolve`); ``channel`` replaces both (tests)."""
        self._channel = channel or open_channel(target or default_target(), tls)
        self.containers = gateway_pb2_grpc.ContainersServiceStub(self._channel)
        self.images = gateway_pb2_grpc.ImagesServiceStub(self._channel)
        self.system = gateway_pb2_grpc.SystemServiceStub(self._channel)
        self.networks = gateway_pb2_grpc.NetworksServiceStub(self._channel)
        self.volumes = gateway_pb2_grpc.VolumesServiceStub(self._channel)

    def close(self) -> None:
        """Closes the connection."""
        self._channel.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- containers -------------------------------------------------------------------------------

    def create(self, options: ContainerOptions) -> gw.CreateResponse:
        """Creates a container; returns its id and name."""
        return unary(self.containers.Create, gw.CreateRequest(config=options.to_proto()))

    def run_stream(self, options: ContainerOptions, detach: bool = False) -> Iterator[gw.RunResponse]:
        """The frames of a run: created, output..., exit (detached: created only)."""
        return stream(self.containers.Run(gw.RunRequest(config=options.to_proto(), detach=detach)))

    def run(self, options: ContainerOptions) -> RunResult:
        """Runs a container to its end and collects its output."""
        result = RunResult(id="", name="", exit_code=-1)
        out: dict[int, list[bytes]] = {types_pb2.STREAM_STDOUT: [], types_pb2.STREAM_STDERR: []}
        for frame in self.run_stream(options):
            kind = frame.WhichOneof("event")
            if kind == "created":
                result.id, result.name = frame.created.id, frame.created.name
            elif kind == "output":
                out[frame.output.stream].append(frame.output.data)
            elif kind == "exit":
                result.exit_code, result.oom_killed, result.error = (
                    frame.exit.exit_code, frame.exit.oom_killed, frame.exit.error
                )  # fmt: skip
        result.stdout = b"".join(out[types_pb2.STREAM_STDOUT])
        result.stderr = b"".join(out[types_pb2.STREAM_STDERR])
        return result

    def run_detached(self, options: ContainerOptions) -> str:
        """Starts a container in the background; returns its id."""
        cid = ""
        for frame in self.run_stream(options, detach=True):
            if frame.WhichOneof("event") == "created":
                cid = str(frame.created.id)
        if cid:
            return cid
        raise from_status(grpc.StatusCode.INTERNAL, "run ended without creating a container")

    def start(self, container: str) -> str:
        """Starts a container; returns its id."""
        return str(unary(self.containers.Start, gw.StartRequest(container=container)).id)

    def stop(self, container: str, timeout: int | None = None, signal: str = "") -> str:
        """Stops a container (``signal``, else its stop signal, then SIGKILL after ``timeout`` s); returns its id."""
        req = gw.StopRequest(container=container, timeout_seconds=timeout, signal=signal)
        return str(unary(self.containers.Stop, req).id)

    def kill(self, container: str, signal: str = "KILL") -> str:
        """Sends a signal; returns the container's id."""
        return str(unary(self.containers.Kill, gw.KillRequest(container=container, signal=signal)).id)

    def restart(self, container: str, timeout: int | None = None) -> str:
        """Stops and starts a container; returns its id."""
        return str(unary(self.containers.Restart, gw.RestartRequest(container=container, timeout_seconds=timeout)).id)

    def stats(
        self, containers: Sequence[str] = (), stream: bool = False, interval_ms: int = 0, one_shot: bool = False
    ) -> Iterator[gw.StatsResponse]:
        """Resource use of containers (every running one if none is named): one reading, or one per
        interval while ``stream``; ``one_shot``: one reading at once, without the CPU percent."""
        req = gw.StatsRequest(containers=list(containers), stream=stream, interval_ms=interval_ms, one_shot=one_shot)
        return _rpc.stream(self.containers.Stats(req))

    def pause(self, container: str) -> str:
        """Freezes a running container's processes; returns its id."""
        return str(unary(self.containers.Pause, gw.PauseRequest(container=container)).id)

    def unpause(self, container: str) -> str:
        """Thaws a paused container; returns its id."""
        return str(unary(self.containers.Unpause, gw.UnpauseRequest(container=container)).id)

    def update(self, container: str, restart: str | None = None, **limits: Any) -> str:
        """Changes a container's limits (live when it runs) and restart policy, as ``docker update``:
        ``limits`` are fields of the API's Resources (memory_bytes, memory_swap, nano_cpus,
        cpu_shares, cpuset_cpus, pids_limit...), those not given keep their value."""
        req = gw.UpdateRequest(container=container, resources=types_pb2.Resources(**limits))
        if restart is not None:
            req.restart.CopyFrom(policies.restart_policy(restart))
        return str(unary(self.containers.Update, req).id)

    def rename(self, container: str, name: str) -> str:
        """Gives a container another name; returns its id."""
        return str(unary(self.containers.Rename, gw.RenameRequest(container=container, name=name)).id)

    def top(self, container: str, ps_args: Sequence[str] = ()) -> gw.TopResponse:
        """A running container's processes as ps on the host shows them."""
        return unary(self.containers.Top, gw.TopRequest(container=container, ps_args=list(ps_args)))

    def prune_containers(self, filters: Sequence[str] = ()) -> builtins.list[str]:
        """Removes every container that is not running (filters: until=, label=, label!=); their ids."""
        return list(unary(self.containers.PruneContainers, gw.PruneContainersRequest(filters=list(filters))).deleted)

    def wait(self, container: str, condition: str = "") -> gw.WaitResponse:
        """Blocks until the container stops (``condition``: not-running, next-exit, removed, healthy); returns its exit code."""
        return unary(self.containers.Wait, gw.WaitRequest(container=container, condition=condition))

    def list(
        self, all: bool = False, filters: Sequence[str] = (), last: int = 0, size: bool = False
    ) -> list[gw.ContainerSummary]:
        """Containers, newest first (running only unless ``all``); ``filters`` as Docker's ps
        (``label=tier=web``, ``status=exited``...); ``last``: the newest N of any state; ``size``:
        measure what each wrote (slower)."""
        req = gw.ListRequest(all=all, filters=list(filters), last=last, size=size)
        return list(unary(self.containers.List, req).containers)

    def inspect(self, container: str) -> gw.ContainerDetails:
        """Everything about one container."""
        return unary(self.containers.Inspect, gw.InspectRequest(container=container)).container

    def remove(self, container: str, force: bool = False, volumes: bool = False) -> str:
        """Removes a container (with ``volumes``, its anonymous volumes no other container uses); returns its id."""
        return str(unary(self.containers.Remove, gw.RemoveRequest(container=container, force=force, volumes=volumes)).id)

    def rotate_log(self, container: str) -> str:
        """Starts a new log file for a running container now; the path it writes to."""
        return str(unary(self.containers.RotateLog, gw.RotateLogRequest(container=container)).path)

    def logs(self, container: str, tail: int = 0, follow: bool = False, **filters: Any) -> Iterator[gw.LogLine]:
        """The container's output lines, from its log. ``filters``: since, until (Unix ns),
        stdout_only, stderr_only, grep (a regular expression applied by the engine)."""
        return self.logs_many([container], tail=tail, follow=follow, **filters)

    def logs_many(self, containers: Sequence[str], tail: int = 0, follow: bool = False, **filters: Any) -> Iterator[gw.LogLine]:
        """Lines of several containers, merged in time order, each naming its container."""
        req = gw.LogsRequest(containers=list(containers), tail=tail, follow=follow, timestamps=True, **filters)
        for batch in self.log_chunks(req):
            yield from batch.lines

    def log_chunks(self, request: gw.LogsRequest) -> Iterator[gw.LogsResponse]:
        """The raw Logs stream (chunks when no timestamps are asked for): the fast path of ``teu logs``.

        Following one container, a gateway that restarts (up to RESUME_PATIENCE seconds) is waited for,
        and the stream continues from the last position it gave: no line missed, none repeated."""
        req = gw.LogsRequest()
        req.CopyFrom(request)
        resumable = req.follow and len(req.containers) == 1
        for batch in _rpc.resumed(lambda: self.containers.Logs(req), lambda: resumable, RESUME_PATIENCE):
            if batch.offset:
                req.offset = batch.offset
            yield batch

    # -- interactive stdio -------------------------------------------------------------------------

    def attach(self, container: str, stdin: bool = False, start: bool = False, size: tuple[int, int] | None = None) -> Session:
        """Attaches to a container's stdio (``start``: start it once attached); ``size`` is (rows, cols)."""
        opening = gw.AttachRequest(start=gw.AttachStart(container=container, stdin=stdin, start=start, size=window(size)))
        return Session(self.containers.Attach, opening, lambda f: gw.AttachRequest(frame=f))

    def exec(
        self,
        container: str,
        cmd: builtins.list[str],
        env: builtins.list[str] | None = None,
        user: str = "",
        workdir: str = "",
        tty: bool = False,
        stdin: bool = False,
        size: tuple[int, int] | None = None,
    ) -> Session:
        """Runs ``cmd`` in a running container; ``exec_id`` is set once the engine sends it."""
        start = gw.ExecStart(container=container, cmd=cmd, env=env or [], user=user, working_dir=workdir,
                             tty=tty, stdin=stdin, size=window(size))  # fmt: skip
        return Session(self.containers.Exec, gw.ExecRequest(start=start), lambda f: gw.ExecRequest(frame=f))

    def exec_run(
        self,
        container: str,
        cmd: builtins.list[str],
        env: builtins.list[str] | None = None,
        user: str = "",
        workdir: str = "",
        input: bytes | None = None,
    ) -> ExecResult:
        """Runs ``cmd`` in a running container to its end, feeding it ``input``; collects its output."""
        with self.exec(container, cmd, env=env, user=user, workdir=workdir, stdin=input is not None) as session:
            if input is not None:
                # From another thread: the process may fill its output before it has read all its input.
                threading.Thread(target=feed, args=(session, input), daemon=True).start()
            out: dict[int, builtins.list[bytes]] = {types_pb2.STREAM_STDOUT: [], types_pb2.STREAM_STDERR: []}
            for stream, data in session:
                out.setdefault(stream, []).append(data)
            status = session.exit_status or types_pb2.ExitStatus(exit_code=-1, error="no exit status")
        return ExecResult(
            exec_id=session.exec_id,
            exit_code=status.exit_code,
            oom_killed=status.oom_killed,
            error=status.error,
            stdout=b"".join(out[types_pb2.STREAM_STDOUT]),
            stderr=b"".join(out[types_pb2.STREAM_STDERR]),
        )

    # -- images -----------------------------------------------------------------------------------

    def list_images(self, filters: Sequence[str] = (), all: bool = False) -> builtins.list[gw.ImageSummary]:
        """Images, newest first; ``filters`` as Docker's (dangling=, reference=, label=, before=, since=);
        ``all`` also lists a build's intermediate images."""
        return list(unary(self.images.ListImages, gw.ListImagesRequest(filters=list(filters), all=all)).images)

    def inspect_image(self, image: str) -> gw.ImageSummary:
        """Everything about one image."""
        return unary(self.images.InspectImage, gw.InspectImageRequest(image=image)).image

    # -- system -----------------------------------------------------------------------------------

    def info(self) -> gw.InfoResponse:
        """Engine-wide information."""
        return unary(self.system.Info, gw.InfoRequest())

    def version(self) -> gw.VersionResponse:
        """Versions of the engine's parts."""
        return unary(self.system.Version, gw.VersionRequest())

    def disk_usage(self) -> gw.DiskUsageResponse:
        """Disk used by images, containers and logs."""
        return unary(self.system.DiskUsage, gw.DiskUsageRequest())

    def prune(self, all: bool = False) -> gw.PruneResponse:
        """Removes stopped containers and unused images."""
        return unary(self.system.Prune, gw.PruneRequest(all=all))

    def events(
        self,
        since_ns: int = 0,
        until_ns: int = 0,
        filters: Sequence[str] = (),
        cursor: str = "",
    ) -> Iterator[gw.EventsResponse]:
        """What happens to containers, images, networks and volumes, as ``docker events``: those
        recorded from ``cursor`` (an event's cursor: every later one) or ``since_ns``, then new ones
        until ``until_ns`` (forever if 0). ``filters`` are Docker's ("type=container", "event=die",
        "container=NAME", "label=k=v", ...). Each response has an event and its cursor.

        A gateway that restarts (up to RESUME_PATIENCE seconds) is waited for, and the stream goes on
        from the last cursor: no event missed, none repeated."""
        req = gw.EventsRequest(cursor=cursor, since_unix_nano=since_ns, until_unix_nano=until_ns, filters=list(filters))
        for response in _rpc.resumed(lambda: self.system.Events(req), lambda: bool(req.cursor), RESUME_PATIENCE):
            req.cursor = response.cursor
            if response.HasField("event"):
                yield response

    # -- networks ---------------------------------------------------------------------------------

    def create_network(self, name: str, subnet: str = "", gateway: str = "", ip_range: str = "", internal: bool = False,
                       labels: dict[str, str] | None = None) -> types_pb2.Network:  # fmt: skip
        """Creates a bridge network (``internal``: nothing leaves it)."""
        req = gw.CreateNetworkRequest(name=name, subnet=subnet, gateway=gateway, ip_range=ip_range, internal=internal,
                                      labels=labels or {})  # fmt: skip
        return unary(self.networks.CreateNetwork, req).network

    def list_networks(self, filters: Sequence[str] = ()) -> builtins.list[types_pb2.Network]:
        """Networks by name; ``filters`` as Docker's (name=, id=, driver=, type=custom|builtin, dangling=)."""
        return list(unary(self.networks.ListNetworks, gw.ListNetworksRequest(filters=list(filters))).networks)

    def connect_network(
        self, network: str, container: str, ip: str = "", aliases: Sequence[str] = ()
    ) -> types_pb2.NetworkAttachment:
        """Connects a container to one more network: at once if it runs, and at each of its starts."""
        req = gw.ConnectNetworkRequest(network=network, container=container, ip=ip, aliases=list(aliases))
        return unary(self.networks.ConnectNetwork, req).attachment

    def disconnect_network(self, network: str, container: str, force: bool = False) -> None:
        """Disconnects a container from a network it was connected to (now, and for its next starts)."""
        unary(self.networks.DisconnectNetwork, gw.DisconnectNetworkRequest(network=network, container=container, force=force))

    def prune_networks(self, filters: Sequence[str] = ()) -> builtins.list[str]:
        """Removes the user networks no container is on (matching every filter: until=, label=,
        label!=); returns their names."""
        return list(unary(self.networks.PruneNetworks, gw.PruneNetworksRequest(filters=list(filters))).deleted)

    def inspect_network(self, network: str) -> types_pb2.Network:
        """One network."""
        req = gw.InspectNetworkRequest(network=network)
        return unary(self.networks.InspectNetwork, req).network

    def remove_network(self, network: str) -> types_pb2.Network:
        """Removes a network."""
        req = gw.RemoveNetworkRequest(network=network)
        return unary(self.networks.RemoveNetwork, req).network

    # -- volumes ----------------------------------------------------------------------------------

    def create_volume(
        self, name: str = "", labels: dict[str, str] | None = None, options: dict[str, str] | None = None
    ) -> gw.Volume:
        """Creates a volume (or returns the one of that name); a random name without one."""
        req = gw.CreateVolumeRequest(name=name, labels=labels or {}, options=options or {})
        return unary(self.volumes.CreateVolume, req).volume

    def inspect_volume(self, name: str) -> gw.Volume:
        """One volume, with its size and the containers using it."""
        return unary(self.volumes.InspectVolume, gw.InspectVolumeRequest(name=name)).volume

    def list_volumes(self, filters: Sequence[str] = ()) -> builtins.list[gw.Volume]:
        """Volumes by name; ``filters`` as Docker's (name=, label=, dangling=)."""
        return list(unary(self.volumes.ListVolumes, gw.ListVolumesRequest(filters=list(filters))).volumes)

    def remove_volume(self, name: str, force: bool = False) -> bool:
        """Removes a volume; FailedPrecondition while a container uses it."""
        return bool(unary(self.volumes.RemoveVolume, gw.RemoveVolumeRequest(name=name, force=force)).removed)

    def prune_volumes(self, all: bool = False, filters: Sequence[str] = ()) -> gw.PruneVolumesResponse:
        """Removes unused volumes: anonymous ones, or every one with ``all``."""
        return unary(self.volumes.PruneVolumes, gw.PruneVolumesRequest(all=all, filters=list(filters)))
