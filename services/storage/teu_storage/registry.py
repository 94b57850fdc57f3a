"""Pulling images from registries and pushing them there (OCI distribution API v2).

Pull: the manifest (an image index or Docker manifest list resolves to this host's linux/<arch>
entry), the config, then the layers, a few at a time. Nothing is used before it is verified: a
manifest against the digest it was asked for, the config against its descriptor (so the image id is
right), each layer blob against its descriptor's digest and size, and its uncompressed tar against
the config's diff id; only then is it unpacked, through the same safe extraction as an import.
Unpacked layers stay pinned until the image is recorded, in one transaction; on any failure the GC
takes them back, so a refused or interrupted pull leaves nothing behind (a crash leaves only what
the next start-up sweeps: tmp/ and unreferenced layers).

Push: for each layer, the registry is asked (HEAD) whether it holds a blob already known to carry
that layer (store.blobs: pulled blobs and earlier uploads); if not, it is asked to mount one from
another repository of the same registry where the blob was seen (store.blob_repos); only then is
the layer rebuilt from its tar-split, gzip-compressed (deterministically: no name, no mtime) and
uploaded in one PUT. The new blob is recorded, so pushing again finds every blob. Then the config,
then an OCI image manifest: Teu always writes OCI media types, whatever a pulled image came as.
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
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, TypeVar, cast

import structlog

from teu_api.errors import Cancelled, Internal, InvalidArgument, NotFound, Unavailable
from teu_storage import distribution, imagearchive, imagespec, ocispec, refs
from teu_storage.core import Storage
from teu_storage.credentials import Credentials
from teu_storage.distribution import Client, expect
from teu_storage.metadata import Blob, Image, NewImage
from teu_storage.ocispec import (
    DOCKER_LIST,
    DOCKER_MANIFEST,
    DOCKER_SCHEMA1,
    OCI_CONFIG,
    OCI_INDEX,
    OCI_LAYER,
    OCI_LAYER_GZIP,
    OCI_MANIFEST,
)
from teu_storage.threadio import HashingFile
from teu_storage.uploads import MAX_UPLOAD

__all__ = ["Progress", "Remote", "parse_remote", "pull", "push"]

log = structlog.get_logger()

_ACCEPT = ", ".join((OCI_MANIFEST, DOCKER_MANIFEST, OCI_INDEX, DOCKER_LIST))
_MAX_MANIFEST = 4 << 20  # what registries themselves accept
_MAX_CONFIG = 8 << 20
_CONCURRENCY = 3  # Docker's default for downloads: enough to fill a link, few enough to be polite
_CANDIDATES = 4  # known blobs of one layer worth asking a registry about
_CHUNK = 1 << 20
_REPORT_EVERY = 0.1  # seconds between progress messages of one blob
# Level 1: on a fast link (or loopback) compression is the bottleneck; the size gain of 6 is ~10%.
_GZIP_LEVEL = 1
_NESTING = 2  # an index of indexes is legal but rare; deeper is refused

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class Progress:
    """Progress of one blob (``digest``; empty for the image as a whole): bytes done of total, and what."""

    digest: str
    done: int
    total: int
    status: str


Emit = Callable[[Progress], None]


@dataclass(frozen=True)
class Remote:
    """A reference into a registry: ``repository`` on ``registry``, by ``tag`` and/or ``digest``."""

    registry: str  # as written: "localhost:5000"; Docker Hub is "docker.io"
    repository: str  # "app", "library/busybox"
    name: str  # the familiar name stored locally: "localhost:5000/app", "busybox"
    tag: str  # "" for a pull by digest alone
    digest: str  # "" unless "@sha256:..."

    @property
    def reference(self) -> str:
        """What the manifest is fetched by: the digest if there is one (it wins over a tag)."""
        return self.digest or self.tag

    @property
    def local_ref(self) -> str | None:
        """The stored reference ("name:tag") a pull tags; None for a pull by digest alone."""
        return f"{self.name}:{self.tag}" if self.tag else None

    def __str__(self) -> str:
        return f"{self.name}{':' + self.tag if self.tag else ''}{'@' + self.digest if self.digest else ''}"


def parse_remote(ref: str, *, allow_digest: bool) -> Remote:
    """Parses "[registry/]name[:tag][@sha256:...]" (Docker's rules: see refs.py).

    The registry and repository are as :func:`refs.split_name` gives them. InvalidArgument for a
    malformed reference, or a digest when ``allow_digest`` is False.
    """
    name_tag, at, digest = ref.partition("@")
    if at:
        if not allow_digest:
            raise InvalidArgument(f"cannot push to a digest reference: {ref}")
        if not imagespec.DIGEST.fullmatch(digest):
            raise InvalidArgument(f"invalid digest in reference (only sha256 is supported): {ref}")
    has_tag = name_tag.rfind(":") > name_tag.rfind("/")
    parsed = refs.parse(name_tag)
    tag = parsed.tag if has_tag or not at else ""
    registry, repository = refs.split_name(parsed.name)
    return Remote(registry, repository, parsed.name, tag, digest)


def _client(remote: Remote, insecure: bool, credentials: Credentials | None) -> Client:
    """The client of ``remote``'s registry, holding the credentials given for that registry only."""
    return Client(remote.registry, insecure=insecure, credentials=credentials)


# --- pull --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Layer:
    """A layer of a manifest: its blob (digest, size, compression) and the diff id the config gives."""

    digest: str
    size: int
    media_type: str  # OCI spelling: OCI_LAYER_GZIP or OCI_LAYER
    diff_id: str


def pull(
    storage: Storage,
    ref: str,
    insecure: bool,
    emit: Emit,
    client: Client | None = None,
    *,
    credentials: Credentials | None = None,
) -> Image:
    """Pulls ``ref`` into ``storage`` and tags it (not when pulled by digest alone); returns the image.

    ``credentials`` are for ``ref``'s registry (None: anonymous). ``emit`` gets progress from the
    pulling threads. InvalidArgument for a bad reference or any blob that fails verification,
    NotFound for an unknown repository, tag or platform, FailedPrecondition when the registry or its
    token server refuses, Unavailable when the registry cannot be reached. On failure nothing is
    left in the store.
    """
    remote = parse_remote(ref, allow_digest=True)
    own = client is None
    registry = client or _client(remote, insecure, credentials)
    try:
        return _Puller(storage, registry, remote, emit).run()
    finally:
        if own:
            registry.close()


class _Puller:
    """One pull (see :func:`pull`)."""

    def __init__(self, storage: Storage, client: Client, remote: Remote, emit: Emit) -> None:
        self.storage = storage
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
        try:
            with self.storage.pinning() as pins:
                sizes = dict(
                    zip(
                        [layer.diff_id for layer in unique],
                        _run_all(unique, lambda layer, abort: self._layer(layer, pins, abort)),
                        strict=True,
                    )
                )
                image = self.storage.record_image(
                    NewImage(
                        id=config_desc["digest"],
                        config=config,
                        created_at=imagespec.parse_created(imagespec.created_field(config)) or time.time_ns(),
                        layers=[(d, sizes[d]) for d in diff_ids],
                        refs=(self.remote.local_ref,) if self.remote.local_ref else (),
                    )
                )
        except BaseException:
            self.storage.gc.collect()  # layers of a refused pull go right away
            raise
        # Only blobs checked against their diff id here or before: a later push trusts these records.
        store = self.storage.store
        checked = [
            layer
            for layer in unique
            if layer.digest in self.verified or any(b.digest == layer.digest for b in store.blobs_of(layer.diff_id))
        ]
        store.record_blobs(
            [Blob(layer.digest, layer.diff_id, layer.size, layer.media_type) for layer in checked],
            self.remote.registry,
            self.remote.repository,
        )
        log.info(
            "image_pulled",
            ref=str(self.remote),
            image_id=image.id,
            manifest=digest,
            layers=len(layers),
            seconds=round(time.monotonic() - started, 3),
        )
        return image

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
            media = doc.get("mediaType") or content_type
            if media in DOCKER_SCHEMA1 or doc.get("schemaVersion") == 1:
                raise InvalidArgument(f"{what}: Docker schema 1 manifests are not supported")
            if media and media not in (OCI_MANIFEST, DOCKER_MANIFEST):
                raise InvalidArgument(f"{what}: unsupported manifest type {media!r}")
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
        present = self.storage.pin_present(layer.diff_id, pins)
        if present is not None:
            self.emit(Progress(layer.digest, layer.size, layer.size, "exists"))
            return present
        meter = _Meter(self.emit, layer.digest, layer.size, "downloading", abort)
        meter.report(force=True)
        fd, name = tempfile.mkstemp(prefix="pull-", suffix=".tar", dir=self.storage.tmp)
        tar_path = Path(name)
        try:
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
            if diff_id != layer.diff_id:
                raise InvalidArgument(f"{what}: uncompressed digest {diff_id} is not the config's {layer.diff_id}")
            self.verified.add(layer.digest)  # set.add is atomic: no lock needed across the pull's threads
            self.emit(Progress(layer.digest, layer.size, layer.size, "extracting"))
            size = self.storage.add_layer(tar_path, diff_id, pins)
        finally:
            tar_path.unlink(missing_ok=True)
        self.emit(Progress(layer.digest, layer.size, layer.size, "done"))
        return size


class _Meter:
    """Throttled progress of one blob; raises _Aborted once a sibling transfer failed."""

    def __init__(self, emit: Emit, digest: str, total: int, status: str, abort: threading.Event) -> None:
        self.emit, self.digest, self.total, self.status, self.abort = emit, digest, total, status, abort
        self.done = 0
        self._last = 0.0

    def add(self, n: int) -> None:
        """Counts ``n`` more bytes."""
        self.done += n
        self.report(force=self.done >= self.total)

    def report(self, force: bool = False) -> None:
        """Emits progress if it is time to (or ``force``)."""
        if self.abort.is_set():
            raise _Aborted()
        now = time.monotonic()
        if force or now - self._last >= _REPORT_EVERY:
            self._last = now
            self.emit(Progress(self.digest, self.done, self.total, self.status))


class _BlobReader:
    """A blob's response body as a file, held to its descriptor: no byte more, digest checked."""

    def __init__(self, resp: distribution.Response, layer: _Layer, meter: _Meter) -> None:
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
        while self.read(_CHUNK):
            pass

    def verify(self) -> None:
        """InvalidArgument unless exactly the descriptor's bytes were read."""
        digest = self._layer.digest
        if self.done != self._layer.size:
            raise InvalidArgument(f"layer {digest}: truncated blob, {self.done} of {self._layer.size} bytes")
        if "sha256:" + self._hash.hexdigest() != digest:
            raise InvalidArgument(f"layer {digest}: digest mismatch, the blob is damaged")


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


# --- push --------------------------------------------------------------------------------------


def push(
    storage: Storage,
    ref: str,
    insecure: bool,
    emit: Emit,
    client: Client | None = None,
    *,
    credentials: Credentials | None = None,
) -> str:
    """Pushes the image tagged ``ref`` ("registry/name[:tag]") and returns the manifest digest.

    ``credentials`` are for ``ref``'s registry (None: anonymous). NotFound if no image is tagged
    ``ref``; registry errors as in :func:`pull`.
    """
    remote = parse_remote(ref, allow_digest=False)
    local = remote.local_ref or ""
    image_id = storage.store.tagged(local)
    if image_id is None:
        raise NotFound(f"No such image: {local}")
    own = client is None
    registry = client or _client(remote, insecure, credentials)
    try:
        return _Pusher(storage, registry, remote, emit).run(storage.get_image(image_id))
    finally:
        if own:
            registry.close()


class _Pusher:
    """One push (see :func:`push`)."""

    def __init__(self, storage: Storage, client: Client, remote: Remote, emit: Emit) -> None:
        self.storage = storage
        self.client = client
        self.remote = remote
        self.emit = emit
        self.repo = remote.repository

    def run(self, image: Image) -> str:
        started = time.monotonic()
        config = self.storage.image_config(image.id)
        unique = list(dict.fromkeys(image.layers))
        with self.storage.pinning() as pins:
            self.storage.pin_existing(image.layers, pins)
            blobs = dict(zip(unique, _run_all(unique, self._layer), strict=True))
            self._config(image.id, config)
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": {"mediaType": OCI_CONFIG, "digest": image.id, "size": len(config)},
                "layers": [
                    {"mediaType": blobs[d].media_type, "digest": blobs[d].digest, "size": blobs[d].size} for d in image.layers
                ],
            },
            separators=(",", ":"),
        ).encode()
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
        known = [b for b in self.storage.store.blobs_of(diff_id) if b.media_type in (OCI_LAYER_GZIP, OCI_LAYER)]
        known = known[:_CANDIDATES]
        for blob in known:
            if self._has(blob.digest):
                self.emit(Progress(blob.digest, blob.size, blob.size, "exists"))
                return self._seen(blob)
        location = None
        for blob in known:
            for source in self.storage.store.repositories_with(self.remote.registry, blob.digest):
                if source != self.repo:
                    mounted, location = self._mount(blob.digest, source, location)
                    if mounted:
                        self.emit(Progress(blob.digest, blob.size, blob.size, "mounted"))
                        return self._seen(blob)
        self.emit(Progress(diff_id, 0, 0, "compressing"))
        blob, path = self._compress(diff_id, abort)
        try:
            self.storage.store.record_blobs([blob])
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
        self.storage.store.record_blobs([blob], self.remote.registry, self.repo)
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
        fd, name = tempfile.mkstemp(prefix="push-", suffix=".tar.gz", dir=self.storage.tmp)
        path = Path(name)
        try:
            hasher = hashlib.sha256()
            source = self.storage.layer_tar(diff_id)
            with os.fdopen(fd, "wb") as raw:
                counted = HashingFile(raw, hasher)
                # No file name and mtime 0: the same tar always gives the same blob (same zlib).
                with gzip.GzipFile(
                    filename="", mode="wb", fileobj=cast(IO[bytes], counted), compresslevel=_GZIP_LEVEL, mtime=0
                ) as gz:
                    while chunk := source.read(_CHUNK):
                        if abort.is_set():
                            raise _Aborted()
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
        meter = _Meter(self.emit, digest, size, "uploading", abort)
        meter.report(force=True)
        request = self.client.request(
            "PUT", url, headers={"Content-Type": "application/octet-stream"}, body=body, size=size, on_sent=meter.add
        )
        with expect(request, (201,), what):
            pass
        self.emit(Progress(digest, size, size, "done"))


