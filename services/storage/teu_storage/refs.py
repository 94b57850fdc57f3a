"""Image references: parsing, validation and normalisation of "name[:tag]".

The grammar follows Docker's reference package: a name is one or more lowercase path components
separated by "/", optionally preceded by a registry host[:port]; the tag is ``[\\w][\\w.-]{0,127}``.
References are stored in their familiar form ("busybox:latest", not "docker.io/library/busybox:latest"),
so every spelling of the same Docker Hub name maps to one stored tag; :func:`split_name` and
:attr:`Reference.canonical` are the one place a familiar name is expanded back to its registry.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from teu_api.errors import InvalidArgument

__all__ = ["DEFAULT_TAG", "Reference", "is_id_prefix", "parse", "split_name"]

DEFAULT_TAG = "latest"
_DOCKER_HUB = "docker.io"
_MAX_NAME = 255
_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*", re.ASCII)
_HOST = re.compile(
    r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])(?:\.(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]))*"
    r"(?::[0-9]+)?",
    re.ASCII,
)
_TAG = re.compile(r"[\w][\w.-]{0,127}", re.ASCII)
_HEX64 = re.compile(r"[a-f0-9]{64}", re.ASCII)
_HEX_PREFIX = re.compile(r"(?:sha256:)?[a-f0-9]{1,64}", re.ASCII)
_HUB_HOSTS = (_DOCKER_HUB, "index.docker.io")


@dataclass(frozen=True)
class Reference:
    """A validated, normalised reference; ``str()`` gives the stored "name:tag" form."""

    name: str
    tag: str

    def __str__(self) -> str:
        return f"{self.name}:{self.tag}"

    @property
    def canonical(self) -> str:
        """The fully qualified form: "docker.io/library/busybox:latest" for "busybox:latest"."""
        registry, repository = split_name(self.name)
        return f"{registry}/{repository}:{self.tag}"


def parse(ref: str) -> Reference:
    """Parses ``ref`` ("name[:tag]"), defaulting the tag to "latest".

    Raises InvalidArgument for anything Docker would call an invalid reference format, for digest
    references ("name@sha256:..."), which Teu does not support yet, and for a name that is a full
    64-hex image id (it would be ambiguous with the id).
    """
    if not ref:
        raise InvalidArgument("empty image reference")
    if "@" in ref:
        raise InvalidArgument(f"digest references are not supported: {ref}")
    name, tag = ref, DEFAULT_TAG
    # A ':' after the last '/' introduces the tag; one before it belongs to a registry port.
    colon = ref.rfind(":")
    if colon > ref.rfind("/"):
        name, tag = ref[:colon], ref[colon + 1 :]
    if not _TAG.fullmatch(tag):
        raise InvalidArgument(f"invalid tag in reference: {ref}")
    name = _familiar(_validate_name(name, ref))
    if _HEX64.fullmatch(name):
        raise InvalidArgument(f"invalid repository name ({name}), cannot be a 64-byte hexadecimal string")
    return Reference(name, tag)


def is_id_prefix(ref: str) -> bool:
    """Whether ``ref`` could be an image id or id prefix ("sha256:" optional, 1 to 64 lowercase hex)."""
    return _HEX_PREFIX.fullmatch(ref) is not None


def split_name(name: str) -> tuple[str, str]:
    """(registry, repository) of a name as :func:`parse` returns it.

    Docker's rule: the first component is a registry if more follow and it looks like a host (a
    dot, a port or "localhost"); otherwise the name is on Docker Hub, where one-component names
    live under "library/". "busybox" is ("docker.io", "library/busybox").
    """
    first, slash, rest = name.partition("/")
    if slash and _is_host(first):
        return first, rest
    return _DOCKER_HUB, name if slash else f"library/{name}"


def _is_host(component: str) -> bool:
    return "." in component or ":" in component or component == "localhost"


def _validate_name(name: str, ref: str) -> str:
    if not name or len(name) > _MAX_NAME:
        raise InvalidArgument(f"invalid reference format: {ref}")
    parts = name.split("/")
    # The first component is a registry only if more follow and it looks like a host (split_name).
    if len(parts) > 1 and _is_host(parts[0]):
        if not _HOST.fullmatch(parts[0]):
            raise InvalidArgument(f"invalid registry host in reference: {ref}")
        parts = parts[1:]
    for part in parts:
        if not _COMPONENT.fullmatch(part):
            raise InvalidArgument(f"invalid reference format: {ref}")
    return name


def _familiar(name: str) -> str:
    """Strips the implicit Docker Hub host and "library/" namespace, as ``docker images`` shows them."""
    host, _, rest = name.partition("/")
    if host in _HUB_HOSTS and rest:
        name = rest
    if name.startswith("library/") and name.count("/") == 1:
        name = name[len("library/") :]
    return name
