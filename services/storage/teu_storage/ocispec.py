"""The OCI (and Docker) image-format vocabulary that pull, push and image archives share.

What a caller may rely on: the media type names; :func:`descriptor` and :func:`descriptors` return
only descriptors with a sha256 ``digest`` and a non-negative integer ``size``; :func:`is_index`
tells an image index (or Docker manifest list) from an image manifest; :func:`pick_platform` is
Teu's one rule for choosing an image from an index; :func:`digest` is how every blob is named.
"""

from __future__ import annotations

import hashlib
from typing import Any

from teu_api.errors import InvalidArgument, NotFound
from teu_storage.imagespec import DIGEST, host_architecture

__all__ = [
    "DOCKER_LIST",
    "DOCKER_MANIFEST",
    "DOCKER_SCHEMA1",
    "GZIP_LAYERS",
    "OCI_CONFIG",
    "OCI_INDEX",
    "OCI_LAYER",
    "OCI_LAYER_GZIP",
    "OCI_MANIFEST",
    "TAR_LAYERS",
    "descriptor",
    "descriptors",
    "digest",
    "is_index",
    "pick_platform",
]

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_SCHEMA1 = (
    "application/vnd.docker.distribution.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
)
GZIP_LAYERS = (OCI_LAYER_GZIP, "application/vnd.docker.image.rootfs.diff.tar.gzip")
TAR_LAYERS = (OCI_LAYER, "application/vnd.docker.image.rootfs.diff.tar")


def digest(data: bytes) -> str:
    """The sha256 digest of ``data``, "sha256:<hex>"."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def descriptor(doc: Any, what: str, prefix: str = "") -> dict[str, Any]:
    """``doc`` if it is a descriptor Teu can follow; InvalidArgument (``prefix`` + naming ``what``) if not."""
    if not isinstance(doc, dict) or not isinstance(doc.get("digest"), str) or not DIGEST.fullmatch(doc["digest"]):
        raise InvalidArgument(f"{prefix}bad {what} descriptor (only sha256 digests are supported)")
    size = doc.get("size")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise InvalidArgument(f"{prefix}{what} {doc['digest']} has no valid size")
    return doc


def descriptors(doc: Any, key: str, what: str, prefix: str = "") -> list[dict[str, Any]]:
    """The list ``doc[key]`` with every entry checked by :func:`descriptor`."""
    found = doc.get(key) if isinstance(doc, dict) else None
    if not isinstance(found, list):
        raise InvalidArgument(f"{prefix}no {key} list")
    return [descriptor(d, what, prefix) for d in found]


def is_index(doc: dict[str, Any], media_type: str) -> bool:
    """Whether a manifest document (served or stored as ``media_type``) is an index of manifests."""
    return (doc.get("mediaType") or media_type) in (OCI_INDEX, DOCKER_LIST) or "manifests" in doc


def pick_platform(index: dict[str, Any], what: str) -> dict[str, Any]:
    """The descriptor of ``index``'s entry for linux on this host's architecture.

    NotFound naming the platform when there is none, for a pull and a load alike: that is what
    ``docker pull`` does, and ``docker load --platform`` for a platform the archive lacks. Taking
    some other entry instead would store an image whose programs cannot run here ("exec format
    error" at the first start, far from the cause), and Teu keeps one platform per image.
    """
    entries = index.get("manifests")
    if not isinstance(entries, list):
        raise InvalidArgument(f"{what}: image index without a manifests list")
    arch = host_architecture()
    for entry in entries:
        platform = entry.get("platform") if isinstance(entry, dict) else None
        if isinstance(platform, dict) and platform.get("os") == "linux" and platform.get("architecture") == arch:
            return descriptor(entry, "index entry", f"{what}: ")
    raise NotFound(f"{what}: no matching manifest for linux/{arch} in the manifest list entries")
