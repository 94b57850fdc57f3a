"""Registry pull and push against Debian's docker-registry on loopback, plus auth against a local fake.

Every byte these tests send goes to 127.0.0.1: the registry and the fake token server are started
here, on free loopback ports, and stopped by pid at the end.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import hashlib
import json
import os
import socket
import subprocess
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import grpc
import pytest

from teu_api.errors import Cancelled, FailedPrecondition, InvalidArgument, NotFound, Unavailable
from teu_api.storage.v1 import storage_pb2, storage_pb2_grpc
from teu_api.types.v1 import types_pb2
from teu_common.interceptor import ErrorInterceptor
from teu_storage import credentials, distribution, ocispec
from teu_storage.credentials import Credentials
from teu_storage.distribution import Client, parse_challenges
from teu_storage.imagespec import ImageConfig, host_architecture
from teu_storage.metadata import Blob, Image
from teu_storage.push import _Push
from teu_storage.remote import Progress, parse_remote
from teu_storage.service import StorageServicer
from teu_storage.storage import Storage
from teu_storage.threadio import events_from_thread

REGISTRY_BIN = "/usr/bin/docker-registry"


# --- the local registry ---------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class LocalRegistry:
    """A docker-registry serving plain HTTP on 127.0.0.1, its storage under ``data``."""

    host: str
    data: Path

    def blob_file(self, digest: str) -> Path:
        """Where the registry keeps blob ``digest`` (filesystem driver layout)."""
        hexa = digest.removeprefix("sha256:")
        return self.data / "docker/registry/v2/blobs/sha256" / hexa[:2] / hexa / "data"


@pytest.fixture(scope="module")
def local_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRegistry]:
    """Starts docker-registry on a free loopback port (skips if it is not installed) and stops it by pid."""
    if not os.access(REGISTRY_BIN, os.X_OK):
        pytest.skip("docker-registry is not installed (apt-get install -y docker-registry)")
    root = tmp_path_factory.mktemp("registry")
    port = _free_port()
    config = root / "config.yml"
    config.write_text(
        "version: 0.1\n"
        "log:\n  level: error\n  accesslog:\n    disabled: true\n"
        f"storage:\n  filesystem:\n    rootdirectory: {root / 'data'}\n  delete:\n    enabled: true\n"
        f"http:\n  addr: 127.0.0.1:{port}\n  secret: teu-test\n"
    )
    log_path = root / "registry.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([REGISTRY_BIN, "serve", str(config)], stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.skip(f"docker-registry did not start: {log_path.read_text()[-500:]}")
                time.sleep(0.05)
        yield LocalRegistry(f"localhost:{port}", root / "data")
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# --- helpers --------------------------------------------------------------------------------------


def _two_layer_image(storage: Storage, tars: Any, kit: Any, ref: str) -> Image:
    """busybox-like base plus a committed layer (a new file and a deletion), tagged ``ref``."""
    base = kit.import_tar(storage, tars.busybox(), "", ImageConfig(cmd=["sh"]))
    key = hashlib.sha256(ref.encode()).hexdigest()
    storage.prepare_snapshot(key, base.id)
    upper = kit.upper(storage, key)
    (upper / "bin").mkdir()
    kit.whiteout(upper / "bin/su")
    (upper / "hello").write_text("hello from " + ref)
    image = storage.commit(key, ref, ImageConfig(cmd=["sh"], env=["A=1"]), "add hello", "")
    storage.remove_snapshot(key)
    return image


def _push(storage: Storage, ref: str) -> tuple[str, list[Progress]]:
    events: list[Progress] = []
    return storage.push(ref, False, events.append), events


def _pull(storage: Storage, ref: str) -> tuple[Image, list[Progress]]:
    events: list[Progress] = []
    return storage.pull(ref, False, events.append), events


def _forget(storage: Storage) -> None:
    """Removes every image (and so every layer) from the store."""
    for image in storage.list_images():
        storage.remove_image(image.id, force=False)
    assert storage.list_images() == [] and list(storage.layers.dirs.dir.iterdir()) == []


def _assert_nothing_left(storage: Storage) -> None:
    assert storage.list_images() == []
    assert list(storage.layers.dirs.dir.iterdir()) == []
    assert list(storage.tmp.iterdir()) == []


def _final(events: list[Progress], digest: str) -> str:
    return [e.status for e in events if e.digest == digest][-1]


def _upload(client: Client, repo: str, data: bytes) -> str:
    """Puts blob ``data`` into ``repo`` (POST then PUT); its digest."""
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    with distribution.expect(client.request("POST", f"/v2/{repo}/blobs/uploads/"), (202,), "upload") as resp:
        location = resp.header("Location")
    url = client.url(location)
    url += ("&" if "?" in url else "?") + urllib.parse.urlencode({"digest": digest})
    with distribution.expect(client.request("PUT", url, body=data), (201,), "upload"):
        pass
    return digest


def _put_manifest(client: Client, repo: str, tag: str, doc: dict[str, Any]) -> str:
    raw = json.dumps(doc).encode()
    headers = {"Content-Type": doc["mediaType"]}
    with distribution.expect(client.request("PUT", f"/v2/{repo}/manifests/{tag}", headers=headers, body=raw), (201,), "manifest"):
        pass
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def _raw_image(client: Client, repo: str, tag: str, layer: bytes, media: str, compress: bool = True, diff_id: str = "") -> str:
    """Uploads a one-layer image made of tar ``layer`` (gzipped unless not ``compress``); the manifest digest."""
    blob = gzip.compress(layer, mtime=0) if compress else layer
    blob_digest = _upload(client, repo, blob)
    diff_id = diff_id or "sha256:" + hashlib.sha256(layer).hexdigest()
    config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": [diff_id]}}).encode()
    config_digest = _upload(client, repo, config)
    return _put_manifest(
        client,
        repo,
        tag,
        {
            "schemaVersion": 2,
            "mediaType": ocispec.OCI_MANIFEST,
            "config": {"mediaType": ocispec.OCI_CONFIG, "digest": config_digest, "size": len(config)},
            "layers": [{"mediaType": media, "digest": blob_digest, "size": len(blob)}],
        },
    )


# --- pull and push against docker-registry --------------------------------------------------------


def test_push_then_pull_round_trip(storage: Storage, local_registry: LocalRegistry, tars: Any, kit: Any) -> None:
    """A pushed two-layer image, removed locally and pulled back, has the same id, layers, config and files."""
    ref = f"{local_registry.host}/app:1"
    image = _two_layer_image(storage, tars, kit, ref)
    config = storage.images.config(image.id)
    digest, events = _push(storage, ref)
    assert digest.startswith("sha256:")
    statuses = {e.status for e in events}
    assert {"compressing", "uploading", "done"} <= statuses
    assert _final(events, image.id) == "done"
    _forget(storage)

    pulled, events = _pull(storage, ref)
    assert pulled.id == image.id and pulled.layers == image.layers
    assert pulled.repo_tags == (ref,) and pulled.config == image.config
    assert storage.images.config(pulled.id) == config
    assert (events[0].status, events[0].digest) == ("resolved", digest)
    assert {"downloading", "extracting", "done"} <= {e.status for e in events}
    assert (storage.layers.dirs.path(pulled.layers[1]) / "hello").read_text() == f"hello from {ref}"
    assert list(storage.tmp.iterdir()) == []

    again, events = _pull(storage, ref)
    assert again.id == image.id
    assert {e.status for e in events} == {"resolved", "exists"}


def test_pull_by_digest(storage: Storage, local_registry: LocalRegistry, tars: Any, kit: Any) -> None:
    """Pulling name@digest gets the same image, verified against the digest, and leaves it untagged."""
    ref = f"{local_registry.host}/bydigest:1"
    image = _two_layer_image(storage, tars, kit, ref)
    digest, _ = _push(storage, ref)
    _forget(storage)
    pulled, _ = _pull(storage, f"{local_registry.host}/bydigest@{digest}")
    assert pulled.id == image.id and pulled.layers == image.layers and pulled.repo_tags == ()
    tagged, _ = _pull(storage, f"{local_registry.host}/bydigest:1@{digest}")
    assert tagged.repo_tags == (ref,)


def test_repush_finds_every_blob(storage: Storage, local_registry: LocalRegistry, tars: Any, kit: Any) -> None:
    """A second push of the same image reports "exists" for every layer and the config, and the same digest."""
    ref = f"{local_registry.host}/again:1"
    image = _two_layer_image(storage, tars, kit, ref)
    first, _ = _push(storage, ref)
    second, events = _push(storage, ref)
    assert second == first
    assert {e.status for e in events} == {"exists"}
    blobs = {b.digest for d in image.layers for b in storage.store.blobs_of(d)}
    assert {e.digest for e in events} == blobs | {image.id}


def test_pulled_image_repushed_elsewhere_mounts_its_blobs(
    storage: Storage, local_registry: LocalRegistry, tars: Any, kit: Any
) -> None:
    """Pushing a pulled image to another repository of the same registry mounts the blobs it was pulled as."""
    ref = f"{local_registry.host}/source:1"
    image = _two_layer_image(storage, tars, kit, ref)
    _push(storage, ref)
    _forget(storage)
    _pull(storage, ref)
    target = f"{local_registry.host}/team/copy:2"
    storage.tag(ref, target)
    digest, events = _push(storage, target)
    layer_events = [e for e in events if e.digest != image.id]
    assert {e.status for e in layer_events} == {"mounted"} and len(layer_events) == len(image.layers)
    _forget(storage)
    pulled, _ = _pull(storage, f"{local_registry.host}/team/copy@{digest}")
    assert pulled.id == image.id


def test_corrupted_blob_is_refused(storage: Storage, local_registry: LocalRegistry, tars: Any, kit: Any) -> None:
    """A layer blob with one byte flipped in the registry's storage fails with INVALID_ARGUMENT and leaves nothing."""
    ref = f"{local_registry.host}/corrupt:1"
    image = _two_layer_image(storage, tars, kit, ref)
    _push(storage, ref)
    blob = storage.store.blobs_of(image.layers[-1])[0]  # unique to this test: blobs are shared across repositories
    _forget(storage)
    path = local_registry.blob_file(blob.digest)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(InvalidArgument, match=r"digest mismatch|damaged"):
        _pull(storage, ref)
    _assert_nothing_left(storage)


