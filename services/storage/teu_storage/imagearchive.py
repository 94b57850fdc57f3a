"""Image archives: docker-archive (``docker save``) and OCI layout (``skopeo copy ... oci-archive:``).

Writing streams a tar: layers come from their tar-splits, so they are the exact bytes whose digests
the configs list. Reading never extracts the outer archive to disk: members are looked up by name
inside it, so a member called ``../../etc/x`` or a symlink member pointing at ``/etc`` can write
nothing; such archives are refused anyway as hostile. Every digest is checked: config against the
image id it claims (file name or descriptor), OCI blobs against their descriptors, and every layer's
uncompressed bytes against the config's diff ids.

An OCI index entry that is itself a multi-platform index loads this host's platform, or nothing
(NotFound), by the same rule as a pull (ocispec.pick_platform).

docker-archive written::

    <diff hex>/layer.tar ...   <config hex>.json   manifest.json   repositories

OCI layout written (uncompressed layers, so layer digest = diff id)::

    oci-layout   blobs/sha256/<hex> (layers, configs, manifests)   index.json
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import re
import tarfile
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Protocol

from teu_api.errors import Internal, InvalidArgument
from teu_api.tarheader import pax_header
from teu_storage import archive, imagespec, ocispec, refs
from teu_storage.ocispec import OCI_CONFIG, OCI_INDEX, OCI_LAYER, OCI_MANIFEST

__all__ = [
    "FORMATS",
    "Archive",
    "LayerRef",
    "LayerSource",
    "LoadItem",
    "SaveItem",
    "spool_layer",
    "write_archive",
]

FORMATS = ("docker-archive", "oci-archive")
_REF_NAME = "org.opencontainers.image.ref.name"
_CONTAINERD_NAME = "io.containerd.image.name"
_INVALID = "invalid archive: "  # what every refusal of a malformed archive starts with
_MAX_JSON = 8 << 20  # manifests and configs are kilobytes; refuse to read absurd ones into memory
_MAX_MEMBERS = 100_000
_CHUNK = 1 << 20


class LayerSource(Protocol):
    """A layer's tar bytes: ``size`` of them, from chunks(), then finish() verifies what was read."""

    size: int

    def chunks(self) -> Iterator[bytes]:
        """The bytes, in pieces of any size."""

    def finish(self) -> None:
        """Raises if the bytes read were not the layer's."""


@dataclass(frozen=True)
class SaveItem:
    """An image to write: its config bytes, layers (diff ids, bottom first) and references."""

    image_id: str
    config: bytes
    layers: tuple[str, ...]
    refs: tuple[str, ...]
    mtime: int


class _TarOut:
    """A tar written straight to ``out``: headers from teu_api.tarheader (tarfile's own bytes, PAX
    records where needed), each member's data as its chunks come (tarfile's copy would read them
    through a file object, in pieces, a layer's thousands of headers one read each). The archive is
    byte for byte what tarfile writes in PAX format: a saved image's digest does not change."""

    def __init__(self, out: IO[bytes]) -> None:
        self._out = out
        self._offset = 0

    def add(self, name: str, size: int, mtime: int, chunks: Iterable[bytes]) -> None:
        """A regular file ``name`` of ``size`` bytes (Internal if ``chunks`` hold another number)."""
        info = tarfile.TarInfo(name)
        info.size, info.mode, info.mtime = size, 0o644, mtime
        header = pax_header(info)
        self._out.write(header)
        written = 0
        for chunk in chunks:
            self._out.write(chunk)
            written += len(chunk)
        if written != size:
            raise Internal(f"{name}: {written} bytes where {size} were recorded")
        pad = -size % tarfile.BLOCKSIZE
        self._out.write(b"\0" * pad)
        self._offset += len(header) + size + pad

    def close(self) -> None:
        """The end of the archive: two empty blocks, then up to a whole record, as tarfile ends one."""
        end = 2 * tarfile.BLOCKSIZE
        end += -(self._offset + end) % tarfile.RECORDSIZE
        self._out.write(b"\0" * end)


