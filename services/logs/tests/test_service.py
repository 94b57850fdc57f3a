"""Tests of the LogsService over a real grpc.aio server on a unix socket."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

import grpc
import pytest

from teu_api.logs.v1 import logs_pb2, logs_pb2_grpc
from teu_api.types.v1 import types_pb2
from teu_common.interceptor import ErrorInterceptor
from teu_logs.logdirs import LogStore
from teu_logs.segments import LogDir
from teu_logs.service import LogsServicer

CID = "ab" * 32
TS = b"2026-11-30T06:24:30.027115861+00:00"

Scenario = Callable[[logs_pb2_grpc.LogsServiceStub], Awaitable[None]]


def is_open(path: Path) -> bool:
    """Whether a descriptor of this process refers to ``path``."""
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}") == str(path):
                return True
        except OSError:
            continue
    return False


def serve(root: Path, scenario: Scenario) -> None:
    """Runs ``scenario`` against a logs server over ``root``, then stops the server."""

    async def main() -> None:
        server = grpc.aio.server(interceptors=[ErrorInterceptor()])
        logs_pb2_grpc.add_LogsServiceServicer_to_server(LogsServicer(LogStore(root)), server)
        sock = root / "logs.sock"
        server.add_insecure_port(f"unix:{sock}")
        await server.start()
        try:
            async with grpc.aio.insecure_channel(f"unix:{sock}") as channel:
                await asyncio.wait_for(scenario(logs_pb2_grpc.LogsServiceStub(channel)), 5)
        finally:
            await server.stop(None)

    asyncio.run(main())


def test_prepare_read_remove_round_trip(tmp_path: Path) -> None:
    """PrepareLog gives the path conmon writes, ReadLog serves it (records or chunks), RemoveLog deletes it once."""

    async def scenario(stub: logs_pb2_grpc.LogsServiceStub) -> None:
        path = Path((await stub.PrepareLog(logs_pb2.PrepareLogRequest(container_id=CID))).path)
        assert path == tmp_path / CID / "ctr.log"
        assert path.parent.is_dir() and not path.exists()
        path.write_bytes(TS + b" stdout F hi\n" + TS + b" stderr P \xff\x00\n")
        request = logs_pb2.ReadLogRequest(container_id=CID, timestamps=True)
        responses = [r async for r in stub.ReadLog(request)]
        assert [list(r.records) for r in responses] == [
            [
                logs_pb2.LogRecord(timestamp=1796019870027115861, stream=types_pb2.STREAM_STDOUT, data=b"hi\n"),
                logs_pb2.LogRecord(timestamp=1796019870027115861, stream=types_pb2.STREAM_STDERR, data=b"\xff\x00", partial=True),
            ]
        ]
        assert responses[-1].offset == path.stat().st_size
        chunks = [c for r in [r async for r in stub.ReadLog(logs_pb2.ReadLogRequest(container_id=CID))] for c in r.chunks]
        assert chunks == [
            logs_pb2.LogChunk(stream=types_pb2.STREAM_STDOUT, data=b"hi\n"),
            logs_pb2.LogChunk(stream=types_pb2.STREAM_STDERR, data=b"\xff\x00"),
        ]
        usage = await stub.GetLogUsage(logs_pb2.GetLogUsageRequest())
        assert (usage.bytes, usage.logs) == (path.stat().st_size, 1)
        assert (await stub.RemoveLog(logs_pb2.RemoveLogRequest(container_id=CID))).removed
        assert not (await stub.RemoveLog(logs_pb2.RemoveLogRequest(container_id=CID))).removed
        usage = await stub.GetLogUsage(logs_pb2.GetLogUsageRequest())
        assert (usage.bytes, usage.logs) == (0, 0)

    serve(tmp_path, scenario)


def test_configure_log_applies_defaults_and_persists(tmp_path: Path) -> None:
    """ConfigureLog answers with the values in force (0 = engine default) and keeps them in the log's state."""

    async def scenario(stub: logs_pb2_grpc.LogsServiceStub) -> None:
        await stub.PrepareLog(logs_pb2.PrepareLogRequest(container_id=CID))
        response = await stub.ConfigureLog(logs_pb2.ConfigureLogRequest(container_id=CID, max_files=3))
        assert (response.max_size, response.max_files) == (20 * 1024 * 1024, 3)
        cfg = LogDir(tmp_path / CID).config
        assert cfg is not None and (cfg.max_size, cfg.max_files) == (20 * 1024 * 1024, 3)
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await stub.ConfigureLog(logs_pb2.ConfigureLogRequest(container_id=CID, max_size=-1))
        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await stub.ConfigureLog(logs_pb2.ConfigureLogRequest(container_id="ef" * 32))
        assert raised.value.code() == grpc.StatusCode.NOT_FOUND

    serve(tmp_path, scenario)


def test_follow_until_cancelled(tmp_path: Path) -> None:
    """A follow stream delivers records appended later; a client cancel makes the server close the log."""

    async def scenario(stub: logs_pb2_grpc.LogsServiceStub) -> None:
        path = Path((await stub.PrepareLog(logs_pb2.PrepareLogRequest(container_id=CID))).path)
        call = stub.ReadLog(logs_pb2.ReadLogRequest(container_id=CID, follow=True))
        await asyncio.sleep(0.05)
        path.write_bytes(TS + b" stdout F late\n")
        response = await call.read()
        assert [c.data for c in response.chunks] == [b"late\n"]
        assert is_open(path)
        call.cancel()
        assert call.cancelled()
        for _ in range(100):
            if not is_open(path):
                return
            await asyncio.sleep(0.01)
        pytest.fail("the server kept the log open after the client cancelled")

    serve(tmp_path, scenario)


@pytest.mark.parametrize(
    ("request_", "code"),
    [
        (logs_pb2.ReadLogRequest(container_id=CID), grpc.StatusCode.NOT_FOUND),
        (logs_pb2.ReadLogRequest(container_id="ABC"), grpc.StatusCode.INVALID_ARGUMENT),
        (logs_pb2.ReadLogRequest(container_id=CID, offset=-1), grpc.StatusCode.INVALID_ARGUMENT),
        (logs_pb2.ReadLogRequest(container_id=CID, grep="(unclosed"), grpc.StatusCode.INVALID_ARGUMENT),
        (logs_pb2.ReadLogRequest(container_id=CID, streams=[types_pb2.STREAM_UNSPECIFIED]), grpc.StatusCode.INVALID_ARGUMENT),
    ],
)
def test_read_errors(tmp_path: Path, request_: logs_pb2.ReadLogRequest, code: grpc.StatusCode) -> None:
    """An unknown container is NOT_FOUND; a malformed id, offset, pattern or stream INVALID_ARGUMENT."""

    async def scenario(stub: logs_pb2_grpc.LogsServiceStub) -> None:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            _ = [r async for r in stub.ReadLog(request_)]
        assert raised.value.code() == code

    serve(tmp_path, scenario)


def test_prepare_rejects_path_like_ids(tmp_path: Path) -> None:
    """A container id that is not 64 lowercase hex digits never becomes a path."""

    async def scenario(stub: logs_pb2_grpc.LogsServiceStub) -> None:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await stub.PrepareLog(logs_pb2.PrepareLogRequest(container_id="../" + "a" * 61))
        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT

    serve(tmp_path, scenario)
