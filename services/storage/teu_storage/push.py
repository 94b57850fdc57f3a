"""Pushing images to registries (OCI distribution API v2).

For each layer, the registry is asked (HEAD) whether it holds a blob already known to carry that
layer (blobs pulled, and earlier uploads: LayerStore.blobs_of); if not, it is asked to mount one
from another repository of the same registry where the blob was seen; only then is the layer
rebuilt from its tar-split, gzip-compressed (deterministically: no name, no mtime) and uploaded in
one PUT. Then the config, then an OCI image manifest.

What a caller may rely on: Teu always writes OCI media types, whatever a pulled image came as; the
layers pushed are the exact bytes of the image's diff ids; every blob the registry is found or made
to hold is recorded, so pushing again uploads nothing.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path
from typing import IO, cast

import structlog

from teu_api.errors import Internal, Unavailable
from teu_storage import distribution, ocispec
from teu_storage.credentials import Credentials
from teu_storage.distribution import Client, expect
from teu_storage.images import Images
from teu_storage.layerstore import LayerStore
from teu_storage.metadata import Blob, Image
from teu_storage.ocispec import OCI_CONFIG, OCI_LAYER, OCI_LAYER_GZIP, OCI_MANIFEST
from teu_storage.remote import Aborted, Emit, Meter, Progress, Remote, connect, parse_remote, run_all
from teu_storage.threadio import HashingFile

__all__ = ["Pusher"]

log = structlog.get_logger()

_CANDIDATES = 4  # known blobs of one layer worth asking a registry about
# Level 1: on a fast link (or loopback) compression is the bottleneck; the size gain of 6 is ~10%.
_GZIP_LEVEL = 1


class Pusher:
    """Pushes images of ``images``, their layers read from ``layers``."""

    def __init__(self, layers: LayerStore, images: Images) -> None:
        self._layers = layers
        self._images = images

    def push(self, ref: str, insecure: bool, emit: Emit, *, credentials: Credentials | None = None) -> str:
        """Pushes the image tagged ``ref`` ("registry/name[:tag]") and returns the manifest digest.

        ``credentials`` are for ``ref``'s registry (None: anonymous). NotFound if no image is tagged
        ``ref``, before the registry is contacted; registry errors as in :meth:`Puller.pull`.
        """
        remote = parse_remote(ref, allow_digest=False)
        image = self._images.get(f"{remote.name}:{remote.tag}")  # a push reference always has a tag
        client = connect(remote, insecure, credentials)
        try:
            return _Push(self._layers, self._images, client, remote, emit).run(image)
        finally:
            client.close()


class _Push:
    """One push (see :meth:`Pusher.push`)."""

    def __init__(self, layers: LayerStore, images: Images, client: Client, remote: Remote, emit: Emit) -> None:
        self.layers = layers
        self.images = images
        self.client = client
        self.remote = remote
        self.emit = emit
        self.repo = remote.repository

    def run(self, image: Image) -> str:
        started = time.monotonic()
        config = self.images.config(image.id)
        unique = list(dict.fromkeys(image.layers))
        with self.layers.pinning() as pins:
            self.layers.pin_existing(image.layers, pins)
            blobs = dict(zip(unique, run_all(unique, self._layer), strict=True))
            self._config(image.id, config)
        manifest = _manifest(image, config, blobs)
        digest = ocispec.digest(manifest)
        path = f"/v2/{self.repo}/manifests/{self.remote.tag}"
        request = self.client.request("PUT", path, headers={"Content-Type": OCI_MANIFEST}, body=manifest)
        with expect(request, (201,), f"manifest {self.remote}") as resp:
            claimed = resp.header("Docker-Content-Digest")
        if claimed and claimed != digest:
            raise Internal(f"registry {self.remote.registry} stored manifest {claimed}, not {digest}")
        log.info(
            "image_pushed",
            ref=str(self.remote),
            image_id=image.id,
            manifest=digest,
            layers=len(image.layers),
            seconds=round(time.monotonic() - started, 3),
        )
        return digest

    def _layer(self, diff_id: str, abort: threading.Event) -> Blob:
        """Makes sure the registry holds a blob of layer ``diff_id``: found, mounted or uploaded."""
        known = [b for b in self.layers.blobs_of(diff_id) if b.media_type in (OCI_LAYER_GZIP, OCI_LAYER)]
        known = known[:_CANDIDATES]
        for blob in known:
            if self._has(blob.digest):
                self.emit(Progress(blob.digest, blob.size, blob.size, "exists"))
                return self._seen(blob)
        location = None
        for blob in known:
            for source in self.layers.repositories_with(self.remote.registry, blob.digest):
                if source != self.repo:
                    mounted, location = self._mount(blob.digest, source, location)
                    if mounted:
                        self.emit(Progress(blob.digest, blob.size, blob.size, "mounted"))
                        return self._seen(blob)
        self.emit(Progress(diff_id, 0, 0, "compressing"))
        blob, path = self._compress(diff_id, abort)
        try:
            self.layers.record_blobs([blob])
            if blob.digest not in {b.digest for b in known} and self._has(blob.digest):
                self.emit(Progress(blob.digest, blob.size, blob.size, "exists"))
            else:
                with open(path, "rb") as body:
                    self._upload(blob.digest, blob.size, body, location, abort)
        finally:
            path.unlink(missing_ok=True)
        return self._seen(blob)

    def _config(self, image_id: str, config: bytes) -> None:
        if self._has(image_id):
            self.emit(Progress(image_id, len(config), len(config), "exists"))
        else:
            self._upload(image_id, len(config), config, None, threading.Event())

    def _seen(self, blob: Blob) -> Blob:
        self.layers.record_blobs([blob], self.remote.registry, self.repo)
        return blob

    def _has(self, digest: str) -> bool:
        with self.client.request("HEAD", f"/v2/{self.repo}/blobs/{digest}") as resp:
            if resp.status == 200:
                return True
            if resp.status == 404:
                return False
            raise distribution.error_for(resp, f"blob {digest} in {self.remote.name}")

    def _mount(self, digest: str, source: str, location: str | None) -> tuple[bool, str | None]:
        """Asks for a cross-repository mount: (mounted, else the upload location the registry opened)."""
        query = urllib.parse.urlencode({"mount": digest, "from": source})
        with self.client.request("POST", f"/v2/{self.repo}/blobs/uploads/?{query}") as resp:
            if resp.status == 201:
                return True, location
            if resp.status == 202:
                return False, resp.header("Location") or location
            # A registry that cannot mount (or may not read the source) still takes uploads.
            log.info("registry_mount_refused", digest=digest, source=source, status=resp.status)
            return False, location

    def _compress(self, diff_id: str, abort: threading.Event) -> tuple[Blob, Path]:
        """The layer's exact tar, gzip-compressed into tmp/: (its blob, the file)."""
        fd, name = tempfile.mkstemp(prefix="push-", suffix=".tar.gz", dir=self.layers.tmp)
        path = Path(name)
        try:
            hasher = hashlib.sha256()
            source = self.layers.tar(diff_id)
            with os.fdopen(fd, "wb") as raw:
                counted = HashingFile(raw, hasher)
                # No file name and mtime 0: the same tar always gives the same blob (same zlib).
                with gzip.GzipFile(
                    filename="", mode="wb", fileobj=cast(IO[bytes], counted), compresslevel=_GZIP_LEVEL, mtime=0
                ) as gz:
                    for chunk in source.chunks():
                        if abort.is_set():
                            raise Aborted()
                        gz.write(chunk)
            source.finish()
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        return Blob("sha256:" + hasher.hexdigest(), diff_id, counted.size, OCI_LAYER_GZIP), path

    def _upload(self, digest: str, size: int, body: bytes | IO[bytes], location: str | None, abort: threading.Event) -> None:
        """Monolithic upload: POST opens a session (unless a mount attempt did), one PUT completes it."""
        what = f"upload of {digest} to {self.remote.name}"
        if location is None:
            with expect(self.client.request("POST", f"/v2/{self.repo}/blobs/uploads/"), (202,), what) as resp:
                location = resp.header("Location")
            if not location:
                raise Unavailable(f"{what}: the registry sent no upload location")
        url = self.client.url(location)
        url += ("&" if urllib.parse.urlsplit(url).query else "?") + urllib.parse.urlencode({"digest": digest})
        meter = Meter(self.emit, digest, size, "uploading", abort)
        meter.report(force=True)
        request = self.client.request(
            "PUT", url, headers={"Content-Type": "application/octet-stream"}, body=body, size=size, on_sent=meter.add
        )
        with expect(request, (201,), what):
            pass
        self.emit(Progress(digest, size, size, "done"))


def _manifest(image: Image, config: bytes, blobs: dict[str, Blob]) -> bytes:
    """The OCI image manifest of ``image``, its layers as the registry holds them (``blobs`` by diff id)."""
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": image.id, "size": len(config)},
            "layers": [_descriptor(blobs[d]) for d in image.layers],
        },
        separators=(",", ":"),
    ).encode()


def _descriptor(blob: Blob) -> dict[str, str | int]:
    return {"mediaType": blob.media_type, "digest": blob.digest, "size": blob.size}
