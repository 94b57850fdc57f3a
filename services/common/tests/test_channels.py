"""Channels between services: a call to a service that just died fails, it does not wait for ever."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from teu_common.channels import connect
from teu_common.config import Config


def test_a_call_right_after_the_service_died_fails_unavailable(tmp_path: Path) -> None:
    cfg = Config(root=tmp_path, run_dir=tmp_path, metrics_port_base=0)

    async def main() -> None:
        server = grpc.aio.server()
        health_pb2_grpc.add_HealthServicer_to_server(health.aio.HealthServicer(), server)
        server.add_insecure_port(f"unix:{cfg.socket('storage')}")
        await server.start()
        channel = connect(cfg, "storage", patience=0.5)
        stub = health_pb2_grpc.HealthStub(channel)
        await stub.Check(health_pb2.HealthCheckRequest())  # the channel is READY
        await server.stop(None)  # the service dies and does not come back
        for _ in range(2):
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await asyncio.wait_for(stub.Check(health_pb2.HealthCheckRequest()), 10)
            assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
        await channel.close()

    asyncio.run(main())
