"""Reference parsing follows Docker's grammar and stores the familiar form."""

from __future__ import annotations

import pytest

from teu_api.errors import InvalidArgument
from teu_storage import refs


@pytest.mark.parametrize(
    ("ref", "stored"),
    [
        ("busybox", "busybox:latest"),
        ("busybox:1.36", "busybox:1.36"),
        ("library/busybox", "busybox:latest"),
        ("docker.io/library/busybox:musl", "busybox:musl"),
        ("docker.io/foo/bar", "foo/bar:latest"),
        ("index.docker.io/foo/bar:v1", "foo/bar:v1"),
        ("localhost:5000/team/app:1.0-rc_1", "localhost:5000/team/app:1.0-rc_1"),
        ("localhost/app", "localhost/app:latest"),
        ("registry.example.com/a.b/c__d/e--f", "registry.example.com/a.b/c__d/e--f:latest"),
        ("my-app:Tag_With.Mixed-CASE", "my-app:Tag_With.Mixed-CASE"),
        ("a" * 60 + ":x", "a" * 60 + ":x"),
    ],
)
def test_valid_references_normalise(ref: str, stored: str) -> None:
    """Valid references parse to the expected stored "name:tag"."""
    assert str(refs.parse(ref)) == stored


@pytest.mark.parametrize(
    "ref",
    [
        "",
        "Busybox",
        "busybox:",
        ":tag",
        "busybox:-tag",
        "busybox:" + "t" * 129,
        "a//b",
        "/abs",
        "trailing/",
        "a_-b",
        "-lead",
        "busybox@sha256:" + "a" * 64,
        "bad host!/x",
        "a:b:c",
        "a" * 64,
        "b..c",
        "x" * 256,
    ],
)
def test_invalid_references_are_refused(ref: str) -> None:
    """Malformed references raise InvalidArgument."""
    with pytest.raises(InvalidArgument):
        refs.parse(ref)


def test_id_prefix_recognition() -> None:
    """Hex strings with or without "sha256:" may be ids; other strings may not."""
    assert refs.is_id_prefix("abc123")
    assert refs.is_id_prefix("sha256:" + "0" * 64)
    assert not refs.is_id_prefix("sha256:")
    assert not refs.is_id_prefix("busybox")
    assert not refs.is_id_prefix("0" * 65)


@pytest.mark.parametrize(
    ("ref", "registry", "repository", "canonical"),
    [
        ("busybox", "docker.io", "library/busybox", "docker.io/library/busybox:latest"),
        ("docker.io/library/busybox:musl", "docker.io", "library/busybox", "docker.io/library/busybox:musl"),
        ("foo/bar:v1", "docker.io", "foo/bar", "docker.io/foo/bar:v1"),
        ("localhost:5000/team/app:1", "localhost:5000", "team/app", "localhost:5000/team/app:1"),
        ("localhost/app", "localhost", "app", "localhost/app:latest"),
        ("registry.example.com/app", "registry.example.com", "app", "registry.example.com/app:latest"),
    ],
)
def test_familiar_names_expand_to_their_registry(ref: str, registry: str, repository: str, canonical: str) -> None:
    """A stored name splits into registry and repository as Docker's rule says; canonical is the full form."""
    parsed = refs.parse(ref)
    assert refs.split_name(parsed.name) == (registry, repository)
    assert parsed.canonical == canonical