def test_truncated_blob_is_refused(storage: Storage, local_registry: LocalRegistry, tars: Any, kit: Any) -> None:
    """A layer blob cut short in the registry's storage fails with INVALID_ARGUMENT and leaves nothing."""
    ref = f"{local_registry.host}/truncated:1"
    image = _two_layer_image(storage, tars, kit, ref)
    _push(storage, ref)
    blob = storage.store.blobs_of(image.layers[-1])[0]  # unique to this test: blobs are shared across repositories
    _forget(storage)
    path = local_registry.blob_file(blob.digest)
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(InvalidArgument, match="truncated"):
        _pull(storage, ref)
    _assert_nothing_left(storage)


def test_hostile_layer_is_refused(storage: Storage, local_registry: LocalRegistry, tars: Any) -> None:
    """A correctly digested layer that climbs out of its root is refused by the safe extraction; nothing stays."""
    client = Client(local_registry.host)
    hostile = tars.build(tars.file("ok", b"fine"), tars.file("../../escape", b"pwned"))
    _raw_image(client, "hostile", "1", hostile, ocispec.OCI_LAYER_GZIP)
    with pytest.raises(InvalidArgument, match=r"\.\."):
        _pull(storage, f"{local_registry.host}/hostile:1")
    _assert_nothing_left(storage)
    assert not (storage.root.parent / "escape").exists()