def write_archive(items: Sequence[SaveItem], fmt: str, open_layer: Callable[[str], LayerSource], out: IO[bytes]) -> None:
    """Writes ``items`` as one archive of format ``fmt`` (see FORMATS) to ``out``."""
    tar = _TarOut(out)
    mtime = max((i.mtime for i in items), default=0)
    written: set[str] = set()
    written_sizes: dict[str, int] = {}

    def add_bytes(name: str, data: bytes) -> None:
        tar.add(name, len(data), mtime, (data,))

    def add_layer(name: str, diff_id: str) -> int:
        source = open_layer(diff_id)
        tar.add(name, source.size, mtime, source.chunks())
        source.finish()
        return source.size

    if fmt == "docker-archive":
        manifest: list[dict[str, Any]] = []
        repositories: dict[str, dict[str, str]] = {}
        for item in items:
            for diff_id in item.layers:
                if diff_id not in written:
                    written.add(diff_id)
                    add_layer(f"{_hex(diff_id)}/layer.tar", diff_id)
            config_name = f"{_hex(item.image_id)}.json"
            if config_name not in written:
                written.add(config_name)
                add_bytes(config_name, item.config)
            manifest.append(
                {
                    "Config": config_name,
                    "RepoTags": list(item.refs) or None,
                    "Layers": [f"{_hex(d)}/layer.tar" for d in item.layers],
                }
            )
            for ref in item.refs:
                name, _, tag = ref.rpartition(":")
                if item.layers:
                    repositories.setdefault(name, {})[tag] = _hex(item.layers[-1])
        add_bytes("manifest.json", _json(manifest))
        add_bytes("repositories", _json(repositories))
    elif fmt == "oci-archive":
        add_bytes("oci-layout", _json({"imageLayoutVersion": "1.0.0"}))
        index: list[dict[str, Any]] = []
        for item in items:
            descriptors = []
            for diff_id in item.layers:
                if diff_id in written:
                    descriptors.append(_descriptor(OCI_LAYER, diff_id, written_sizes[diff_id]))
                    continue
                written.add(diff_id)
                size = add_layer(f"blobs/sha256/{_hex(diff_id)}", diff_id)
                written_sizes[diff_id] = size
                descriptors.append(_descriptor(OCI_LAYER, diff_id, size))
            if item.image_id not in written:
                written.add(item.image_id)
                add_bytes(f"blobs/sha256/{_hex(item.image_id)}", item.config)
            manifest_doc = _json(
                {
                    "schemaVersion": 2,
                    "mediaType": OCI_MANIFEST,
                    "config": _descriptor(OCI_CONFIG, item.image_id, len(item.config)),
                    "layers": descriptors,
                }
            )
            digest = ocispec.digest(manifest_doc)
            if digest not in written:
                written.add(digest)
                add_bytes(f"blobs/sha256/{_hex(digest)}", manifest_doc)
            entry = _descriptor(OCI_MANIFEST, digest, len(manifest_doc))
            for ref in item.refs or ("",):
                named = dict(entry)
                if ref:
                    named["annotations"] = {_REF_NAME: ref, _CONTAINERD_NAME: refs.parse(ref).canonical}
                index.append(named)
        add_bytes("index.json", _json({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": index}))
    else:
        raise InvalidArgument(f"unknown archive format {fmt!r}: want one of {', '.join(FORMATS)}")
    tar.close()


@dataclass(frozen=True)
class LayerRef:
    """A layer inside an archive: its member name, expected diff id and, for OCI, blob digest."""

    member: str
    diff_id: str
    blob_digest: str | None = None


@dataclass
class LoadItem:
    """An image found in an archive, its digests not yet all verified (layers are, when read)."""

    image_id: str
    config: bytes
    layers: list[LayerRef]
    refs: list[str] = field(default_factory=list)


class Archive:
    """A docker-archive or OCI-layout tar on disk, read in place."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self._tar = tarfile.open(path, mode="r:", tarinfo=archive.BoundedTarInfo)  # noqa: SIM115 - close()
            self._members: dict[str, tarfile.TarInfo] = {}
            self._links: dict[str, str] = {}
            for count, member in enumerate(self._tar, 1):
                if count > _MAX_MEMBERS:
                    raise InvalidArgument("invalid archive: too many members")
                self._index(member)
            archive.check_end_marker(path, self._tar.offset)
        except (tarfile.TarError, EOFError, ValueError, OverflowError) as exc:
            raise InvalidArgument(f"invalid archive: {exc}") from exc

    def close(self) -> None:
        """Closes the underlying file."""
        self._tar.close()

    def _index(self, member: tarfile.TarInfo) -> None:
        name = _member_name(member.name)
        if member.isreg():
            self._members[name] = member
        elif member.issym() or member.islnk():
            target = member.linkname
            if member.issym():
                if target.startswith("/"):
                    raise InvalidArgument(f"invalid archive: {member.name!r} links to an absolute path")
                target = posixpath.join(posixpath.dirname(name), target)
            self._links[name] = _member_name(posixpath.normpath(target))
        elif not member.isdir():
            raise InvalidArgument(f"invalid archive: {member.name!r} is not a file or directory")

    def _member(self, name: str) -> tarfile.TarInfo:
        name = _member_name(name)
        for _ in range(40):
            if name in self._members:
                return self._members[name]
            if name not in self._links:
                break
            name = self._links[name]
        raise InvalidArgument(f"invalid archive: {name!r} is missing")

    def has(self, name: str) -> bool:
        """Whether the archive holds file ``name``."""
        try:
            self._member(name)
            return True
        except InvalidArgument:
            return False

    def open(self, name: str) -> IO[bytes]:
        """A stream of member ``name``'s content."""
        data = self._tar.extractfile(self._member(name))
        if data is None:
            raise InvalidArgument(f"invalid archive: {name!r} has no content")
        return data

    def read(self, name: str) -> bytes:
        """Member ``name``'s content (a small JSON document)."""
        member = self._member(name)
        if member.size > _MAX_JSON:
            raise InvalidArgument(f"invalid archive: {name!r} is too large")
        with self.open(name) as f:
            return f.read()

    def items(self) -> list[LoadItem]:
        """The images in the archive, whichever of the two formats it is."""
        if self.has("manifest.json"):
            return self._docker_items()
        if self.has("index.json") and self.has("oci-layout"):
            return self._oci_items()
        raise InvalidArgument("invalid archive: neither a docker-archive (manifest.json) nor an OCI layout")

    def _docker_items(self) -> list[LoadItem]:
        manifest = _load_json(self.read("manifest.json"), "manifest.json")
        if not isinstance(manifest, list):
            raise InvalidArgument("invalid archive: manifest.json is not a list")
        items = []
        for entry in manifest:
            if not isinstance(entry, dict) or not isinstance(entry.get("Config"), str):
                raise InvalidArgument("invalid archive: bad manifest.json entry")
            config_name = entry["Config"]
            config = self.read(config_name)
            image_id = ocispec.digest(config)
            claimed = re.fullmatch(r"(?:blobs/sha256/)?([a-f0-9]{64})(?:\.json)?", config_name)
            if claimed and "sha256:" + claimed.group(1) != image_id:
                raise InvalidArgument(f"invalid archive: digest mismatch for config {config_name}")
            diff_ids = _diff_ids(config)
            layers = entry.get("Layers") or []
            if not isinstance(layers, list) or len(layers) != len(diff_ids):
                raise InvalidArgument(f"invalid archive: {config_name} lists {len(diff_ids)} layers")
            for layer in layers:
                if not isinstance(layer, str):
                    raise InvalidArgument("invalid archive: bad layer path")
            tags = entry.get("RepoTags") or []
            if not isinstance(tags, list):
                raise InvalidArgument("invalid archive: RepoTags is not a list")
            items.append(
                LoadItem(
                    image_id=image_id,
                    config=config,
                    layers=[LayerRef(m, d) for m, d in zip(layers, diff_ids, strict=True)],
                    refs=[str(refs.parse(str(t))) for t in tags],
                )
            )
        return items

    def _oci_items(self) -> list[LoadItem]:
        index = _load_json(self.read("index.json"), "index.json")
        items: dict[str, LoadItem] = {}
        for desc in ocispec.descriptors(index, "manifests", "index entry", _INVALID):
            item = self._oci_manifest(desc, depth=0)
            found = items.setdefault(item.image_id, item)
            ref = _oci_ref(desc.get("annotations"))
            if ref and ref not in found.refs:
                found.refs.append(ref)
        return list(items.values())

    def _oci_manifest(self, desc: dict[str, Any], depth: int) -> LoadItem:
        doc = _load_json(self._blob(desc), desc["digest"])
        if not isinstance(doc, dict):
            raise InvalidArgument(f"invalid archive: {desc['digest']} is not a JSON object")
        if ocispec.is_index(doc, desc.get("mediaType", "")):
            if depth > 2:
                raise InvalidArgument("invalid archive: nested indexes are too deep")
            return self._oci_manifest(ocispec.pick_platform(doc, f"image index {desc['digest']} in the archive"), depth + 1)
        if doc.get("config") is None:
            raise InvalidArgument("invalid archive: manifest without config")
        config_desc = ocispec.descriptor(doc["config"], "config", _INVALID)
        config = self._blob(config_desc)
        diff_ids = _diff_ids(config)
        layer_descs = ocispec.descriptors(doc, "layers", "layer", _INVALID)
        if len(layer_descs) != len(diff_ids):
            raise InvalidArgument("invalid archive: manifest and config disagree on the number of layers")
        return LoadItem(
            image_id=config_desc["digest"],
            config=config,
            layers=[
                LayerRef(_blob_name(d["digest"]), diff_id, d["digest"]) for d, diff_id in zip(layer_descs, diff_ids, strict=True)
            ],
        )

    def _blob(self, desc: dict[str, Any]) -> bytes:
        data = self.read(_blob_name(desc["digest"]))
        if ocispec.digest(data) != desc["digest"]:
            raise InvalidArgument(f"invalid archive: digest mismatch for blob {desc['digest']}")
        return data


def spool_layer(src: IO[bytes], out: IO[bytes], limit: int) -> tuple[str, str]:
    """Copies a (possibly gzip-compressed) layer to ``out`` uncompressed.

    Returns (digest of the bytes read, digest of the bytes written = diff id). InvalidArgument for
    zstd/xz/bzip2 layers, broken gzip, or more than ``limit`` uncompressed bytes (a gzip bomb).
    """
    raw_hash, tar_hash = hashlib.sha256(), hashlib.sha256()
    first = src.read(_CHUNK)
    if first.startswith((b"\x28\xb5\x2f\xfd", b"\xfd7zXZ\x00", b"BZh")):
        raise InvalidArgument("invalid archive: zstd, xz and bzip2 layers are not supported")
    gunzip = _Gunzip() if first.startswith(b"\x1f\x8b") else None
    written = 0
    chunk = first
    try:
        while chunk:
            raw_hash.update(chunk)
            for data in gunzip.feed(chunk) if gunzip is not None else (chunk,):
                written += len(data)
                if written > limit:
                    raise InvalidArgument(f"invalid archive: a layer exceeds {limit} bytes")
                tar_hash.update(data)
                out.write(data)
            chunk = src.read(_CHUNK)
        if gunzip is not None and not gunzip.eof:
            raise InvalidArgument("invalid archive: truncated gzip layer")
    except zlib.error as exc:
        raise InvalidArgument(f"invalid archive: broken gzip layer: {exc}") from exc
    except (tarfile.TarError, EOFError) as exc:
        raise InvalidArgument(f"invalid archive: {exc}") from exc
    return "sha256:" + raw_hash.hexdigest(), "sha256:" + tar_hash.hexdigest()


class _Gunzip:
    """Inflates gzip (members may be concatenated) in pieces of at most ``_CHUNK`` bytes, so a small
    compressed chunk that inflates to gigabytes (a bomb) never sits in memory whole."""

    def __init__(self) -> None:
        self._d = zlib.decompressobj(16 + zlib.MAX_WBITS)

    @property
    def eof(self) -> bool:
        """Whether the last member seen so far is complete."""
        return self._d.eof

    def feed(self, chunk: bytes) -> Iterator[bytes]:
        """The inflated bytes of ``chunk``, piece by piece."""
        data = chunk
        while True:
            out = self._d.decompress(data, _CHUNK)
            if out:
                yield out
            if self._d.eof and self._d.unused_data:  # the next member begins
                data = self._d.unused_data
                self._d = zlib.decompressobj(16 + zlib.MAX_WBITS)
                continue
            data = self._d.unconsumed_tail
            if not data and len(out) < _CHUNK:
                return


def _member_name(name: str) -> str:
    return archive.relative_name(name, "archive")


def _load_json(data: bytes, what: str) -> Any:
    try:
        return json.loads(data)
    except ValueError as exc:
        raise InvalidArgument(f"invalid archive: {what} is not JSON: {exc}") from exc


def _diff_ids(config: bytes) -> list[str]:
    return imagespec.diff_ids(_load_json(config, "image config"), "invalid archive: ")


def _oci_ref(annotations: Any) -> str | None:
    """The reference an index entry names: containerd's full name, else an OCI ref.name that is one."""
    if not isinstance(annotations, dict):
        return None
    for key in (_CONTAINERD_NAME, _REF_NAME):
        value = annotations.get(key)
        # A bare ref.name ("latest") is only a tag; without a repository there is nothing to name.
        if isinstance(value, str) and (":" in value or "/" in value):
            try:
                return str(refs.parse(value))
            except InvalidArgument:
                continue
    return None


def _blob_name(digest: str) -> str:
    return "blobs/sha256/" + _hex(digest)


def _descriptor(media: str, digest: str, size: int) -> dict[str, Any]:
    return {"mediaType": media, "digest": digest, "size": size}


def _hex(digest: str) -> str:
    return digest.removeprefix("sha256:")


def _json(doc: Any) -> bytes:
    return json.dumps(doc, separators=(",", ":")).encode()
