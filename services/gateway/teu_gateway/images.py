"""gRPC adapter of the public ImagesService: relays to the storage service."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

from teu_api.gateway.v1 import gateway_pb2 as gw
from teu_api.gateway.v1 import gateway_pb2_grpc
from teu_api.storage.v1 import storage_pb2 as st
from teu_common.rpctypes import Ctx
from teu_gateway import convert, listing
from teu_gateway.backends import call, stream
from teu_gateway.build import builder
from teu_gateway.flows import Flows


class ImagesServicer(gateway_pb2_grpc.ImagesServiceServicer):
    """Image operations."""

    def __init__(self, flows: Flows, build_dir: Path) -> None:
        self.st = flows.b.storage
        self.flows = flows
        self.build_dir = build_dir

    async def Build(self, request_iterator: AsyncIterator[gw.BuildRequest], context: Ctx) -> AsyncIterator[gw.BuildResponse]:
        async for resp in builder.build(self.flows, self.build_dir, request_iterator):
            yield resp

    async def Import(self, request_iterator: AsyncIterator[gw.ImportRequest], context: Ctx) -> gw.ImportResponse:
        async def forward() -> AsyncIterator[st.ImportImageRequest]:
            async for part in request_iterator:
                if part.HasField("header"):
                    h = part.header
                    yield st.ImportImageRequest(header=st.ImportHeader(ref=h.ref, config=h.config, url=h.url))
                else:
                    yield st.ImportImageRequest(chunk=part.chunk)

        resp = await call("storage", self.st.ImportImage(forward()))
        return gw.ImportResponse(image=convert.image(resp.image))

    async def ListImages(self, request: gw.ListImagesRequest, context: Ctx) -> gw.ListImagesResponse:
        resp = await call("storage", self.st.ListImages(st.ListImagesRequest()))
        images = list(resp.images) if request.all else listing.without_intermediate(list(resp.images))
        chosen = listing.select_images(images, list(request.filters))
        return gw.ListImagesResponse(images=[convert.image(i) for i in chosen])

    async def InspectImage(self, request: gw.InspectImageRequest, context: Ctx) -> gw.InspectImageResponse:
        resp = await call("storage", self.st.GetImage(st.GetImageRequest(ref=request.image)))
        return gw.InspectImageResponse(image=convert.image(resp.image))

    async def Tag(self, request: gw.TagRequest, context: Ctx) -> gw.TagResponse:
        resp = await call("storage", self.st.TagImage(st.TagImageRequest(source=request.source, target=request.target)))
        return gw.TagResponse(image=convert.image(resp.image))

    async def RemoveImage(self, request: gw.RemoveImageRequest, context: Ctx) -> gw.RemoveImageResponse:
        resp = await call("storage", self.st.RemoveImage(st.RemoveImageRequest(ref=request.image, force=request.force)))
        return gw.RemoveImageResponse(untagged=list(resp.untagged), deleted=list(resp.deleted))

    async def History(self, request: gw.HistoryRequest, context: Ctx) -> gw.HistoryResponse:
        resp = await call("storage", self.st.History(st.HistoryRequest(ref=request.image)))
        return gw.HistoryResponse(
            entries=[
                gw.HistoryEntry(id=e.id, created_at=e.created_at, created_by=e.created_by, size=e.size, comment=e.comment)
                for e in resp.entries
            ]
        )

    async def Save(self, request: gw.SaveRequest, context: Ctx) -> AsyncIterator[gw.SaveResponse]:
        req = st.SaveImagesRequest(refs=list(request.images), format=request.format)
        async for part in stream("storage", self.st.SaveImages(req)):
            yield gw.SaveResponse(chunk=part.chunk)

    async def Load(self, request_iterator: AsyncIterator[gw.LoadRequest], context: Ctx) -> gw.LoadResponse:
        async def forward() -> AsyncIterator[st.LoadImagesRequest]:
            async for part in request_iterator:
                yield st.LoadImagesRequest(chunk=part.chunk)

        resp = await call("storage", self.st.LoadImages(forward()))
        return gw.LoadResponse(images=[convert.image(i) for i in resp.images])

    async def Pull(self, request: gw.PullRequest, context: Ctx) -> AsyncIterator[gw.PullResponse]:
        req = st.PullRequest(ref=request.image, insecure=request.insecure, auth=request.auth)  # that registry's only
        async for part in stream("storage", self.st.Pull(req)):
            if part.WhichOneof("part") == "image":
                yield gw.PullResponse(image=convert.image(part.image))
            else:
                yield gw.PullResponse(progress=convert.progress(part.progress))

    async def Push(self, request: gw.PushRequest, context: Ctx) -> AsyncIterator[gw.PushResponse]:
        req = st.PushRequest(ref=request.image, insecure=request.insecure, auth=request.auth)  # that registry's only
        async for part in stream("storage", self.st.Push(req)):
            if part.WhichOneof("part") == "digest":
                yield gw.PushResponse(digest=part.digest)
            else:
                yield gw.PushResponse(progress=convert.progress(part.progress))

    async def PruneImages(self, request: gw.PruneImagesRequest, context: Ctx) -> gw.PruneImagesResponse:
        resp = await call("storage", self.st.Prune(st.PruneRequest(all=request.all, filters=list(request.filters))))
        return gw.PruneImagesResponse(deleted=list(resp.deleted), reclaimed=resp.reclaimed)
