"""Teu's Python SDK: a typed, synchronous client of the public gRPC API.

    from teu.client import Client
    with Client() as teu:
        result = teu.run(ContainerOptions(image="busybox", cmd=["echo", "hi"]), remove=True)
        assert result.stdout == b"hi\\n"

Every method raises the errors of :mod:`teu.errors` (``NotFound``, ``InvalidArgument``...), never
raw gRPC errors. The transport is one gRPC channel, injectable for tests.
"""

from __future__ import annotations

import builtins
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO, cast

import grpc

from teu.errors import TeuError, Unavailable, from_status
from teu.gateway.v1 import gateway_pb2 as gw
from teu.gateway.v1 import gateway_pb2_grpc
from teu.types.v1 import types_pb2

__all__ = ["Client", "ContainerOptions", "RunResult", "default_target"]
CHUNK = 1 << 20


def default_target() -> str:
    """The gateway address: $TEU_HOST, else the gateway socket in $TEU_RUN (default /run/teu)."""
    if host := os.environ.get("TEU_HOST"):
        return host
    return f"unix:{os.environ.get('TEU_RUN', '/run/teu')}/gateway.sock"


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
            resources=types_pb2.Resources(memory_bytes=self.memory, nano_cpus=self.nano_cpus, pids_limit=self.pids_limit),
            auto_remove=self.remove,
            tty=self.tty,
            open_stdin=self.interactive,
            labels=self.labels,
            stop_timeout=self.stop_timeout,
        )
        if self.entrypoint is not None:
            config.entrypoint.values.extend(self.entrypoint)
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


class Client:
    """A connection to a Teu engine's gateway."""

    def __init__(self, target: str | None = None, channel: grpc.Channel | None = None) -> None:
        self._channel = channel or grpc.insecure_channel(
            target or default_target(),
            options=[("grpc.max_receive_message_length", 16 << 20), ("grpc.max_send_message_length", 16 << 20)],
        )
        self.containers = gateway_pb2_grpc.ContainersServiceStub(self._channel)
        self.images = gateway_pb2_grpc.ImagesServiceStub(self._channel)
        self.system = gateway_pb2_grpc.SystemServiceStub(self._channel)

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
        return cast(gw.CreateResponse, _unary(self.containers.Create, gw.CreateRequest(config=options.to_proto())))

    def run_stream(self, options: ContainerOptions, detach: bool = False) -> Iterator[gw.RunResponse]:
        """The frames of a run: created, output..., exit (detached: created only)."""
        return _stream(self.containers.Run(gw.RunRequest(config=options.to_proto(), detach=detach)))

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
        return str(_unary(self.containers.Start, gw.StartRequest(container=container)).id)

    def stop(self, container: str, timeout: int | None = None) -> str:
        """Stops a container (stop signal, then SIGKILL after ``timeout`` s); returns its id."""
        return str(_unary(self.containers.Stop, gw.StopRequest(container=container, timeout_seconds=timeout)).id)

    def kill(self, container: str, signal: str = "KILL") -> str:
        """Sends a signal; returns the container's id."""
        return str(_unary(self.containers.Kill, gw.KillRequest(container=container, signal=signal)).id)

    def restart(self, container: str, timeout: int | None = None) -> str:
        """Stops and starts a container; returns its id."""
        return str(_unary(self.containers.Restart, gw.RestartRequest(container=container, timeout_seconds=timeout)).id)

    def wait(self, container: str) -> gw.WaitResponse:
        """Blocks until the container stops; returns its exit code."""
        return cast(gw.WaitResponse, _unary(self.containers.Wait, gw.WaitRequest(container=container)))

    def list(self, all: bool = False) -> list[gw.ContainerSummary]:
        """Containers, newest first (running only unless ``all``)."""
        return list(_unary(self.containers.List, gw.ListRequest(all=all)).containers)

    def inspect(self, container: str) -> gw.ContainerDetails:
        """Everything about one container."""
        return cast(gw.InspectResponse, _unary(self.containers.Inspect, gw.InspectRequest(container=container))).container

    def remove(self, container: str, force: bool = False) -> str:
        """Removes a container; returns its id."""
        return str(_unary(self.containers.Remove, gw.RemoveRequest(container=container, force=force)).id)

    def logs(self, container: str, tail: int = 0, follow: bool = False) -> Iterator[gw.LogLine]:
        """The container's output lines, from its log."""
        req = gw.LogsRequest(containers=[container], tail=tail, follow=follow, timestamps=True)
        for batch in _stream(self.containers.Logs(req)):
            yield from batch.lines

    # -- images -----------------------------------------------------------------------------------

    def import_image(self, source: BinaryIO, ref: str = "", config: types_pb2.ImageConfig | None = None) -> gw.ImageSummary:
        """Makes a one-layer image from a tar stream."""

        def parts() -> Iterable[gw.ImportRequest]:
            yield gw.ImportRequest(header=gw.ImportHeader(ref=ref, config=config or types_pb2.ImageConfig()))
            while chunk := source.read(CHUNK):
                yield gw.ImportRequest(chunk=chunk)

        return cast(gw.ImportResponse, _unary(self.images.Import, parts())).image

    def list_images(self) -> builtins.list[gw.ImageSummary]:
        """Images, newest first."""
        return list(_unary(self.images.ListImages, gw.ListImagesRequest()).images)

    def inspect_image(self, image: str) -> gw.ImageSummary:
        """Everything about one image."""
        return cast(gw.InspectImageResponse, _unary(self.images.InspectImage, gw.InspectImageRequest(image=image))).image

    # -- system -----------------------------------------------------------------------------------

    def info(self) -> gw.InfoResponse:
        """Engine-wide information."""
        return cast(gw.InfoResponse, _unary(self.system.Info, gw.InfoRequest()))

    def version(self) -> gw.VersionResponse:
        """Versions of the engine's parts."""
        return cast(gw.VersionResponse, _unary(self.system.Version, gw.VersionRequest()))


def _error(exc: grpc.RpcError) -> TeuError:
    """The Teu error for a failed call; a gateway that cannot be reached gets a hint."""
    details = exc.details() or ""
    if exc.code() == grpc.StatusCode.UNAVAILABLE and details.startswith("failed to connect"):
        return Unavailable(f"cannot reach the Teu engine: is it running? (make start) [{details}]")
    return from_status(exc.code(), details)


def _unary(method: Any, request: Any) -> Any:
    try:
        return method(request)
    except grpc.RpcError as exc:
        raise _error(exc) from None


def _stream(responses: Any) -> Iterator[Any]:
    try:
        yield from responses
    except grpc.RpcError as exc:
        raise _error(exc) from None
