"""Entry point: ``python -m teu_storage --root R --run-dir D``."""

from __future__ import annotations

import asyncio

from prometheus_client import REGISTRY

from teu_api.storage.v1 import storage_pb2_grpc
from teu_common.config import Config
from teu_common.server import Lifecycle, Service, main
from teu_storage.metrics import StorageCollector
from teu_storage.service import StorageServicer
from teu_storage.storage import Storage


async def build(cfg: Config) -> Lifecycle:
    """Opens the store in the storage state dir and wires it to the gRPC service."""
    storage = await asyncio.to_thread(Storage.open, cfg.state_dir("storage"))

    async def on_stop() -> None:
        await asyncio.to_thread(storage.close)

    REGISTRY.register(StorageCollector(storage))
    servicer = StorageServicer(storage)
    return Lifecycle(
        services=[
            Service(
                storage_pb2_grpc.add_StorageServiceServicer_to_server,
                servicer,
                "teu.storage.v1.StorageService",
            )
        ],
        on_stop=on_stop,
    )


if __name__ == "__main__":
    main("storage", build)