def test_layer_not_matching_its_diff_id_is_refused(storage: Storage, local_registry: LocalRegistry, tars: Any) -> None:
    """A blob that is intact but does not unpack to the config's diff id is refused before extraction."""
    client = Client(local_registry.host)
    _raw_image(client, "wrongdiff", "1", tars.busybox(), ocispec.OCI_LAYER_GZIP, diff_id="sha256:" + "c" * 64)
    with pytest.raises(InvalidArgument, match="not the config's"):
        _pull(storage, f"{local_registry.host}/wrongdiff:1")
    _assert_nothing_left(storage)


def test_zstd_layer_is_refused_clearly(storage: Storage, local_registry: LocalRegistry, tars: Any) -> None:
    """A manifest with a zstd layer is refused before any layer is fetched, saying why."""
    client = Client(local_registry.host)
    _raw_image(client, "zstd", "1", tars.busybox(), "application/vnd.oci.image.layer.v1.tar+zstd", compress=False)
    with pytest.raises(InvalidArgument, match="zstd"):
        _pull(storage, f"{local_registry.host}/zstd:1")
    _assert_nothing_left(storage)


def test_uncompressed_layer_pulls(storage: Storage, local_registry: LocalRegistry, tars: Any) -> None:
    """A plain-tar layer (blob digest = diff id) is pulled as well as a gzip one."""
    client = Client(local_registry.host)
    layer = tars.busybox()
    _raw_image(client, "plain", "1", layer, ocispec.OCI_LAYER, compress=False)
    pulled, _ = _pull(storage, f"{local_registry.host}/plain:1")
    assert pulled.layers == ("sha256:" + hashlib.sha256(layer).hexdigest(),)


def test_index_resolves_to_this_platform(storage: Storage, local_registry: LocalRegistry, tars: Any, kit: Any) -> None:
    """An image index picks the linux entry of this host's architecture, whatever comes first."""
    ours = _two_layer_image(storage, tars, kit, f"{local_registry.host}/multi:ours")
    other = _two_layer_image(storage, tars, kit, f"{local_registry.host}/multi:other")
    ours_digest, _ = _push(storage, f"{local_registry.host}/multi:ours")
    other_digest, _ = _push(storage, f"{local_registry.host}/multi:other")
    client = Client(local_registry.host)
    manifest_size = {d: len(_get(client, f"/v2/multi/manifests/{d}")) for d in (ours_digest, other_digest)}
    foreign = "s390x" if host_architecture() != "s390x" else "amd64"
    index = {
        "schemaVersion": 2,
        "mediaType": ocispec.OCI_INDEX,
        "manifests": [
            {
                "mediaType": ocispec.OCI_MANIFEST,
                "digest": other_digest,
                "size": manifest_size[other_digest],
                "platform": {"os": "linux", "architecture": foreign},
            },
            {
                "mediaType": ocispec.OCI_MANIFEST,
                "digest": ours_digest,
                "size": manifest_size[ours_digest],
                "platform": {"os": "linux", "architecture": host_architecture()},
            },
        ],
    }
    _put_manifest(client, "multi", "index", index)
    pulled, _ = _pull(storage, f"{local_registry.host}/multi:index")
    assert pulled.id == ours.id != other.id
    index["manifests"] = index["manifests"][:1]
    _put_manifest(client, "multi", "foreign", index)
    with pytest.raises(NotFound, match="no matching manifest"):
        _pull(storage, f"{local_registry.host}/multi:foreign")


def _get(client: Client, path: str) -> bytes:
    accept = {"Accept": ocispec.OCI_MANIFEST}
    with distribution.expect(client.request("GET", path, headers=accept), (200,), path) as resp:
        return resp.read()


