"""Operations on a container's filesystem, composed from the back ends: diff, commit, export and cp.

Storage owns the layers and each container's writable layer; the runtime owns the mounted root
filesystem of a running container. So a copy into a running container goes to the runtime, which
extracts it chrooted into that mount (overlayfs does not expect its upper dir to change under a
mount, and the chroot keeps every path the container can change inside it); everything else goes
to storage, which reads the layers without mounting them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

from teu_api.gateway.v1 import gateway_pb2 as gw
from teu_api.runtime.v1 import runtime_pb2 as rt
from teu_api.storage.v1 import storage_pb2 as st
from teu_api.types.v1 import types_pb2
from teu_gateway import convert, options
from teu_gateway.backends import Backends, call, stream

RUNNING = types_pb2.CONTAINER_STATE_RUNNING


class Filesystem:
    """diff, commit, export, cp for containers the caller has looked up."""

    def __init__(self, b: Backends) -> None:
        self.b = b

    async def measure(self, summaries: Sequence[gw.ContainerSummary], containers: Sequence[rt.Container]) -> None:
        """ps -s: each summary gets the bytes its container wrote, and that plus its image's size."""
        keys = [c.id for c in containers]
        sizes = (await call("storage", self.b.storage.SnapshotSizes(st.SnapshotSizesRequest(keys=keys)))).sizes
        images = {i.id: i.size for i in (await call("storage", self.b.storage.ListImages(st.ListImagesRequest()))).images}
        for s, c in zip(summaries, containers, strict=True):
            s.size_rw = sizes.get(c.id, 0)
            s.size_root_fs = s.size_rw + images.get(c.spec.image_id, 0)

    async def diff(self, c: rt.Container) -> list[gw.Change]:
        """The container's changes over its image (Docker's A/C/D)."""
        resp = await call("storage", self.b.storage.Diff(st.DiffRequest(key=c.id)))
        return [gw.Change(kind=ch.kind, path=ch.path) for ch in resp.changes]

    async def commit(self, c: rt.Container, request: gw.CommitRequest) -> gw.ImageSummary:
        """A new image: the container's image plus its changes, with its config and ``--change`` on top."""
        image = (await call("storage", self.b.storage.GetImage(st.GetImageRequest(ref=c.spec.image_id)))).image
        config = options.commit_config(c.spec, image.config, request.changes, request.changed)
        req = st.CommitRequest(key=c.id, ref=request.ref, config=config, message=request.message, author=request.author)
        return convert.image((await call("storage", self.b.storage.Commit(req))).image)

    async def export(self, c: rt.Container) -> AsyncIterator[bytes]:
        """The container's merged filesystem as a tar stream."""
        async for part in stream("storage", self.b.storage.Export(st.ExportRequest(key=c.id))):
            yield part.chunk

    async def copy_from(self, c: rt.Container, path: str) -> AsyncIterator[bytes]:
        """``path`` of the container (resolved in its view) as a tar stream."""
        async for part in stream("storage", self.b.storage.CopyFrom(st.CopyFromRequest(key=c.id, path=path))):
            yield part.chunk

    async def copy_to(self, c: rt.Container, path: str, chunks: AsyncIterator[bytes]) -> int:
        """Extracts the tar in ``chunks`` into directory ``path`` of the container; the members extracted."""
        if c.state == RUNNING:

            async def into_running() -> AsyncIterator[rt.CopyToRequest]:
                yield rt.CopyToRequest(header=rt.CopyToHeader(id=c.id, path=path))
                async for chunk in chunks:
                    yield rt.CopyToRequest(chunk=chunk)

            return int((await call("runtime", self.b.runtime.CopyTo(into_running()))).files)

        async def into_stopped() -> AsyncIterator[st.CopyToRequest]:
            yield st.CopyToRequest(header=st.CopyToHeader(key=c.id, path=path))
            async for chunk in chunks:
                yield st.CopyToRequest(chunk=chunk)

        return int((await call("storage", self.b.storage.CopyTo(into_stopped()))).files)
