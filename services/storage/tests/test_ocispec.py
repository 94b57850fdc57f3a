"""The shared OCI helpers: descriptor checks and the one platform rule for image indexes."""

from __future__ import annotations

from typing import Any

import pytest

from teu_api.errors import InvalidArgument, NotFound
from teu_storage import ocispec
from teu_storage.imagespec import host_architecture

_HOST = host_architecture()
_FOREIGN = "s390x" if _HOST != "s390x" else "amd64"


def _entry(char: str, os: str = "linux", arch: str = _HOST, **extra: Any) -> dict[str, Any]:
    return {
        "mediaType": ocispec.OCI_MANIFEST,
        "digest": "sha256:" + char * 64,
        "size": 10,
        "platform": {"os": os, "architecture": arch},
        **extra,
    }


def test_picker_takes_this_host_whatever_comes_first() -> None:
    """The linux entry of this host's architecture is chosen, wherever it stands in the index."""
    index = {"manifests": [_entry("a", arch=_FOREIGN), _entry("b", os="windows"), _entry("c")]}
    assert ocispec.pick_platform(index, "index")["digest"] == "sha256:" + "c" * 64


@pytest.mark.parametrize(
    "entries",
    [
        [],
        [_entry("a", arch=_FOREIGN)],
        [_entry("a", os="windows")],
        [{"digest": "sha256:" + "a" * 64, "size": 1}],  # no platform: nothing says it runs here
        [_entry("a", arch="unknown", os="unknown")],  # an attestation manifest, as BuildKit writes
    ],
)
def test_picker_refuses_an_index_without_this_platform(entries: list[dict[str, Any]]) -> None:
    """No entry for linux/<this arch> is NotFound naming the platform, never a fall back to another entry."""
    with pytest.raises(NotFound, match=f"no matching manifest for linux/{_HOST}"):
        ocispec.pick_platform({"manifests": entries}, "index")


def test_picker_checks_the_entry_it_returns() -> None:
    """The chosen entry must be a usable descriptor; a malformed index is InvalidArgument."""
    with pytest.raises(InvalidArgument, match="index entry"):
        ocispec.pick_platform({"manifests": [_entry("a", digest="sha512:00")]}, "index")
    with pytest.raises(InvalidArgument, match="without a manifests list"):
        ocispec.pick_platform({"manifests": {}}, "index")


@pytest.mark.parametrize(
    "doc",
    [
        None,
        {"size": 1},
        {"digest": "sha256:" + "A" * 64, "size": 1},
        {"digest": "sha256:" + "a" * 64},
        {"digest": "sha256:" + "a" * 64, "size": -1},
        {"digest": "sha256:" + "a" * 64, "size": True},
    ],
)
def test_bad_descriptors_are_refused(doc: Any) -> None:
    """A descriptor needs a sha256 digest and a non-negative integer size."""
    with pytest.raises(InvalidArgument, match=r"^x: "):
        ocispec.descriptor(doc, "layer", "x: ")


def test_index_detection() -> None:
    """An index is known by its media type, served or written, or by its manifests list."""
    assert ocispec.is_index({}, ocispec.DOCKER_LIST)
    assert ocispec.is_index({"mediaType": ocispec.OCI_INDEX}, ocispec.OCI_MANIFEST)
    assert ocispec.is_index({"manifests": []}, "")
    assert not ocispec.is_index({"layers": []}, ocispec.OCI_MANIFEST)
