"""Entry point: ``python -m teu_cri [--root R] [--run-dir D]``: the CRI on ``<run-dir>/cri.sock``."""

from __future__ import annotations

from teu_api.k8s.cri.v1 import api_pb2_grpc as cri_grpc
from teu_common.config import Config
from teu_common.frontdoor import Gateway
from teu_common.server import Lifecycle, Service, main
from teu_cri.containers import Containers
from teu_cri.images import Images
from teu_cri.pods import Pods, Settings
from teu_cri.service import ImageServicer, RuntimeServicer
from teu_cri.streaming import StreamingServer


async def build(cfg: Config) -> Lifecycle:
    """The CRI's two services over one channel to the gateway, and its streaming server."""
    gateway = Gateway(cfg)
    pods = Pods(gateway, Settings.from_env())
    streaming = StreamingServer.from_env(gateway)
    await streaming.start()
    runtime = RuntimeServicer(gateway, pods, Containers(gateway, pods), streaming)

    async def stop() -> None:
        await streaming.close()
        await gateway.close()

    return Lifecycle(
        services=[
            Service(cri_grpc.add_RuntimeServiceServicer_to_server, runtime, "runtime.v1.RuntimeService"),
            Service(cri_grpc.add_ImageServiceServicer_to_server, ImageServicer(Images(gateway)), "runtime.v1.ImageService"),
        ],
        on_stop=stop,
    )


if __name__ == "__main__":
    main("cri", build)
