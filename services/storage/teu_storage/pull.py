"""Pulling images from registries (OCI distribution API v2).

The manifest (an image index or Docker manifest list resolves to this host's linux/<arch> entry,
see ocispec.pick_platform), the config, then the layers, a few at a time. Nothing is used before it
is verified: a manifest against the digest it was asked for, the config against its descriptor (so
the image id is right), each layer blob against its descriptor's digest and size, and its
uncompressed tar against the config's diff id; only then is it unpacked, through the same safe
extraction as an import.

What a caller may rely on: unpacked layers stay pinned until the image is recorded, in one
transaction; on any failure the GC takes them back, so a refused or interrupted pull leaves nothing
behind (a crash leaves only what the next start-up sweeps: tmp/ and unreferenced layers). The blobs
recorded for later pushes are only ones checked against their diff id.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, cast

import structlog

from teu_api.errors import InvalidArgument
from teu_storage import distribution, imagearchive, imagespec, ocispec
from teu_storage.credentials import Credentials
from teu_storage.distribution import Client, expect
from teu_storage.gc import Collector
from teu_storage.images import Images
from teu_storage.layerstore import LayerStore
from teu_storage.metadata import Blob, Image, NewImage
from teu_storage.ocispec import DOCKER_LIST, DOCKER_MANIFEST, OCI_INDEX, OCI_LAYER, OCI_LAYER_GZIP, OCI_MANIFEST
from teu_storage.remote import CHUNK, Emit, Meter, Progress, Remote, connect, parse_remote, run_all
from teu_storage.uploads import MAX_UPLOAD

__all__ = ["Puller"]

log = structlog.get_logger()

_ACCEPT = ", ".join((OCI_MANIFEST, DOCKER_MANIFEST, OCI_INDEX, DOCKER_LIST))
_MAX_MANIFEST = 4 << 20  # what registries themselves accept
_MAX_CONFIG = 8 << 20
_NESTING = 2  # an index of indexes is legal but rare; deeper is refused


class Puller:
    """Pulls images into ``layers`` and ``images``; ``gc`` takes back the layers of a failed pull."""

    def __init__(self, layers: LayerStore, images: Images, gc: Collector) -> None:
        self._layers = layers
        self._images = images
        self._gc = gc

    def pull(self, ref: str, insecure: bool, emit: Emit, *, credentials: Credentials | None = None) -> Image:
        """Pulls ``ref`` and tags it (not when pulled by digest alone); returns the image.

        ``credentials`` are for ``ref``'s registry (None: anonymous). ``emit`` gets progress from the
        pulling threads. InvalidArgument for a bad reference or any blob that fails verification,
        NotFound for an unknown repository, tag or platform, FailedPrecondition when the registry or its
        token server refuses, Unavailable when the registry cannot be reached. On failure nothing is
        left in the store.
        """
        remote = parse_remote(ref, allow_digest=True)
        client = connect(remote, insecure, credentials)
        try:
            return _Pull(self._layers, self._images, self._gc, client, remote, emit).run()
        finally:
            client.close()


@dataclass(frozen=True)
class _Layer:
    """A layer of a manifest: its blob (digest, size, compression) and the diff id the config gives."""

    digest: str
    size: int
    media_type: str  # OCI spelling: OCI_LAYER_GZIP or OCI_LAYER
    diff_id: str


class _Pull:
    """One pull (see :meth:`Puller.pull`)."""

    def __init__(self, layers: LayerStore, images: Images, gc: Collector, client: Client, remote: Remote, emit: Emit) -> None:
        self.layers = layers
        self.images = images
        self.gc = gc
        self.client = client
        self.remote = remote
        self.emit = emit
        self.blobs = f"/v2/{remote.repository}/blobs/"
        self.verified: set[str] = set()  # blob digests downloaded and checked in this pull

    def run(self) -> Image:
        started = time.monotonic()
        digest, manifest = self._manifest()
        self.emit(Progress(digest, 0, 0, "resolved"))
        config_desc = ocispec.descriptor(manifest.get("config"), "manifest config")
        config = self._small_blob(config_desc, _MAX_CONFIG, "config")
        diff_ids = _diff_ids(config)
        layer_descs = ocispec.descriptors(manifest, "layers", "manifest layer", f"manifest {digest}: ")
        if len(layer_descs) != len(diff_ids):
            raise InvalidArgument(f"manifest {digest} and its config disagree on the number of layers")
        layers = [_layer(d, diff_id) for d, diff_id in zip(layer_descs, diff_ids, strict=True)]
        by_diff_id: dict[str, _Layer] = {}
        for layer in layers:
            by_diff_id.setdefault(layer.diff_id, layer)
        unique = list(by_diff_id.values())
        image = self._store(config_desc["digest"], config, diff_ids, unique)
        self._record_blobs(unique)
        log.info(
            "image_pulled",
            ref=str(self.remote),
            image_id=image.id,
            manifest=digest,
            layers=len(layers),
            seconds=round(time.monotonic() - started, 3),
        )
        return image

    def _store(self, image_id: str, config: bytes, diff_ids: list[str], unique: list[_Layer]) -> Image:
        """Fetches and unpacks the ``unique`` layers, then records the image of ``config`` over ``diff_ids``."""
        try:
            with self.layers.pinning() as pins:
                sizes = dict(
                    zip(
                        [layer.diff_id for layer in unique],
                        run_all(unique, lambda layer, abort: self._layer(layer, pins, abort)),
                        strict=True,
                    )
                )
                new = NewImage(
                    id=image_id,
                    config=config,
                    created_at=imagespec.parse_created(imagespec.created_field(config)) or time.time_ns(),
                    layers=[(d, sizes[d]) for d in diff_ids],
                    refs=(self.remote.local_ref,) if self.remote.local_ref else (),
                )
                [image] = self.images.record([new])
        except BaseException:
            self.gc.collect()  # layers of a refused pull go right away
            raise
        return image

    def _record_blobs(self, unique: list[_Layer]) -> None:
        """Records where the layers' blobs came from, for later pushes to reuse or mount."""
        # Only blobs checked against their diff id here or before: a later push trusts these records.
        checked = [
            layer
            for layer in unique
            if layer.digest in self.verified or any(b.digest == layer.digest for b in self.layers.blobs_of(layer.diff_id))
        ]
        self.layers.record_blobs(
            [Blob(layer.digest, layer.diff_id, layer.size, layer.media_type) for layer in checked],
            self.remote.registry,
            self.remote.repository,
        )

    def _manifest(self) -> tuple[str, dict[str, Any]]:
        """(digest, document) of the image manifest the reference names, through any index."""
        expected = self.remote.digest
        reference = self.remote.reference
        for _ in range(_NESTING + 1):
            path = f"/v2/{self.remote.repository}/manifests/{reference}"
            what = f"manifest {self.remote.name}:{reference}" if not expected else f"manifest {self.remote.name}@{reference}"
            with expect(self.client.request("GET", path, headers={"Accept": _ACCEPT}), (200,), what) as resp:
                raw = resp.read_limited(_MAX_MANIFEST, what)
                content_type = resp.header("Content-Type").split(";")[0].strip()
                claimed = resp.header("Docker-Content-Digest")
            digest = ocispec.digest(raw)
            if expected and digest != expected:
                raise InvalidArgument(f"{what}: digest mismatch, the registry sent {digest}")
            if not expected and claimed and claimed != digest:
                raise InvalidArgument(f"{what}: the registry says {claimed} but sent {digest}")
            doc = _json(raw, what)
            if ocispec.is_index(doc, content_type):
                expected = reference = ocispec.pick_platform(doc, what)["digest"]
                continue
            _check_manifest_type(doc, content_type, what)
            return digest, doc
        raise InvalidArgument(f"manifest {self.remote}: image indexes nested too deep")

    def _small_blob(self, desc: dict[str, Any], limit: int, what: str) -> bytes:
        digest, size = desc["digest"], desc["size"]
        if size > limit:
            raise InvalidArgument(f"{what} {digest} is larger than {limit} bytes")
        with expect(self.client.request("GET", self.blobs + digest), (200,), f"{what} {digest}") as resp:
            data = resp.read_limited(size, f"{what} {digest}")
        if len(data) != size or ocispec.digest(data) != digest:
            raise InvalidArgument(f"{what} {digest}: digest or size mismatch")
        return data

    def _layer(self, layer: _Layer, pins: list[str], abort: threading.Event) -> int:
        """Fetches, verifies and unpacks one layer (unless present); its unpacked size."""
        present = self.layers.pin_present(layer.diff_id, pins)
        if present is not None:
            self.emit(Progress(layer.digest, layer.size, layer.size, "exists"))
            return present
        meter = Meter(self.emit, layer.digest, layer.size, "downloading", abort)
        meter.report(force=True)
        fd, name = tempfile.mkstemp(prefix="pull-", suffix=".tar", dir=self.layers.tmp)
        tar_path = Path(name)
        try:
            diff_id = self._download(layer, meter, fd)
            if diff_id != layer.diff_id:
                raise InvalidArgument(f"layer {layer.digest}: uncompressed digest {diff_id} is not the config's {layer.diff_id}")
            self.verified.add(layer.digest)  # set.add is atomic: no lock needed across the pull's threads
            self.emit(Progress(layer.digest, layer.size, layer.size, "extracting"))
            size = self.layers.add(tar_path, diff_id, pins)
        finally:
            tar_path.unlink(missing_ok=True)
        self.emit(Progress(layer.digest, layer.size, layer.size, "done"))
        return size

    def _download(self, layer: _Layer, meter: Meter, fd: int) -> str:
        """Writes the layer's uncompressed tar to ``fd``, checking its blob; returns the tar's digest."""
        what = f"layer {layer.digest}"
        with os.fdopen(fd, "wb") as out, expect(self.client.request("GET", self.blobs + layer.digest), (200,), what) as resp:
            reader = _BlobReader(resp, layer, meter)
            try:
                _, diff_id = imagearchive.spool_layer(cast(IO[bytes], reader), out, MAX_UPLOAD)
            except InvalidArgument as exc:
                # Broken gzip is most often a damaged or truncated blob: say which, if so.
                reader.drain()
                reader.verify()
                raise InvalidArgument(f"{what}: {exc.message.removeprefix('invalid archive: ')}") from exc
            reader.verify()  # size and digest of the compressed bytes
        return diff_id


