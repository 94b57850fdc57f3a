"""gRPC adapter of the public NetworksService: relays to the runtime service, which owns networks."""

from __future__ import annotations

import time

from teu_api.errors import FailedPrecondition, NotFound
from teu_api.gateway.v1 import gateway_pb2 as gw
from teu_api.gateway.v1 import gateway_pb2_grpc
from teu_api.prunefilter import prune_filter
from teu_api.runtime.v1 import runtime_pb2 as rt
from teu_common.rpctypes import Ctx
from teu_gateway import limits, listing, netopts
from teu_gateway.backends import call
from teu_gateway.flows import Flows


class NetworksServicer(gateway_pb2_grpc.NetworksServiceServicer):
    """Networks, owned by the runtime service: the gateway only relays."""

    def __init__(self, flows: Flows) -> None:
        self.rt = flows.b.runtime

    async def CreateNetwork(self, request: gw.CreateNetworkRequest, context: Ctx) -> gw.CreateNetworkResponse:
        limits.check_labels(request.labels)
        r = request
        req = rt.CreateNetworkRequest(name=r.name, subnet=r.subnet, gateway=r.gateway, ip_range=r.ip_range, internal=r.internal,
                                      labels=r.labels)  # fmt: skip
        resp: rt.CreateNetworkResponse = await call("runtime", self.rt.CreateNetwork(req))
        return gw.CreateNetworkResponse(network=resp.network)

    async def ListNetworks(self, request: gw.ListNetworksRequest, context: Ctx) -> gw.ListNetworksResponse:
        resp: rt.ListNetworksResponse = await call("runtime", self.rt.ListNetworks(rt.ListNetworksRequest()))
        chosen = listing.select_networks(list(resp.networks), list(request.filters))
        return gw.ListNetworksResponse(networks=chosen)

    async def InspectNetwork(self, request: gw.InspectNetworkRequest, context: Ctx) -> gw.InspectNetworkResponse:
        resp: rt.GetNetworkResponse = await call("runtime", self.rt.GetNetwork(rt.GetNetworkRequest(ref=request.network)))
        return gw.InspectNetworkResponse(network=resp.network)

    async def RemoveNetwork(self, request: gw.RemoveNetworkRequest, context: Ctx) -> gw.RemoveNetworkResponse:
        req = rt.RemoveNetworkRequest(ref=request.network)
        resp: rt.RemoveNetworkResponse = await call("runtime", self.rt.RemoveNetwork(req))
        return gw.RemoveNetworkResponse(network=resp.network)

    async def PruneNetworks(self, request: gw.PruneNetworksRequest, context: Ctx) -> gw.PruneNetworksResponse:
        kept = prune_filter(list(request.filters), time.time_ns())
        resp: rt.ListNetworksResponse = await call("runtime", self.rt.ListNetworks(rt.ListNetworksRequest()))
        deleted = []
        for n in resp.networks:
            if n.name == listing.DEFAULT_NETWORK or n.containers or not kept(n.created_at, n.labels):
                continue
            try:
                await call("runtime", self.rt.RemoveNetwork(rt.RemoveNetworkRequest(ref=n.id)))
            except (FailedPrecondition, NotFound):
                continue  # a stopped container is on it, or it went meanwhile
            deleted.append(n.name)
        return gw.PruneNetworksResponse(deleted=deleted)

    async def ConnectNetwork(self, request: gw.ConnectNetworkRequest, context: Ctx) -> gw.ConnectNetworkResponse:
        limits.check_length(request.container, limits.MAX_REF, "container")
        aliases = netopts.aliases(list(request.aliases), request.network)
        req = rt.ConnectNetworkRequest(container=request.container, network=request.network, ip=request.ip, aliases=aliases)
        resp: rt.ConnectNetworkResponse = await call("runtime", self.rt.ConnectNetwork(req))
        return gw.ConnectNetworkResponse(attachment=resp.attachment)

    async def DisconnectNetwork(self, request: gw.DisconnectNetworkRequest, context: Ctx) -> gw.DisconnectNetworkResponse:
        limits.check_length(request.container, limits.MAX_REF, "container")
        req = rt.DisconnectNetworkRequest(container=request.container, network=request.network, force=request.force)
        await call("runtime", self.rt.DisconnectNetwork(req))
        return gw.DisconnectNetworkResponse()
