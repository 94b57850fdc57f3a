"""Interactive stdio sessions (``attach`` and ``exec``): input, resize and detach from any thread."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import grpc

from teu._rpc import error
from teu_api.gateway.v1 import gateway_pb2 as gw
from teu_api.types.v1 import types_pb2

__all__ = ["ExecResult", "Session"]
CHUNK = 1 << 20
# Input frames a Session buffers before send() blocks: bounds memory when stdin is faster than the wire.
MAX_PENDING_INPUT = 64


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

    def send_signal(self, signal: str) -> None:
        """Sends ``signal`` ("KILL", "TERM", "9"...) to the process: an exec's own, a container's main one."""
        self._put(types_pb2.StdinFrame(signal=signal))

    def close_stdin(self) -> None:
        """Ends the process's input: it reads EOF."""
        self._put(types_pb2.StdinFrame(close_stdin=True))

    def detach(self) -> None:
        """Leaves the process running: ends the stream without ending the process. Does not block.

        Our side of the stream ends after the frames already queued; the engine then ends the call once
        they have reached the process (the call is cancelled only if that takes over ``detach_grace``
        seconds); output that arrives meanwhile is dropped and iteration ends.
        """
        if self._detached or self._finished:
            return
        self._detached = True
        self._end_requests()
        threading.Thread(target=self._cancel_when_sent, name="teu-detach", daemon=True).start()

    def _cancel_when_sent(self) -> None:
        # Ending our side of the stream is the detach: the engine ends the call once every frame sent
        # before it has reached the process. A cancel could overtake those frames, so it is only the
        # fallback for an engine that does not answer.
        self._requests_sent.wait(self._detach_grace)
        ended = threading.Event()
        self._call.add_done_callback(lambda _call: ended.set())
        ended.wait(self._detach_grace)
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
            raise error(exc) from None

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


def window(size: tuple[int, int] | None) -> types_pb2.WindowSize | None:
    """(rows, cols) as the API's window size; None when unknown."""
    return None if size is None else types_pb2.WindowSize(rows=size[0], cols=size[1])


def feed(session: Session, data: bytes) -> None:
    session.send(data)
    session.close_stdin()