class _BlobReader:
    """A blob's response body as a file, held to its descriptor: no byte more, digest checked."""

    def __init__(self, resp: distribution.Response, layer: _Layer, meter: Meter) -> None:
        self._resp = resp
        self._layer = layer
        self._meter = meter
        self._hash = hashlib.sha256()
        self.done = 0

    def read(self, n: int = -1) -> bytes:
        """Up to ``n`` more bytes; InvalidArgument past the descriptor's size."""
        data = self._resp.read(n)
        self.done += len(data)
        if self.done > self._layer.size:
            raise InvalidArgument(f"layer {self._layer.digest}: the registry sent more than its {self._layer.size} bytes")
        self._hash.update(data)
        self._meter.add(len(data))
        return data

    def drain(self) -> None:
        """Reads (and hashes) what is left, so verify() can tell damage from a hostile layer."""
        while self.read(CHUNK):
            pass

    def verify(self) -> None:
        """InvalidArgument unless exactly the descriptor's bytes were read."""
        digest = self._layer.digest
        if self.done != self._layer.size:
            raise InvalidArgument(f"layer {digest}: truncated blob, {self.done} of {self._layer.size} bytes")
        if "sha256:" + self._hash.hexdigest() != digest:
            raise InvalidArgument(f"layer {digest}: digest mismatch, the blob is damaged")


