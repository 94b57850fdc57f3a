"""Asking the runtime, conmon's one owner, to have a container's conmon reopen its log.

This is the logs service's one call to another back end that changes anything (its metrics ask the
runtime for containers' names, see metrics.py): conmon's control fifo has a single writer,
the runtime, and only the logs service knows when a log was rotated. A runtime that cannot be reached
means the reopen is asked again later (see rotation.py); conmon's own bound keeps the log within its
limits meanwhile.
"""

from __future__ import annotations

import grpc
import structlog

from teu_api.runtime.v1 import runtime_pb2, runtime_pb2_grpc
from teu_common.channels import connect
from teu_common.config import Config

log = structlog.get_logger()

#: How long one reopen request may take: the runtime answers at once, or is restarting.
TIMEOUT = 2.0


class RuntimeReopen:
    """The :data:`teu_logs.rotation.Reopen` of a running engine: ReopenLog on the runtime service."""

    def __init__(self, cfg: Config) -> None:
        self._channel = connect(cfg, "runtime", patience=0)  # rotation must not wait: it asks again later
        self._runtime = runtime_pb2_grpc.RuntimeServiceStub(self._channel)

    async def __call__(self, container_id: str) -> bool | None:
        """True once conmon was asked, False when none listens (or the runtime knows no such
        container), None when the runtime could not answer."""
        try:
            resp = await self._runtime.ReopenLog(runtime_pb2.ReopenLogRequest(id=container_id), timeout=TIMEOUT)
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                return False
            log.warning("log_reopen_failed", container_id=container_id, code=exc.code().name, error=exc.details())
            return None
        return resp.reopened

    async def close(self) -> None:
        """Closes the channel."""
        await self._channel.close()