def test_unknown_repository_or_tag_is_not_found(storage: Storage, local_registry: LocalRegistry) -> None:
    """A repository or tag the registry does not have is NOT_FOUND; a digest it does not have too."""
    with pytest.raises(NotFound, match=r"NAME_UNKNOWN|MANIFEST_UNKNOWN"):
        _pull(storage, f"{local_registry.host}/nosuchrepo:1")
    with pytest.raises(NotFound):
        _pull(storage, f"{local_registry.host}/nosuchrepo@sha256:{'0' * 64}")
    _assert_nothing_left(storage)


def test_pull_cancelled_midway_leaves_nothing(storage: Storage, local_registry: LocalRegistry, tars: Any, kit: Any) -> None:
    """A client going away while layers are unpacked (emit raises Cancelled) ends the pull with nothing left."""
    ref = f"{local_registry.host}/cancel:1"
    _two_layer_image(storage, tars, kit, ref)
    _push(storage, ref)
    _forget(storage)

    def emit(progress: Progress) -> None:
        if progress.status == "extracting":
            raise Cancelled("the client went away")

    with pytest.raises(Cancelled):
        storage.pull(ref, False, emit)
    _assert_nothing_left(storage)


def test_events_stop_the_work_when_the_consumer_leaves() -> None:
    """When the consumer stops reading, the work's next emit raises Cancelled and its cleanup ends before the stream closes."""
    outcome: list[str] = []

    def work(emit: Callable[[int], None]) -> None:
        try:
            for i in range(10_000):
                emit(i)
                time.sleep(0.001)
        except Cancelled:
            outcome.append("cancelled")
            raise

    async def run() -> None:
        stream = events_from_thread(work)
        assert await anext(stream) == 0
        await stream.aclose()
        assert outcome == ["cancelled"]

    asyncio.run(run())


def test_push_of_an_untagged_reference_is_not_found(storage: Storage, local_registry: LocalRegistry) -> None:
    """Pushing a reference no local image carries is NOT_FOUND before the registry is contacted."""
    with pytest.raises(NotFound):
        _push(storage, f"{local_registry.host}/absent:1")


def test_pull_and_push_over_grpc(tmp_path: Path, local_registry: LocalRegistry, tars: Any, kit: Any) -> None:
    """Through the gRPC service: push streams progress then the digest; pull streams progress then the image."""
    ref = f"{local_registry.host}/grpc:1"
    storage = Storage.open(tmp_path / "state")
    image = _two_layer_image(storage, tars, kit, ref)

    async def run() -> None:
        server = grpc.aio.server(interceptors=[ErrorInterceptor()])
        storage_pb2_grpc.add_StorageServiceServicer_to_server(StorageServicer(storage), server)
        sock = tmp_path / "storage.sock"
        server.add_insecure_port(f"unix:{sock}")
        await server.start()
        try:
            async with grpc.aio.insecure_channel(f"unix:{sock}") as channel:
                stub = storage_pb2_grpc.StorageServiceStub(channel)
                pushed = [m async for m in stub.Push(storage_pb2.PushRequest(ref=ref, insecure=True))]
                assert all(m.WhichOneof("part") == "progress" for m in pushed[:-1])
                assert pushed[-1].digest.startswith("sha256:")
                await asyncio.to_thread(storage.remove_image, ref, False)
                pulled = [m async for m in stub.Pull(storage_pb2.PullRequest(ref=ref))]
                assert all(m.WhichOneof("part") == "progress" for m in pulled[:-1])
                assert pulled[-1].image.id == image.id and list(pulled[-1].image.repo_tags) == [ref]
                with pytest.raises(grpc.aio.AioRpcError) as missing:
                    _ = [m async for m in stub.Pull(storage_pb2.PullRequest(ref=f"{local_registry.host}/nope:1"))]
                assert missing.value.code() == grpc.StatusCode.NOT_FOUND
                with pytest.raises(grpc.aio.AioRpcError) as bad:
                    _ = [m async for m in stub.Pull(storage_pb2.PullRequest(ref="Bad Ref"))]
                assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        finally:
            await server.stop(None)
            storage.close()

    asyncio.run(run())


# --- references and transport rules (no network) ----------------------------------------------------


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("localhost:5000/app:1", ("localhost:5000", "app", "localhost:5000/app", "1", "")),
        ("localhost:5000/app", ("localhost:5000", "app", "localhost:5000/app", "latest", "")),
        ("127.0.0.1:5000/team/app:v2", ("127.0.0.1:5000", "team/app", "127.0.0.1:5000/team/app", "v2", "")),
        (f"localhost/app@sha256:{'a' * 64}", ("localhost", "app", "localhost/app", "", f"sha256:{'a' * 64}")),
        (f"localhost/app:1@sha256:{'a' * 64}", ("localhost", "app", "localhost/app", "1", f"sha256:{'a' * 64}")),
        ("busybox", ("docker.io", "library/busybox", "busybox", "latest", "")),
        ("docker.io/user/app:3", ("docker.io", "user/app", "user/app", "3", "")),
    ],
)
def test_parse_remote(ref: str, expected: tuple[str, str, str, str, str]) -> None:
    """References split into registry, repository, stored name, tag and digest as Docker does."""
    remote = parse_remote(ref, allow_digest=True)
    assert (remote.registry, remote.repository, remote.name, remote.tag, remote.digest) == expected


