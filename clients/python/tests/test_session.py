"""The SDK's interactive Session and the CLI's pump, against a fake gateway in this process."""

from __future__ import annotations

import fcntl
import io
import os
import pty
import signal
import struct
import termios
import threading
import time
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import pytest

from teu.cli.interactive import SignalProxy, pump
from teu.client import Client
from teu.errors import FailedPrecondition, NotFound
from teu_api.gateway.v1 import gateway_pb2 as gw
from teu_api.gateway.v1 import gateway_pb2_grpc
from teu_api.types.v1 import types_pb2

OUT, ERR = types_pb2.STREAM_STDOUT, types_pb2.STREAM_STDERR


def _output(stream: int, data: bytes) -> types_pb2.OutputFrame:
    return types_pb2.OutputFrame(output=types_pb2.OutputChunk(stream=stream, data=data))


class FakeContainers(gateway_pb2_grpc.ContainersServiceServicer):
    """Echoes input to stdout (and its length to stderr); close_stdin ends with exit 3; records detaches."""

    def __init__(self) -> None:
        self.openings: list[Any] = []
        self.received = bytearray()
        self.resizes: list[tuple[int, int]] = []
        self.kills: list[tuple[str, str]] = []
        self.detached = threading.Event()

    def _echo(self, requests: Iterator[Any], context: Any) -> Iterator[types_pb2.OutputFrame]:
        opening = next(requests)
        self.openings.append(opening)
        exited: list[bool] = []
        # A detach is the client closing its side or cancelling: either way the RPC ends without an exit.
        context.add_callback(lambda: None if exited else self.detached.set())
        start = opening.start
        if start.container == "missing":
            context.abort(grpc.StatusCode.NOT_FOUND, "no such container: missing")
        if start.container == "stopped":
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, "container stopped is not running")
        yield _output(OUT, b"hello\n")
        for request in requests:
            frame = request.frame
            kind = frame.WhichOneof("frame")
            if kind == "data":
                self.received += frame.data
                yield _output(OUT, frame.data)
                yield _output(ERR, str(len(frame.data)).encode())
            elif kind == "resize":
                self.resizes.append((frame.resize.rows, frame.resize.cols))
                yield _output(OUT, f"[{frame.resize.rows}x{frame.resize.cols}]".encode())
            elif kind == "close_stdin":
                exited.append(True)
                yield types_pb2.OutputFrame(exit=types_pb2.ExitStatus(exit_code=3))
                return

    def Kill(self, request: gw.KillRequest, context: Any) -> gw.KillResponse:
        self.kills.append((request.container, request.signal))
        return gw.KillResponse(id=request.container)

    def Attach(self, request_iterator: Iterator[gw.AttachRequest], context: Any) -> Iterator[gw.AttachResponse]:
        for frame in self._echo(request_iterator, context):
            yield gw.AttachResponse(frame=frame)

    def Exec(self, request_iterator: Iterator[gw.ExecRequest], context: Any) -> Iterator[gw.ExecResponse]:
        first = True
        for frame in self._echo(request_iterator, context):
            if first:
                yield gw.ExecResponse(exec_id="e1")
                first = False
            yield gw.ExecResponse(frame=frame)


@pytest.fixture()
def fake(tmp_path: Path) -> Iterator[tuple[FakeContainers, Client]]:
    """A fake gateway on a unix socket, and a client of it."""
    servicer = FakeContainers()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    gateway_pb2_grpc.add_ContainersServiceServicer_to_server(servicer, server)
    server.add_insecure_port(f"unix:{tmp_path}/gw.sock")
    server.start()
    with Client(f"unix:{tmp_path}/gw.sock") as client:
        yield servicer, client
    server.stop(grace=None)


def test_attach_round_trip_and_exit(fake: tuple[FakeContainers, Client]) -> None:
    """Input, resize and close_stdin reach the server in order; output and the exit status come back."""
    servicer, client = fake
    session = client.attach("web", stdin=True, start=True, size=(24, 80))
    session.send(b"\x00\xffbin")
    session.resize(50, 132)
    session.close_stdin()
    chunks = list(session)
    assert chunks == [(OUT, b"hello\n"), (OUT, b"\x00\xffbin"), (ERR, b"5"), (OUT, b"[50x132]")]
    assert session.exit_status is not None and session.exit_status.exit_code == 3
    start = servicer.openings[0].start
    assert (start.container, start.stdin, start.start, start.size.rows, start.size.cols) == ("web", True, True, 24, 80)


def test_detach_leaves_without_exit(fake: tuple[FakeContainers, Client]) -> None:
    """detach closes the client's side: the server sees a detach, the session ends with no exit status."""
    servicer, client = fake
    session = client.attach("web", stdin=True)
    it = iter(session)
    assert next(it) == (OUT, b"hello\n")
    session.send(b"last")
    session.detach()
    rest = list(it)
    assert servicer.detached.wait(5)
    assert session.wait() is None and session.detached
    assert all(stream in (OUT, ERR) for stream, _ in rest)
    session.send(b"ignored after detach")  # a no-op, not an error


def test_errors_are_teu_errors(fake: tuple[FakeContainers, Client]) -> None:
    """gRPC errors surface as Teu errors, from iteration or while waiting for exec's id."""
    _, client = fake
    with pytest.raises(NotFound):
        list(client.attach("missing"))
    with pytest.raises(FailedPrecondition):
        client.exec("stopped", ["ls"]).wait_exec_id()


