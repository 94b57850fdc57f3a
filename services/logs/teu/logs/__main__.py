"""Entry point: ``python -m teu.logs --root R --run-dir D``."""

from __future__ import annotations

from teu.common.config import Config
from teu.common.server import Lifecycle, Service, main
from teu.logs.service import LogsServicer
from teu.logs.store import LogStore
from teu.logs.v1 import logs_pb2_grpc


async def build(cfg: Config) -> Lifecycle:
    """The logs service over the state directory ``<root>/logs``."""
    servicer = LogsServicer(LogStore(cfg.state_dir("logs")))
    return Lifecycle(
        services=[Service(logs_pb2_grpc.add_LogsServiceServicer_to_server, servicer, "teu.logs.v1.LogsService")]
    )


if __name__ == "__main__":
    main("logs", build)
