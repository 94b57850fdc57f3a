"""Bridging blocking producers of bytes (tar writers in threads) to async gRPC response streams."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable
from typing import IO, Any, TypeVar, cast

from teu_api.errors import Cancelled

__all__ = ["CHUNK", "ChunkSink", "HashingFile", "events_from_thread", "stream_from_thread"]

CHUNK = 1 << 18  # 256 KiB: measured best (a busybox save 6.9 ms against 11.4 with 1 MiB; 167 MB as fast)
_IN_FLIGHT = 8  # chunks buffered between the thread and the client: bounded memory
T = TypeVar("T")


class ChunkSink:
    """A write-only file object that hands out CHUNK-sized pieces to ``emit``."""

    def __init__(self, emit: Callable[[bytes], None]) -> None:
        self._emit = emit
        self._buf = bytearray()

    def write(self, data: bytes) -> int:
        """Buffers ``data``, emitting full chunks."""
        self._buf += data
        while len(self._buf) >= CHUNK:
            self._emit(bytes(self._buf[:CHUNK]))
            del self._buf[:CHUNK]
        return len(data)

    def flush(self) -> None:
        """Emits whatever is buffered."""
        if self._buf:
            self._emit(bytes(self._buf))
            self._buf.clear()


class HashingFile:
    """A write-only file object that writes to ``out`` and counts bytes (for a layer's tar)."""

    def __init__(self, out: IO[bytes], hasher: object) -> None:
        self._out = out
        self._hasher = hasher
        self.size = 0

    def write(self, data: bytes) -> int:
        """Writes and hashes ``data``."""
        self._out.write(data)
        self._hasher.update(data)  # type: ignore[attr-defined]
        self.size += len(data)
        return len(data)


async def stream_from_thread(produce: Callable[[IO[bytes]], None]) -> AsyncIterator[bytes]:
    """Runs ``produce(sink)`` in a thread and yields what it writes, in chunks, as it goes.

    Backpressure: the thread blocks once _IN_FLIGHT chunks wait for a slow client. If the consumer
    stops early (client gone), the producer's next write raises Cancelled and the thread ends.
    An exception of ``produce`` is raised here after the chunks before it.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[bytes | BaseException | None] = asyncio.Queue()
    slots = threading.Semaphore(_IN_FLIGHT)
    stopped = threading.Event()

    def emit(chunk: bytes) -> None:
        while not slots.acquire(timeout=0.5):
            if stopped.is_set():
                raise Cancelled("the client went away")
        if stopped.is_set():
            raise Cancelled("the client went away")
        loop.call_soon_threadsafe(queue.put_nowait, chunk)

    def run() -> None:
        sink = ChunkSink(emit)
        try:
            produce(cast(IO[bytes], sink))
            sink.flush()
            loop.call_soon_threadsafe(queue.put_nowait, None)
        except BaseException as exc:  # handed to the consumer, which re-raises it
            if not stopped.is_set():
                loop.call_soon_threadsafe(queue.put_nowait, exc)

    worker = loop.run_in_executor(None, run)
    try:
        while True:
            item = await queue.get()
            if item is None:
                break
            if isinstance(item, BaseException):
                raise item
            slots.release()
            yield item
    finally:
        stopped.set()
        slots.release()
        await asyncio.shield(worker)


async def events_from_thread(work: Callable[[Callable[[T], None]], None]) -> AsyncIterator[T]:
    """Runs ``work(emit)`` in a thread and yields each event it emits (from any of its threads).

    Events are small (progress), so the queue is unbounded and emitting never blocks the work. If
    the consumer stops early (client gone), the next emit raises Cancelled, which ends the work
    through its normal error path (so it cleans up); this waits for that before returning.
    An exception of ``work`` is raised here after the events before it.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
    stopped = threading.Event()

    def emit(event: T) -> None:
        if stopped.is_set():
            raise Cancelled("the client went away")
        loop.call_soon_threadsafe(queue.put_nowait, ("event", event))

    def run() -> None:
        try:
            work(emit)
            loop.call_soon_threadsafe(queue.put_nowait, ("end", None))
        except BaseException as exc:  # handed to the consumer, which re-raises it
            if not stopped.is_set():
                loop.call_soon_threadsafe(queue.put_nowait, ("error", exc))

    worker = loop.run_in_executor(None, run)
    try:
        while True:
            kind, item = await queue.get()
            if kind == "end":
                break
            if kind == "error":
                raise item
            yield cast(T, item)
    finally:
        stopped.set()
        await asyncio.shield(worker)