def test_exec_id_and_exec_run(fake: tuple[FakeContainers, Client]) -> None:
    """exec's id arrives first; exec_run feeds input, splits streams and returns the exit code."""
    servicer, client = fake
    session = client.exec("w", ["cat"], env=["K=V"], user="nobody", workdir="/tmp", tty=True, stdin=True)
    assert session.wait_exec_id() == "e1"
    session.detach()
    assert list(session) == []  # output read while waiting for the id is dropped once detached
    start = servicer.openings[0].start
    assert (list(start.cmd), list(start.env), start.user, start.working_dir, start.tty) == (["cat"], ["K=V"], "nobody", "/tmp", True)  # fmt: skip
    r = client.exec_run("w", ["cat"], input=b"abc")
    assert (r.exec_id, r.exit_code, r.stdout, r.stderr) == ("e1", 3, b"hello\nabc", b"3")


def test_large_input_is_chunked_and_bounded(fake: tuple[FakeContainers, Client]) -> None:
    """Input larger than one message is split, and all of it arrives in order."""
    _, client = fake
    data = os.urandom(3 << 20)
    r = client.exec_run("w", ["cat"], input=data)
    assert r.stdout == b"hello\n" + data


def test_pump_non_tty_splits_streams_and_closes_stdin(fake: tuple[FakeContainers, Client]) -> None:
    """Without a TTY, stdin is copied as-is (detach keys included), EOF closes stdin, streams stay apart."""
    _, client = fake
    r, w = os.pipe()
    os.write(w, b"x\x10\x11y")
    os.close(w)
    out, err = io.BytesIO(), io.BytesIO()
    try:
        session = client.attach("web", stdin=True)
        code = pump(session, tty=False, stdin=True, close_on_eof=True, keys=b"\x10\x11", stdin_fd=r, out=out, err=err)
    finally:
        os.close(r)
    assert code == 3
    assert out.getvalue().startswith(b"hello\n") and b"".join(out.getvalue().split(b"hello\n", 1)) == b"x\x10\x11y"
    assert err.getvalue().isdigit()


def type_when_raw(master: int, slave: int, keys: bytes) -> None:
    """Types ``keys`` once the terminal is raw (in cooked mode the line discipline would eat ctrl-q)."""
    deadline = time.monotonic() + 5
    while termios.tcgetattr(slave)[3] & termios.ICANON and time.monotonic() < deadline:
        time.sleep(0.01)
    os.write(master, keys)


def test_pump_tty_detach_keys_restore_terminal(fake: tuple[FakeContainers, Client]) -> None:
    """With a TTY on stdin: raw mode while attached, detach keys end it with 0, the terminal is restored."""
    servicer, client = fake
    master, slave = pty.openpty()
    before = termios.tcgetattr(slave)
    typist = threading.Thread(target=type_when_raw, args=(master, slave, b"ab\x10\x11"), daemon=True)
    try:
        session = client.attach("web", stdin=True)
        typist.start()
        code = pump(session, tty=True, stdin=True, close_on_eof=True, keys=b"\x10\x11", stdin_fd=slave, out=io.BytesIO())
        assert code == 0
        assert servicer.detached.wait(5)
        assert termios.tcgetattr(slave) == before
        assert servicer.received == b"ab"  # the keys before the sequence were sent, the sequence was not
    finally:
        os.close(master)
        os.close(slave)


def test_pump_tty_forwards_sigwinch_as_resize(fake: tuple[FakeContainers, Client]) -> None:
    """With a TTY, SIGWINCH sends the terminal's new size as a resize frame."""
    servicer, client = fake
    master, slave = pty.openpty()

    def resize_then_detach() -> None:
        type_when_raw(master, slave, b"")
        fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", 41, 121, 0, 0))
        os.kill(os.getpid(), signal.SIGWINCH)
        deadline = time.monotonic() + 5
        while not servicer.resizes and time.monotonic() < deadline:
            time.sleep(0.01)
        os.write(master, b"\x10\x11")

    try:
        session = client.attach("web", stdin=True)
        threading.Thread(target=resize_then_detach, daemon=True).start()
        assert pump(session, tty=True, stdin=True, close_on_eof=True, keys=b"\x10\x11", stdin_fd=slave, out=io.BytesIO()) == 0
        assert servicer.resizes == [(41, 121)]
    finally:
        os.close(master)
        os.close(slave)


def test_signal_proxy_forwards_to_the_container(fake: tuple[FakeContainers, Client]) -> None:
    """Signals the CLI receives are sent with Kill once the container is known; handlers are restored after."""
    servicer, client = fake
    before = signal.getsignal(signal.SIGUSR1)
    with SignalProxy(client) as proxy:
        os.kill(os.getpid(), signal.SIGUSR1)
        time.sleep(0.1)
        assert servicer.kills == []  # queued until the container's id is known
        proxy.target("web")
        deadline = time.monotonic() + 5
        while not servicer.kills and time.monotonic() < deadline:
            time.sleep(0.01)
    assert servicer.kills == [("web", "SIGUSR1")]
    assert signal.getsignal(signal.SIGUSR1) == before
