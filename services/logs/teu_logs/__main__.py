"""Entry point: ``python -m teu_logs --root R --run-dir D``."""

from __future__ import annotations

import asyncio

import grpc
from prometheus_client import REGISTRY

from teu_api.logs.v1 import logs_pb2_grpc
from teu_common.channels import connect
from teu_common.config import Config
from teu_common.server import Lifecycle, Service, main
from teu_logs.logdirs import LogStore
from teu_logs.metrics import LogCollector
from teu_logs.reopen import RuntimeReopen
from teu_logs.service import LogsServicer


async def build(cfg: Config) -> Lifecycle:
    """The logs service over the state directory ``<root>/logs``, with its rotation task."""
    reopen = RuntimeReopen(cfg)
    store = LogStore(cfg.state_dir("logs"), reopen=reopen)
    # First round now: logs that outgrew their bound while the service was down rotate at once.
    await store.tick()
    rotation = asyncio.create_task(store.maintain(), name="log-rotation")
    runtime = connect(cfg, "runtime", patience=0)  # a scrape must not wait for a restarting runtime
    REGISTRY.register(LogCollector(store, runtime, asyncio.get_running_loop()))
    return Lifecycle(
        services=[Service(logs_pb2_grpc.add_LogsServiceServicer_to_server, LogsServicer(store), "teu.logs.v1.LogsService")],
        on_stop=lambda: _close(reopen, runtime),
        background=[rotation],
    )


async def _close(reopen: RuntimeReopen, runtime: grpc.aio.Channel) -> None:
    await reopen.close()
    await runtime.close()


if __name__ == "__main__":
    main("logs", build)