@pytest.mark.parametrize("ref", ["", "Upper/app", "localhost:5000/app@sha256:123", "app@md5:" + "a" * 32])
def test_parse_remote_refuses_bad_references(ref: str) -> None:
    """Malformed references and non-sha256 digests are INVALID_ARGUMENT."""
    with pytest.raises(InvalidArgument):
        parse_remote(ref, allow_digest=True)


def test_push_refuses_digest_references() -> None:
    """A push names a tag, never a digest."""
    with pytest.raises(InvalidArgument, match="digest"):
        parse_remote(f"localhost/app@sha256:{'a' * 64}", allow_digest=False)


def test_plain_http_only_to_loopback() -> None:
    """insecure is refused for a non-loopback registry, which is always spoken to over HTTPS."""
    with pytest.raises(InvalidArgument, match="loopback"):
        Client("registry.example.com", insecure=True)
    assert Client("registry.example.com").base == "https://registry.example.com"
    assert Client("docker.io").base == "https://registry-1.docker.io"
    assert Client("localhost:5000").base == "http://localhost:5000"
    assert Client("127.0.0.2:80", insecure=True).base == "http://127.0.0.2:80"


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (
            'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:samalba/my-app:pull,push"',
            [
                (
                    "bearer",
                    {
                        "realm": "https://auth.docker.io/token",
                        "service": "registry.docker.io",
                        "scope": "repository:samalba/my-app:pull,push",
                    },
                )
            ],
        ),
        ('Basic realm="Registry Realm"', [("basic", {"realm": "Registry Realm"})]),
        (
            'Basic realm="a, b", Bearer realm="http://x/t", scope="repository:a:pull repository:b:pull"',
            [("basic", {"realm": "a, b"}), ("bearer", {"realm": "http://x/t", "scope": "repository:a:pull repository:b:pull"})],
        ),
        (
            'bearer Realm = "q\\"uoted" ,error=insufficient_scope',
            [("bearer", {"realm": 'q"uoted', "error": "insufficient_scope"})],
        ),
        ("", []),
        ('=oops realm="x"', []),
    ],
)
def test_parse_challenges(header: str, expected: list[tuple[str, dict[str, str]]]) -> None:
    """WWW-Authenticate values parse into schemes and parameters, quoted commas and escapes included."""
    assert [(c.scheme, c.params) for c in parse_challenges(header)] == expected


# --- auth flows against a fake registry on loopback ----------------------------------------------------


