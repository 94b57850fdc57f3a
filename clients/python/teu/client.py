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
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO, cast

import grpc

from teu.errors import TeuError, Unavailable, from_status
from teu.gateway.v1 import gateway_pb2 as gw
from teu.gateway.v1 import gateway_pb2_grpc
from teu.types.v1 import types_pb2

__all__ = ["Client", "ContainerOptions", "ExecResult", "RunResult", "Session", "default_target"]
CHUNK = 1 << 20
# Input frames a Session buffers before send() blocks: bounds memory when stdin is faster than the wire.
MAX_PENDING_INPUT = 64


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


@dataclass
class ExecResult:
    """The outcome of ``exec_run``."""

    exec_id: str
    exit_code: int
    oom_killed: bool = False
    error: str = ""
    stdout: bytes = b""
    stderr: bytes = b""


class _End:
    """Marks the end of a Session's requests."""


_END = _End()


class Session:
    """One interactive stdio stream (``attach`` or ``exec``), usable from several threads.

    Any thread may ``send``, ``resize``, ``close_stdin`` or ``detach``; one thread iterates the output
    as ``(stream, bytes)`` pairs (``types_pb2.STREAM_STDOUT``/``STREAM_STDERR``). Once the output ends,
    ``exit_status`` holds how the process ended, or None if the session was detached first.
    """

    def __init__(
        self,
        method: Any,
        opening: Any,
        wrap: Callable[[types_pb2.StdinFrame], Any],
        detach_grace: float = 1.0,
    ) -> None:
        self._wrap = wrap
        # SimpleQueue.put is reentrant, so signal handlers (SIGWINCH) may call resize() safely.
        self._requests: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._input_slots = threading.BoundedSemaphore(MAX_PENDING_INPUT)
        self._closed = False  # the request side has ended: later frames are dropped
        self._detached = False
        self._finished = False
        self._detach_grace = detach_grace
        self._requests_sent = threading.Event()  # gRPC has pulled (and so written) every queued request
        self._pending: list[Any] = []  # responses read while waiting for exec's id
        self.exec_id = ""
        self.exit_status: types_pb2.ExitStatus | None = None
        self._call = method(self._request_iterator(opening))

    def _request_iterator(self, opening: Any) -> Iterator[Any]:
        yield opening
        while not isinstance(item := self._requests.get(), _End):
            if item.frame.WhichOneof("frame") == "data":
                self._input_slots.release()
            yield item
        # gRPC asks for the next request only once the previous one is written.
        self._requests_sent.set()

    def _put(self, frame: types_pb2.StdinFrame) -> None:
        if not self._closed:
            self._requests.put(self._wrap(frame))

    def send(self, data: bytes) -> None:
        """Writes ``data`` to the process's stdin (or terminal); blocks while too much is in flight."""
        for i in range(0, len(data), CHUNK):
            while not self._input_slots.acquire(timeout=0.1):
                if self._closed:
                    return
            if self._closed:
                self._input_slots.release()
                return
            self._put(types_pb2.StdinFrame(data=data[i : i + CHUNK]))

    def resize(self, rows: int, cols: int) -> None:
        """Tells the process's terminal its new size."""
        self._put(types_pb2.StdinFrame(resize=types_pb2.WindowSize(rows=rows, cols=cols)))

    def close_stdin(self) -> None:
        """Ends the process's input: it reads EOF."""
        self._put(types_pb2.StdinFrame(close_stdin=True))

    def detach(self) -> None:
        """Leaves the process running: ends the stream without ending the process. Does not block.

        Frames already queued are written first (for up to ``detach_grace`` seconds), then the call
        is cancelled; output that arrives meanwhile is dropped and iteration ends.
        """
        if self._detached or self._finished:
            return
        self._detached = True
        self._end_requests()
        threading.Thread(target=self._cancel_when_sent, name="teu-detach", daemon=True).start()

    def _cancel_when_sent(self) -> None:
        self._requests_sent.wait(self._detach_grace)
        self._call.cancel()

    @property
    def detached(self) -> bool:
        """Whether ``detach`` was called before the process ended."""
        return self._detached

    def _end_requests(self) -> None:
        if not self._closed:
            self._closed = True
            self._requests.put(_END)

    def _next(self) -> Any | None:
        """The next response, None at the end; a cancel after ``detach`` is an end, not an error."""
        try:
            return next(self._call)
        except StopIteration:
            return None
        except grpc.RpcError as exc:
            if self._detached and exc.code() == grpc.StatusCode.CANCELLED:
                return None
            self._finish()
            raise _error(exc) from None

    def wait_exec_id(self) -> str:
        """Reads until exec's session id arrives (or the stream ends); output read meanwhile is kept."""
        while not self.exec_id and not self._finished:
            response = self._next()
            if response is None:
                self._finish()
            elif isinstance(response, gw.ExecResponse) and response.WhichOneof("part") == "exec_id":
                self.exec_id = response.exec_id
            else:
                self._pending.append(response)
        return self.exec_id

    def _finish(self) -> None:
        self._finished = True
        # The request iterator runs in a gRPC thread; ending it lets that thread finish.
        self._end_requests()

    def __iter__(self) -> Iterator[tuple[int, bytes]]:
        while self._pending:
            yield from self._handle(self._pending.pop(0))
        while (response := self._next()) is not None:
            yield from self._handle(response)
        # Only a real end finishes: a caller that stops iterating early may resume, or detach.
        self._finish()

    def _handle(self, response: Any) -> Iterator[tuple[int, bytes]]:
        if isinstance(response, gw.ExecResponse) and response.WhichOneof("part") == "exec_id":
            self.exec_id = response.exec_id
            return
        frame: types_pb2.OutputFrame = response.frame
        kind = frame.WhichOneof("frame")
        if kind == "exit":
            self.exit_status = frame.exit
        elif kind == "output" and not self._detached:
            yield frame.output.stream, frame.output.data

    def wait(self) -> types_pb2.ExitStatus | None:
        """Drains the remaining output; returns how the process ended (None if detached)."""
        for _ in self:
            pass
        return self.exit_status

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        if not self._finished:
            self.detach()


def _size(size: tuple[int, int] | None) -> types_pb2.WindowSize | None:
    return None if size is None else types_pb2.WindowSize(rows=size[0], cols=size[1])


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

    # -- interactive stdio -------------------------------------------------------------------------

    def attach(self, container: str, stdin: bool = False, start: bool = False, size: tuple[int, int] | None = None) -> Session:
        """Attaches to a container's stdio (``start``: start it once attached); ``size`` is (rows, cols)."""
        opening = gw.AttachRequest(start=gw.AttachStart(container=container, stdin=stdin, start=start, size=_size(size)))
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
                             tty=tty, stdin=stdin, size=_size(size))  # fmt: skip
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
                threading.Thread(target=_feed, args=(session, input), daemon=True).start()
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


def _feed(session: Session, data: bytes) -> None:
    session.send(data)
    session.close_stdin()


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
