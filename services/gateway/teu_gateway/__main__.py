"""Entry point: ``python -m teu_gateway [--root R] [--run-dir D] [--tls-listen HOST:PORT --tls-ca ...]``."""

from __future__ import annotations

import asyncio

from teu_api.gateway.v1 import gateway_pb2_grpc as g
from teu_common.config import Config
from teu_common.server import Lifecycle, Service, main
from teu_gateway.backends import open_backends
from teu_gateway.build import builder
from teu_gateway.flows import Flows
from teu_gateway.images import ImagesServicer
from teu_gateway.networks import NetworksServicer
from teu_gateway.service import ContainersServicer
from teu_gateway.system import SystemServicer
from teu_gateway.volumes import VolumesServicer


async def build(cfg: Config) -> Lifecycle:
    """Connects to the backends and returns the public services."""
    backends = open_backends(cfg)
    flows = Flows(backends)
    build_dir = cfg.state_dir("gateway") / "build"
    left = builder.leftovers(build_dir)
    tidy = asyncio.create_task(builder.clean_up(flows, build_dir, *left))
    resume = asyncio.create_task(flows.resume_auto_removals())
    return Lifecycle(
        services=[
            Service(g.add_ContainersServiceServicer_to_server, ContainersServicer(flows), "teu.gateway.v1.ContainersService"),
            Service(g.add_ImagesServiceServicer_to_server, ImagesServicer(flows, build_dir), "teu.gateway.v1.ImagesService"),
            Service(g.add_SystemServiceServicer_to_server, SystemServicer(flows), "teu.gateway.v1.SystemService"),
            Service(g.add_NetworksServiceServicer_to_server, NetworksServicer(flows), "teu.gateway.v1.NetworksService"),
            Service(g.add_VolumesServiceServicer_to_server, VolumesServicer(flows), "teu.gateway.v1.VolumesService"),
        ],
        on_stop=backends.close,
        background=[resume, tidy],
    )


if __name__ == "__main__":
    main("gateway", build, tls=True)