def _check_manifest_type(doc: dict[str, Any], content_type: str, what: str) -> None:
    """InvalidArgument unless ``doc`` is an OCI or Docker schema 2 image manifest."""
    media = doc.get("mediaType") or content_type
    if media in ocispec.DOCKER_SCHEMA1 or doc.get("schemaVersion") == 1:
        raise InvalidArgument(f"{what}: Docker schema 1 manifests are not supported")
    if media and media not in (OCI_MANIFEST, DOCKER_MANIFEST):
        raise InvalidArgument(f"{what}: unsupported manifest type {media!r}")


def _layer(desc: dict[str, Any], diff_id: str) -> _Layer:
    media = str(desc.get("mediaType", ""))
    if "zstd" in media:
        raise InvalidArgument(f"layer {desc['digest']} is zstd-compressed ({media}): Teu supports gzip and plain tar layers only")
    if media in ocispec.GZIP_LAYERS or media.endswith(("+gzip", ".gzip")):
        oci_type = OCI_LAYER_GZIP
    elif media in ocispec.TAR_LAYERS or media.endswith(".tar"):
        oci_type = OCI_LAYER
    else:
        raise InvalidArgument(f"layer {desc['digest']} has unsupported media type {media!r}")
    if desc["size"] > MAX_UPLOAD:
        raise InvalidArgument(f"layer {desc['digest']} is larger than {MAX_UPLOAD} bytes")
    return _Layer(desc["digest"], desc["size"], oci_type, diff_id)


def _diff_ids(config: bytes) -> list[str]:
    return imagespec.diff_ids(_json(config, "image config"))


def _json(raw: bytes, what: str) -> dict[str, Any]:
    try:
        doc = json.loads(raw)
    except ValueError as exc:
        raise InvalidArgument(f"{what} is not JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise InvalidArgument(f"{what} is not a JSON object")
    return doc
