"""The CRI's streaming server: what ``kubectl exec``, ``attach`` and ``port-forward`` reach through
the kubelet, and ``crictl exec -it``.

Exec, Attach and PortForward answer a URL on this server (loopback by default, ``TEU_CRI_STREAMING``
to choose HOST:PORT), holding a one-time token that expires after a minute. The client upgrades the
connection to SPDY/3.1 (spdy.py) with Kubernetes' protocols: ``v4.channel.k8s.io`` for exec and
attach (streams error, stdin, stdout, stderr, resize; the exit as a JSON Status on the error stream)
and ``portforward.k8s.io`` (a data and an error stream per connection, to a port inside the pod's
network namespace). Exec and attach go through the gateway's Exec and Attach streams.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import os
import secrets
import socket
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import structlog

from teu_api.errors import InvalidArgument, TeuError
from teu_api.gateway.v1 import gateway_pb2 as gw
from teu_api.k8s.cri.v1 import api_pb2 as cri
from teu_api.types.v1 import types_pb2
from teu_common.frontdoor import Gateway
from teu_common.gatewaystreams import Frames, attach_requests, exec_requests, output_frames
from teu_cri import spdy

log = structlog.get_logger()

#: How long a URL the Exec, Attach or PortForward RPC answered stays usable.
TOKEN_TTL = 60.0
#: How long the client may take to open the streams it asked for (the kubelet's own bound).
STREAMS_TIMEOUT = 30.0
#: Largest HTTP request head taken before the upgrade.
MAX_HEAD = 16 << 10
EXEC_PROTOCOL, PORTFORWARD_PROTOCOL = "v4.channel.k8s.io", "portforward.k8s.io"
CLONE_NEWNET = 0x40000000


@dataclass
class _Pending:
    kind: str  # "exec", "attach" or "portforward"
    request: cri.ExecRequest | cri.AttachRequest | cri.PortForwardRequest
    target: str  # the Teu container (exec, attach) or the pod's infra container (port-forward)
    expires: float = field(default_factory=lambda: time.monotonic() + TOKEN_TTL)


def status_json(exit_code: int | None, error: str = "") -> bytes:
    """The Kubernetes Status a v4 client reads on the error stream at the end."""
    if error:
        return json.dumps({"metadata": {}, "status": "Failure", "message": error, "reason": "InternalError"}).encode()
    if not exit_code:
        return json.dumps({"metadata": {}, "status": "Success"}).encode()
    return json.dumps({
        "metadata": {}, "status": "Failure", "reason": "NonZeroExitCode",
        "message": f"command terminated with non-zero exit code: exit status {exit_code}",
        "details": {"causes": [{"reason": "ExitCode", "message": str(exit_code)}]},
    }).encode()  # fmt: skip


def offered(value: str) -> list[str]:
    """The protocols an X-Stream-Protocol-Version header offers (comma-separated, or repeated)."""
    return [p.strip() for p in value.replace("\x00", ",").split(",") if p.strip()]


class StreamingServer:
    """Serves the streaming URLs until closed."""

    def __init__(self, gateway: Gateway, host: str = "127.0.0.1", port: int = 0) -> None:
        self.g, self.host, self.port = gateway, host, port
        self._pending: dict[str, _Pending] = {}
        self._server: asyncio.Server | None = None
        self._sessions: set[asyncio.Task[None]] = set()

    @classmethod
    def from_env(cls, gateway: Gateway) -> StreamingServer:
        host, _, port = os.environ.get("TEU_CRI_STREAMING", "127.0.0.1:0").rpartition(":")
        return cls(gateway, host.strip("[]") or "127.0.0.1", int(port or 0))

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.host, self.port, limit=MAX_HEAD)
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("streaming_server", address=f"{self.host}:{self.port}")

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._sessions):
            task.cancel()

    def url(self, kind: str, request: cri.ExecRequest | cri.AttachRequest | cri.PortForwardRequest, target: str) -> str:
        """A one-time URL for ``request`` on ``target``."""
        now = time.monotonic()
        for token in [t for t, p in self._pending.items() if p.expires < now]:
            del self._pending[token]
        token = secrets.token_urlsafe(24)
        self._pending[token] = _Pending(kind, request, target)
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/{kind}/{token}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._sessions.add(task)
        try:
            await self._upgrade(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            pass
        finally:
            self._sessions.discard(task)
            with contextlib.suppress(ConnectionError, RuntimeError):
                writer.close()

    async def _upgrade(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        lines = head.split("\r\n")
        parts = lines[0].split(" ")
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if sep:
                key = name.strip().lower()
                headers[key] = f"{headers[key]},{value.strip()}" if key in headers else value.strip()
        _, kind, token = (parts[1].split("?")[0].split("/") + ["", "", ""])[:3] if len(parts) > 1 else ("", "", "")
        pending = self._pending.pop(token, None)
        if pending is None or pending.kind != kind or pending.expires < time.monotonic():
            writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            return
        protocol = PORTFORWARD_PROTOCOL if kind == "portforward" else EXEC_PROTOCOL
        if "spdy/3.1" not in headers.get("upgrade", "").lower() or protocol not in offered(
            headers.get("x-stream-protocol-version", "")
        ):
            body = f"want Upgrade: SPDY/3.1 and X-Stream-Protocol-Version: {protocol}".encode()
            writer.write(b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
            return
        writer.write(f"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n"
                     f"X-Stream-Protocol-Version: {protocol}\r\n\r\n".encode())  # fmt: skip
        await writer.drain()
        handler = {"exec": self._exec, "attach": self._attach, "portforward": self._port_forward}[kind]
        await handler(reader, writer, pending)

    # -- exec and attach (v4.channel.k8s.io) ------------------------------------------------------

    async def _exec(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, p: _Pending) -> None:
        req = p.request
        assert isinstance(req, cri.ExecRequest)
        start = gw.ExecStart(container=p.target, cmd=list(req.cmd), tty=req.tty, stdin=req.stdin)
        await self._channels(reader, writer, req.stdin, req.stdout, req.stderr and not req.tty, req.tty,
                             lambda frames: output_frames(self.g.containers.Exec(exec_requests(start, frames))))  # fmt: skip

    async def _attach(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, p: _Pending) -> None:
        req = p.request
        assert isinstance(req, cri.AttachRequest)
        start = gw.AttachStart(container=p.target, stdin=req.stdin)
        await self._channels(reader, writer, req.stdin, req.stdout, req.stderr and not req.tty, req.tty,
                             lambda frames: output_frames(self.g.containers.Attach(attach_requests(start, frames))))  # fmt: skip

    async def _channels(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, stdin: bool, stdout: bool, stderr: bool, tty: bool,
        call: Callable[[Frames], AsyncIterator[types_pb2.OutputFrame]],
    ) -> None:  # fmt: skip
        """The client's streams ↔ the gateway's stream: input and resizes in, output out, the exit last."""
        wanted = {"error"} | {
            name for name, on in (("stdin", stdin), ("stdout", stdout), ("stderr", stderr), ("resize", tty)) if on
        }
        streams: dict[str, spdy.Stream] = {}
        complete = asyncio.Event()

        def opened(s: spdy.Stream) -> None:
            streams[s.headers.get("streamtype", "")] = s
            if wanted <= streams.keys():
                complete.set()

        session = spdy.Session(reader, writer, opened)
        reading = asyncio.create_task(session.run())
        frames: Frames = asyncio.Queue()
        helpers: list[asyncio.Task[Any]] = []
        try:
            async with asyncio.timeout(STREAMS_TIMEOUT):
                await complete.wait()
            if stdin:
                helpers.append(asyncio.create_task(_input(streams["stdin"], frames)))
            else:
                frames.put_nowait(types_pb2.StdinFrame(close_stdin=True))  # no input: the output is wanted whole
            if tty:
                helpers.append(asyncio.create_task(_resizes(streams["resize"], frames)))
            output = asyncio.create_task(
                _output(call(frames), streams.get("stdout"), streams.get("stderr") or streams.get("stdout"))
            )
            helpers.append(output)
            await asyncio.wait({output, reading}, return_when=asyncio.FIRST_COMPLETED)
            if not output.done():  # the client went away: an attach is a detach, an exec's process runs on
                return
            code, error = output.result()
            await streams["error"].write(status_json(code, error))
        except TimeoutError:
            log.warning("streams_not_opened", wanted=sorted(wanted), opened=sorted(streams))
        finally:
            frames.put_nowait(None)
            for task in helpers:
                task.cancel()
            for s in streams.values():
                with contextlib.suppress(ConnectionError, RuntimeError):
                    await s.close()
            await session.close()
            reading.cancel()

    # -- port forwarding (portforward.k8s.io) ------------------------------------------------------

    async def _port_forward(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, p: _Pending) -> None:
        req = p.request
        assert isinstance(req, cri.PortForwardRequest)
        infra = (await self.g.containers.Inspect(gw.InspectRequest(container=p.target))).container
        errors: dict[str, spdy.Stream] = {}
        forwards: set[asyncio.Task[None]] = set()

        def opened(s: spdy.Stream) -> None:
            rid = s.headers.get("requestid", "")
            if s.headers.get("streamtype") == "error":
                errors[rid] = s
                return
            task = asyncio.create_task(_forward(s, lambda: errors.get(rid), infra.pid, s.headers.get("port", "")))
            forwards.add(task)
            task.add_done_callback(forwards.discard)

        session = spdy.Session(reader, writer, opened)
        try:
            await session.run()
        finally:
            for task in list(forwards):
                task.cancel()
            await session.close()


async def _input(s: spdy.Stream, frames: Frames) -> None:
    while (data := await s.read()) is not None:
        frames.put_nowait(types_pb2.StdinFrame(data=data))
    frames.put_nowait(types_pb2.StdinFrame(close_stdin=True))


async def _resizes(s: spdy.Stream, frames: Frames) -> None:
    """Each JSON {"Width": W, "Height": H} the client sends, as a resize."""
    decoder, buf = json.JSONDecoder(), ""
    while (data := await s.read()) is not None:
        buf += data.decode(errors="replace")
        while buf.strip():
            try:
                size, end = decoder.raw_decode(buf.lstrip())
            except ValueError:
                break
            buf = buf.lstrip()[end:]
            if isinstance(size, dict) and int(size.get("Width", 0)) > 0 and int(size.get("Height", 0)) > 0:
                window = types_pb2.WindowSize(rows=int(size["Height"]), cols=int(size["Width"]))
                frames.put_nowait(types_pb2.StdinFrame(resize=window))


async def _output(
    frames: AsyncIterator[types_pb2.OutputFrame], out: spdy.Stream | None, err: spdy.Stream | None
) -> tuple[int | None, str]:
    """Output to the client's streams until the exit: (exit code, error)."""
    try:
        async for frame in frames:
            kind = frame.WhichOneof("frame")
            if kind == "output":
                target = err if frame.output.stream == types_pb2.STREAM_STDERR else out
                if target is not None:
                    await target.write(frame.output.data)
            elif kind == "exit":
                return frame.exit.exit_code, frame.exit.error
    except TeuError as exc:
        return None, exc.message
    return None, "the stream ended without an exit status"


