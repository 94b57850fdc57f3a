"""The SDK's image and filesystem operations (mixed into :class:`teu.client.Client`)."""

from __future__ import annotations

import builtins
import io
import tarfile
from collections.abc import Iterable, Iterator, Sequence
from typing import BinaryIO

from teu._rpc import stream, unary
from teu.changes import changes as parse_changes
from teu.changes import fields
from teu.errors import NotFound
from teu_api.gateway.v1 import gateway_pb2 as gw
from teu_api.gateway.v1 import gateway_pb2_grpc
from teu_api.types.v1 import types_pb2

CHUNK = 1 << 20
STAT_BYTES = 8 * tarfile.BLOCKSIZE  # enough for a path's header and a PAX header before it


def chunks_of(source: BinaryIO) -> Iterator[bytes]:
    """``source`` read in 1 MiB pieces."""
    while chunk := source.read(CHUNK):
        yield chunk


class ImagesMixin:
    """diff, commit, export, cp, tag, rmi, history, save, load, pull, push, prune."""

    containers: gateway_pb2_grpc.ContainersServiceStub
    images: gateway_pb2_grpc.ImagesServiceStub

    def diff(self, container: str) -> builtins.list[gw.Change]:
        """Changes to a container's filesystem."""
        return list(unary(self.containers.Diff, gw.DiffRequest(container=container)).changes)

    def commit(self, container: str, ref: str = "", message: str = "", author: str = "",
               changes: Sequence[str] = ()) -> gw.ImageSummary:  # fmt: skip
        """Makes an image of a container; ``changes`` are Dockerfile instructions (CMD, ENV...)."""
        req = gw.CommitRequest(container=container, ref=ref, message=message, author=author,
                               changes=parse_changes(list(changes)), changed=fields(list(changes)))  # fmt: skip
        return unary(self.containers.Commit, req).image

    def export(self, container: str) -> Iterator[bytes]:
        """A container's filesystem as tar chunks."""
        for part in stream(self.containers.Export(gw.ExportRequest(container=container))):
            yield part.chunk

    def copy_from_tar(self, container: str, path: str) -> Iterator[bytes]:
        """A path of a container as tar chunks."""
        for part in stream(self.containers.CopyFrom(gw.CopyFromRequest(container=container, path=path))):
            yield part.chunk

    def stat_path(self, container: str, path: str) -> tarfile.TarInfo:
        """What a container's ``path`` is (its name, kind, size, mode, mtime, link target), as
        Docker's HEAD of /containers/{id}/archive tells: the first entry of CopyFrom's tar, whose
        contents are not read. NotFound when there is nothing at ``path``."""
        call = self.containers.CopyFrom(gw.CopyFromRequest(container=container, path=path))
        head = b""
        try:
            for part in stream(call):
                head += part.chunk
                if len(head) >= STAT_BYTES:
                    break
        finally:
            call.cancel()
        with tarfile.open(fileobj=io.BytesIO(head), mode="r|") as tf:
            first = tf.next()
        if first is None:
            raise NotFound(f"nothing at {path} in container {container}")
        return first

    def copy_from(self, container: str, path: str) -> dict[str, bytes]:
        """The regular files under a container's ``path``, by their name in the tar."""
        data = b"".join(self.copy_from_tar(container, path))
        out = {}
        with tarfile.open(fileobj=io.BytesIO(data)) as tf:
            for member in tf.getmembers():
                f = tf.extractfile(member) if member.isfile() else None
                if f is not None:
                    out[member.name] = f.read()
        return out

    def copy_to(self, container: str, path: str, tar: Iterable[bytes]) -> int:
        """Extracts a tar stream into a directory of a (stopped) container; returns files written."""

        def parts() -> Iterator[gw.CopyToRequest]:
            yield gw.CopyToRequest(header=gw.CopyToHeader(container=container, path=path))
            for chunk in tar:
                yield gw.CopyToRequest(chunk=chunk)

        return int(unary(self.containers.CopyTo, parts()).files)

    def tag(self, source: str, target: str) -> gw.ImageSummary:
        """Adds a name to an image."""
        return unary(self.images.Tag, gw.TagRequest(source=source, target=target)).image

    def remove_image(self, image: str, force: bool = False) -> gw.RemoveImageResponse:
        """Removes a name (and the image once unnamed and unused)."""
        return unary(self.images.RemoveImage, gw.RemoveImageRequest(image=image, force=force))

    def history(self, image: str) -> builtins.list[gw.HistoryEntry]:
        """An image's history, newest first."""
        return list(unary(self.images.History, gw.HistoryRequest(image=image)).entries)

    def save(self, images: Sequence[str], format: str = "docker-archive") -> Iterator[bytes]:
        """Images as archive chunks."""
        for part in stream(self.images.Save(gw.SaveRequest(images=list(images), format=format))):
            yield part.chunk

    def load(self, source: BinaryIO) -> builtins.list[gw.ImageSummary]:
        """Loads images from an archive."""
        req = (gw.LoadRequest(chunk=c) for c in chunks_of(source))
        return list(unary(self.images.Load, req).images)

    def pull(self, image: str, insecure: bool = False,
             auth: types_pb2.RegistryAuth | None = None) -> Iterator[gw.PullResponse]:  # fmt: skip
        """Pulls an image: progress frames, then the image. ``auth``: credentials for its registry
        (see :func:`teu.auth.lookup`); the engine sends them to that registry only."""
        yield from stream(self.images.Pull(gw.PullRequest(image=image, insecure=insecure, auth=auth)))

    def push(self, image: str, insecure: bool = False,
             auth: types_pb2.RegistryAuth | None = None) -> Iterator[gw.PushResponse]:  # fmt: skip
        """Pushes an image: progress frames, then the manifest digest. ``auth``: credentials for its
        registry (see :func:`teu.auth.lookup`); the engine sends them to that registry only."""
        yield from stream(self.images.Push(gw.PushRequest(image=image, insecure=insecure, auth=auth)))

    def build(self, context: Iterable[bytes], options: gw.BuildOptions | None = None) -> Iterator[gw.BuildResponse]:
        """Builds an image from a context tar (plain or compressed, in chunks; see
        :func:`teu.build.context_tar`): progress lines and RUN output, then the result. A failing
        step raises its error (a RUN's exit code in its message) and tags nothing."""

        def parts() -> Iterator[gw.BuildRequest]:
            yield gw.BuildRequest(options=options or gw.BuildOptions())
            for chunk in context:
                yield gw.BuildRequest(chunk=chunk)

        yield from stream(self.images.Build(parts()))

    def prune_images(self, all: bool = False, filters: Sequence[str] = ()) -> gw.PruneImagesResponse:
        """Removes unused images (untagged ones, or all with ``all``) matching every filter: until=,
        label=, label!=."""
        return unary(self.images.PruneImages, gw.PruneImagesRequest(all=all, filters=list(filters)))

    def import_image(self, source: BinaryIO | None, ref: str = "", config: types_pb2.ImageConfig | None = None,
                     url: str = "") -> gw.ImageSummary:  # fmt: skip
        """Makes a one-layer image from a tar stream, or from an http(s) URL."""

        def parts() -> Iterator[gw.ImportRequest]:
            yield gw.ImportRequest(header=gw.ImportHeader(ref=ref, config=config or types_pb2.ImageConfig(), url=url))
            if source is not None:
                for chunk in chunks_of(source):
                    yield gw.ImportRequest(chunk=chunk)

        return unary(self.images.Import, parts()).image