class _FakeRegistry:
    """A tiny registry + token server on 127.0.0.1 that demands a bearer token (or basic credentials)."""

    USER, PASSWORD = "teu", "s3cret"
    REFRESH = "refresh-me"  # the identity token the POST token endpoint accepts

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, str]] = []  # (method, path, Authorization)
        self.token_requests: list[dict[str, list[str]]] = []
        self.refuse_tokens = False
        self.realm = ""  # the realm challenges name; "" for this fake's own /token
        self.redirect = "http://192.0.2.1/elsewhere"  # where /redirect sends
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                fake.handle(self)

            def do_HEAD(self) -> None:
                fake.handle(self)

            def do_POST(self) -> None:
                fake.handle(self)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = int(self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        """This fake's URL of ``path``."""
        return f"http://{self.host}{path}"

    def authorizations(self) -> list[str]:
        """The Authorization headers this fake was sent (empty ones left out)."""
        return [auth for _, _, auth in self.requests if auth]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def handle(self, req: BaseHTTPRequestHandler) -> None:
        url = urllib.parse.urlsplit(req.path)
        auth = req.headers.get("Authorization", "")
        self.requests.append((req.command, url.path, auth))
        basic = "Basic " + base64.b64encode(f"{self.USER}:{self.PASSWORD}".encode()).decode()
        if url.path == "/token" and req.command == "POST":  # OAuth2: a refresh token for an access token
            length = int(req.headers.get("Content-Length") or 0)
            form = urllib.parse.parse_qs(req.rfile.read(length).decode())
            self.token_requests.append(form)
            if self.refuse_tokens or form.get("refresh_token") != [self.REFRESH]:
                return self.reply(req, 400, b'{"error": "invalid_grant"}')
            scopes = " ".join(" ".join(form.get("scope", [])).split())
            return self.reply(req, 200, json.dumps({"access_token": f"user|{scopes}"}).encode())
        if url.path == "/token":
            query = urllib.parse.parse_qs(url.query)
            self.token_requests.append(query)
            if self.refuse_tokens or (auth and auth != basic):
                return self.reply(req, 401, b"{}")
            scopes = " ".join(query.get("scope", []))
            who = "user" if auth else "anon"
            return self.reply(req, 200, json.dumps({"token": f"{who}|{scopes}"}).encode())
        if url.path.startswith("/basic/"):
            if auth == basic and url.path == "/basic/redirect":
                return self.reply(req, 307, b"", {"Location": self.redirect})
            if auth == basic:
                return self.reply(req, 200, b"ok")
            return self.reply(req, 401, b"{}", {"WWW-Authenticate": 'Basic realm="fake"'})
        if url.path.startswith("/denied"):  # refuses whatever token comes
            challenge = f'Bearer realm="http://127.0.0.1:{self.port}/token",service="fake",scope="repository:denied:pull"'
            return self.reply(
                req,
                401,
                b'{"errors":[{"code":"DENIED","message":"requested access to the resource is denied"}]}',
                {"WWW-Authenticate": challenge},
            )
        if url.path.startswith("/redirect"):
            return self.reply(req, 307, b"", {"Location": self.redirect})
        repo = url.path.split("/")[2] if url.path.startswith("/v2/") and url.path.count("/") > 2 else ""
        scope = f"repository:{repo}:pull"
        if auth.startswith("Bearer ") and scope in auth.split("|", 1)[-1].split():
            return self.reply(req, 200, b'{"ok": true}')
        challenge = f'Bearer realm="{self.realm or self.url("/token")}",service="fake",scope="{scope}"'
        self.reply(
            req, 401, b'{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}', {"WWW-Authenticate": challenge}
        )

    @staticmethod
    def reply(req: BaseHTTPRequestHandler, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        req.send_response(status)
        for name, value in (headers or {}).items():
            req.send_header(name, value)
        req.send_header("Content-Length", str(len(body)))
        req.end_headers()
        if req.command != "HEAD":
            req.wfile.write(body)


@pytest.fixture
def fake_registry() -> Iterator[_FakeRegistry]:
    """The fake, serving on a free loopback port for one test."""
    fake = _FakeRegistry()
    yield fake
    fake.close()


def test_bearer_token_is_fetched_and_the_request_retried(fake_registry: _FakeRegistry) -> None:
    """A 401 Bearer challenge makes the client fetch a token from the realm with its credentials and retry."""
    client = Client(fake_registry.host, credentials=Credentials(_FakeRegistry.USER, _FakeRegistry.PASSWORD))
    with client.request("GET", "/v2/app/manifests/1") as resp:
        assert resp.status == 200 and resp.read() == b'{"ok": true}'
    assert [(m, p) for m, p, _ in fake_registry.requests] == [
        ("GET", "/v2/app/manifests/1"),
        ("GET", "/token"),
        ("GET", "/v2/app/manifests/1"),
    ]
    assert fake_registry.token_requests == [{"service": ["fake"], "scope": ["repository:app:pull"], "account": ["teu"]}]
    assert fake_registry.requests[1][2].startswith("Basic ")
    assert fake_registry.requests[2][2] == "Bearer user|repository:app:pull"
    # A second repository: the new token covers both scopes, so the first one keeps working without a refetch.
    with client.request("HEAD", "/v2/other/blobs/x") as resp:
        assert resp.status == 200
    assert fake_registry.token_requests[-1]["scope"] == ["repository:app:pull", "repository:other:pull"]
    before = len(fake_registry.token_requests)
    with client.request("GET", "/v2/app/manifests/1") as resp:
        assert resp.status == 200
    assert len(fake_registry.token_requests) == before
    client.close()


def test_anonymous_token_without_credentials(fake_registry: _FakeRegistry) -> None:
    """Without credentials the token is fetched anonymously (no Authorization header at the realm)."""
    client = Client(fake_registry.host)
    with client.request("GET", "/v2/app/manifests/1") as resp:
        assert resp.status == 200
    assert fake_registry.requests[1] == ("GET", "/token", "")
    assert fake_registry.requests[2][2] == "Bearer anon|repository:app:pull"


def test_refused_token_is_unauthorized(fake_registry: _FakeRegistry) -> None:
    """A token server refusing the credentials ends the request with FAILED_PRECONDITION, after one try."""
    fake_registry.refuse_tokens = True
    client = Client(fake_registry.host, credentials=Credentials("teu", "wrong"))
    with pytest.raises(FailedPrecondition, match="unauthorized"):
        client.request("GET", "/v2/app/manifests/1")
    assert len(fake_registry.token_requests) == 1


def test_basic_challenge_sends_credentials(fake_registry: _FakeRegistry) -> None:
    """A Basic challenge is answered with the credentials; without any, the 401 is reported as unauthorized."""
    client = Client(fake_registry.host, credentials=Credentials(_FakeRegistry.USER, _FakeRegistry.PASSWORD))
    with client.request("GET", "/basic/x") as resp:
        assert resp.status == 200
    anonymous = Client(fake_registry.host)
    with anonymous.request("GET", "/basic/x") as resp:
        assert resp.status == 401
        assert isinstance(distribution.error_for(resp, "x"), FailedPrecondition)


def test_redirect_to_plain_http_elsewhere_is_refused(fake_registry: _FakeRegistry, monkeypatch: pytest.MonkeyPatch) -> None:
    """A redirect to plain HTTP on a non-loopback host is refused before any connection is made to it."""
    acquire: Callable[..., Any] = Client._acquire

    def loopback_only(self: Client, key: tuple[str, str], hostname: str, port: int | None) -> Any:
        assert distribution.is_loopback(hostname), f"tried to connect to {hostname}"
        return acquire(self, key, hostname, port)

    monkeypatch.setattr(Client, "_acquire", loopback_only)
    client = Client(fake_registry.host)
    with pytest.raises(Unavailable, match="refusing plain HTTP"):
        client.request("GET", "/redirect")


def test_fresh_token_refused_is_denied_without_a_loop(fake_registry: _FakeRegistry) -> None:
    """A 401 for a token just issued for the scope asked is a denial: one token fetch, the registry's error kept."""
    client = Client(fake_registry.host)
    with client.request("GET", "/denied/x") as resp:
        assert resp.status == 401
        error = distribution.error_for(resp, "pull")
    assert isinstance(error, FailedPrecondition) and "DENIED" in error.message
    assert len(fake_registry.token_requests) == 1


@pytest.fixture
def other_registry() -> Iterator[_FakeRegistry]:
    """A second fake on another loopback port: "another registry" or "another token server"."""
    fake = _FakeRegistry()
    yield fake
    fake.close()


_USER_PASS = Credentials(_FakeRegistry.USER, _FakeRegistry.PASSWORD)


def test_environment_credentials_are_ignored(
    storage: Storage, fake_registry: _FakeRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    """TEU_REGISTRY_AUTH no longer exists: a pull without credentials stays anonymous whatever the environment holds."""
    monkeypatch.setenv("TEU_REGISTRY_AUTH", f"{_FakeRegistry.USER}:{_FakeRegistry.PASSWORD}")
    with pytest.raises(InvalidArgument):  # the fake's "manifest" is not one; what matters is what it was sent
        storage.pull(f"{fake_registry.host}/app:1", False, lambda p: None)
    assert fake_registry.token_requests == [{"service": ["fake"], "scope": ["repository:app:pull"]}]
    assert fake_registry.authorizations() == ["Bearer anon|repository:app:pull"]


def test_credentials_of_one_pull_never_reach_another_registry(
    tmp_path: Path, fake_registry: _FakeRegistry, other_registry: _FakeRegistry
) -> None:
    """Through gRPC, a pull's credentials reach its own registry's token server, and the next pull, of another registry, goes anonymous."""
    storage = Storage.open(tmp_path / "state")
    auth = types_pb2.RegistryAuth(username=_FakeRegistry.USER, password=_FakeRegistry.PASSWORD)

    async def run() -> None:
        server = grpc.aio.server(interceptors=[ErrorInterceptor()])
        storage_pb2_grpc.add_StorageServiceServicer_to_server(StorageServicer(storage), server)
        sock = tmp_path / "storage.sock"
        server.add_insecure_port(f"unix:{sock}")
        await server.start()
        try:
            async with grpc.aio.insecure_channel(f"unix:{sock}") as channel:
                stub = storage_pb2_grpc.StorageServiceStub(channel)
                for ref, creds in ((f"{fake_registry.host}/app:1", auth), (f"{other_registry.host}/app:1", None)):
                    with pytest.raises(grpc.aio.AioRpcError) as failed:  # the fakes serve no real manifest
                        _ = [m async for m in stub.Pull(storage_pb2.PullRequest(ref=ref, insecure=True, auth=creds))]
                    assert failed.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        finally:
            await server.stop(None)
            storage.close()

    asyncio.run(run())
    basic = _USER_PASS.basic()
    assert basic in fake_registry.authorizations()
    assert other_registry.authorizations() == ["Bearer anon|repository:app:pull"]
    assert "account" not in other_registry.token_requests[0]


def test_plain_http_realm_on_another_host_gets_no_credentials(
    fake_registry: _FakeRegistry, other_registry: _FakeRegistry
) -> None:
    """A plain-HTTP token realm on another host (even on loopback) is asked for an anonymous token, never sent the password."""
    fake_registry.realm = f"http://localhost:{other_registry.port}/token"
    client = Client(fake_registry.host, credentials=_USER_PASS)
    with client.request("GET", "/v2/app/manifests/1") as resp:
        assert resp.status == 200
    assert other_registry.token_requests == [{"service": ["fake"], "scope": ["repository:app:pull"]}]
    assert other_registry.authorizations() == []
    assert fake_registry.authorizations() == ["Bearer anon|repository:app:pull"]


def test_plain_http_realm_off_loopback_is_refused(fake_registry: _FakeRegistry, monkeypatch: pytest.MonkeyPatch) -> None:
    """A registry naming a plain-HTTP token realm off loopback is refused before any connection is made to that realm."""
    acquire: Callable[..., Any] = Client._acquire

    def loopback_only(self: Client, key: tuple[str, str], hostname: str, port: int | None) -> Any:
        assert distribution.is_loopback(hostname), f"tried to connect to {hostname}"
        return acquire(self, key, hostname, port)

    monkeypatch.setattr(Client, "_acquire", loopback_only)
    fake_registry.realm = "http://192.0.2.1/token"
    client = Client(fake_registry.host, credentials=_USER_PASS)
    with pytest.raises(FailedPrecondition, match="not HTTPS"):
        client.request("GET", "/v2/app/manifests/1")
    assert fake_registry.authorizations() == [] and fake_registry.token_requests == []


@pytest.mark.parametrize(
    ("realm", "sent"),
    [
        ("https://auth.example.com/token", True),  # HTTPS elsewhere: Docker sends them there, so does Teu
        ("https://127.0.0.1:9/token", True),
        ("http://127.0.0.1:9/token", True),  # the registry's own (loopback) host, another port
        ("http://localhost:9/token", False),  # plain HTTP, another host name
        ("http://127.0.0.2:9/token", False),
    ],
)
def test_which_realms_get_the_credentials(realm: str, sent: bool) -> None:
    """Credentials go to a token realm that is HTTPS or on the registry's own host, and to no other."""
    client = Client("127.0.0.1:5000", credentials=_USER_PASS)
    assert (client._realm_credentials(realm) is _USER_PASS) is sent


@pytest.mark.parametrize(
    ("url", "private"),
    [
        ("https://registry.example.com/v2/", True),
        ("http://localhost:5000/v2/", True),
        ("http://127.0.0.9/token", True),
        ("http://[::1]:5000/v2/", True),
        ("http://registry.example.com/v2/", False),
        ("http://192.0.2.1/token", False),
        ("ftp://localhost/token", False),
    ],
)
def test_secrets_travel_only_over_tls_or_loopback(url: str, private: bool) -> None:
    """is_private, which guards every Basic header and token request, admits HTTPS and loopback plain HTTP only."""
    assert distribution.is_private(url) is private


def test_redirect_elsewhere_carries_no_authorization(fake_registry: _FakeRegistry, other_registry: _FakeRegistry) -> None:
    """A redirect, after a Basic-authenticated request, to another host is followed without the Authorization header."""
    fake_registry.redirect = other_registry.url("/basic/x")
    client = Client(fake_registry.host, credentials=_USER_PASS)
    with client.request("GET", "/basic/redirect") as resp:
        assert resp.status == 401  # the other host wants credentials of its own; it gets none
    assert _USER_PASS.basic() in fake_registry.authorizations()
    assert other_registry.requests and other_registry.authorizations() == []


def test_identity_token_is_exchanged_by_refresh_grant(fake_registry: _FakeRegistry) -> None:
    """An identity token is POSTed to the realm as an OAuth2 refresh_token grant (no Basic), and its access token used."""
    client = Client(fake_registry.host, credentials=Credentials(identity_token=_FakeRegistry.REFRESH))
    with client.request("GET", "/v2/app/manifests/1") as resp:
        assert resp.status == 200
    assert [(m, p) for m, p, _ in fake_registry.requests][1] == ("POST", "/token")
    assert fake_registry.token_requests == [
        {
            "grant_type": ["refresh_token"],
            "refresh_token": [_FakeRegistry.REFRESH],
            "client_id": ["teu"],
            "service": ["fake"],
            "scope": ["repository:app:pull"],
        }
    ]
    assert fake_registry.authorizations() == ["Bearer user|repository:app:pull"]


def test_refused_identity_token_is_unauthorized(fake_registry: _FakeRegistry) -> None:
    """An identity token the token server refuses (400 invalid_grant) is FAILED_PRECONDITION "unauthorized"."""
    client = Client(fake_registry.host, credentials=Credentials(identity_token="stale"))
    with pytest.raises(FailedPrecondition, match="unauthorized"):
        client.request("GET", "/v2/app/manifests/1")


def test_credentials_from_the_request() -> None:
    """Empty RegistryAuth is anonymous, a user name with ':' is INVALID_ARGUMENT, and repr never shows a secret."""
    assert credentials.from_proto(types_pb2.RegistryAuth()) is None
    with pytest.raises(InvalidArgument, match="':'"):
        credentials.from_proto(types_pb2.RegistryAuth(username="a:b", password="x"))
    creds = credentials.from_proto(types_pb2.RegistryAuth(username="u", password="hunter2", identity_token="tok"))
    assert creds == Credentials("u", "hunter2", "tok")
    assert "hunter2" not in repr(creds) and "tok" not in repr(creds)


def test_gzip_blob_is_deterministic(storage: Storage, tars: Any, kit: Any) -> None:
    """Compressing the same layer twice gives the same blob, so re-pushes from another store can be found too."""
    image = kit.import_tar(storage, tars.busybox(), "det")
    pusher = _Push(
        storage.layers, storage.images, Client("localhost:1"), parse_remote("localhost:1/x", allow_digest=False), lambda p: None
    )
    first, path1 = pusher._compress(image.layers[0], threading.Event())
    second, path2 = pusher._compress(image.layers[0], threading.Event())
    assert first == second and path1.read_bytes() == path2.read_bytes()
    assert gzip.decompress(path1.read_bytes()) == tars.busybox()
    for p in (path1, path2):
        p.unlink()


def test_blob_records_go_with_their_layer(storage: Storage, tars: Any, kit: Any) -> None:
    """When a layer is collected, its blob records (and where they were seen) are forgotten too."""
    image = kit.import_tar(storage, tars.busybox(), "rec")
    blob = Blob("sha256:" + "b" * 64, image.layers[0], 10, ocispec.OCI_LAYER_GZIP)
    storage.store.record_blobs([blob], "localhost:1", "x")
    assert storage.store.blobs_of(image.layers[0]) == [blob]
    assert storage.store.repositories_with("localhost:1", blob.digest) == ["x"]
    storage.remove_image("rec", force=False)
    assert storage.store.blobs_of(image.layers[0]) == []
    assert storage.store.repositories_with("localhost:1", blob.digest) == []