async def _forward(data: spdy.Stream, error: Callable[[], spdy.Stream | None], pid: int, port: str) -> None:
    """One forwarded connection: the client's data stream ↔ ``port`` on the loopback of the pod's
    network namespace (the infra process ``pid`` holds it)."""
    try:
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise InvalidArgument(f"invalid port {port[:20]!r}")
        sock = await asyncio.to_thread(_connect_in, pid, int(port))
        reader, writer = await asyncio.open_connection(sock=sock)
    except (OSError, TeuError) as exc:
        if (e := error()) is not None:
            await e.write(f"error forwarding port {port[:20]} to pod: {exc}".encode())
            await e.close()
        await data.close()
        return

    async def upstream() -> None:
        while (chunk := await data.read()) is not None:
            writer.write(chunk)
            await writer.drain()
        with contextlib.suppress(OSError):
            writer.write_eof()

    sending = asyncio.create_task(upstream())
    try:
        while chunk := await reader.read(65536):
            await data.write(chunk)
    finally:
        with contextlib.suppress(ConnectionError, RuntimeError):  # the client may be gone already
            await data.close()
            if (e := error()) is not None:
                await e.close()
        sending.cancel()
        with contextlib.suppress(asyncio.CancelledError, OSError):
            await sending
        writer.close()


def _connect_in(pid: int, port: int) -> socket.socket:
    """A TCP connection to 127.0.0.1:``port`` made inside the network namespace of process ``pid``:
    this thread enters it, connects, and goes back (a socket stays in the namespace it was made in)."""
    libc = ctypes.CDLL(None, use_errno=True)
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    target = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        if libc.setns(target, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), "cannot enter the pod's network namespace")
        try:
            return socket.create_connection(("127.0.0.1", port), timeout=10)
        finally:
            if libc.setns(own, CLONE_NEWNET) != 0:  # a thread left in the pod's namespace must not serve again
                os._exit(70)
    finally:
        os.close(target)
        os.close(own)