# --- shared --------------------------------------------------------------------------------------


class _Aborted(Exception):
    """A sibling transfer failed: this one stops (its own cleanup runs), the sibling's error is reported."""


def _run_all(items: Sequence[T], work: Callable[[T, threading.Event], R]) -> list[R]:
    """``work(item, abort)`` for every item, _CONCURRENCY at a time; results in order.

    The first failure sets ``abort`` (transfers check it as they go) and is raised once every
    worker has stopped, so no thread is left writing into the store.
    """
    abort = threading.Event()
    results: dict[int, R] = {}
    error: BaseException | None = None

    def guarded(item: T) -> R:
        if abort.is_set():
            raise _Aborted()
        return work(item, abort)

    with ThreadPoolExecutor(max_workers=_CONCURRENCY, thread_name_prefix="registry") as pool:
        futures: dict[Future[R], int] = {pool.submit(guarded, item): i for i, item in enumerate(items)}
        for future in as_completed(futures):
            try:
                results[futures[future]] = future.result()
            except BaseException as exc:  # re-raised below, once the others have stopped
                abort.set()
                if error is None or (isinstance(error, _Aborted) and not isinstance(exc, _Aborted)):
                    error = exc
    if error is not None:
        if isinstance(error, _Aborted):  # pragma: no cover - only siblings raise it, after an error
            raise Cancelled("transfer aborted")
        raise error
    return [results[i] for i in range(len(items))]
