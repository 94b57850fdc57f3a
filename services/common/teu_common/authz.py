"""Who may call what over the gateway's TCP listener: roles from mutual-TLS client certificates.

The unix socket has no authorization of its own (its file mode is it: root and the ``teu`` group).
The TCP listener speaks only mutual TLS, so a peer that gets as far as a call holds a certificate
signed by the configured CA; this module decides what that certificate may do:

* identity: the Subject's CN (exactly one, not empty), else UNAUTHENTICATED;
* role: the Subject's OU naming one of ``viewer``, ``operator``, ``admin`` (other OUs are ignored;
  none, or more than one role, is no role), else PERMISSION_DENIED;
* each role has an allowlist: every public method sits in exactly one tier of :data:`TIERS`, and a
  role may call the methods of its tier and of the tiers below. A method in no tier is denied to
  every role, admin included.

Every call above the viewer tier (a call that changes or controls something) is logged with the
peer's identity and role. :class:`AuthzInterceptor` runs only on the TCP server
(:mod:`teu_common.server`), inside the ErrorInterceptor, so its refusals become status codes there.
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import grpc
import structlog

from teu_api.errors import PermissionDenied, Unauthenticated
from teu_common.interceptor import rewrap
from teu_common.rpctypes import Ctx, Handler

__all__ = [
    "TIERS",
    "AuthzInterceptor",
    "Peer",
    "Role",
    "authorize",
    "parse_subject",
    "peer_of",
    "peer_of_subject",
    "required_role",
]

log = structlog.get_logger()


class Role(enum.IntEnum):
    """A client's role; each may do what the roles below it may."""

    VIEWER = 1
    OPERATOR = 2
    ADMIN = 3

    @property
    def label(self) -> str:
        """The name as written in a certificate's OU."""
        return self.name.lower()


_C = "/teu.gateway.v1.ContainersService/"
_I = "/teu.gateway.v1.ImagesService/"
_N = "/teu.gateway.v1.NetworksService/"
_S = "/teu.gateway.v1.SystemService/"
_V = "/teu.gateway.v1.VolumesService/"

# Every method of the five public services, in exactly one tier (a unit test holds this to the proto).
TIERS: Mapping[Role, frozenset[str]] = {
    # Reads that show state but neither change it nor return file contents.
    Role.VIEWER: frozenset({
        _C + "List", _C + "Inspect", _C + "Logs", _C + "Diff", _C + "Top", _C + "Stats",
        _I + "ListImages", _I + "InspectImage", _I + "History",
        _N + "ListNetworks", _N + "InspectNetwork",
        _S + "Info", _S + "Version", _S + "DiskUsage", _S + "Events",
        _V + "ListVolumes", _V + "InspectVolume",
    }),
    # The lifecycle of existing containers; Wait is here because it holds a call open indefinitely.
    Role.OPERATOR: frozenset({
        _C + "Start", _C + "Stop", _C + "Restart", _C + "Kill", _C + "Wait", _C + "Pause", _C + "Unpause", _C + "RotateLog",
    }),
    # Whatever runs code, reads or writes files of containers, or creates and deletes things:
    # all root-equivalent on the host.
    Role.ADMIN: frozenset({
        _C + "Create", _C + "Run", _C + "Remove", _C + "Attach", _C + "Exec", _C + "Commit",
        _C + "Export", _C + "CopyFrom", _C + "CopyTo", _C + "Rename", _C + "PruneContainers", _C + "Update",
        _I + "Import", _I + "Tag", _I + "RemoveImage", _I + "Save", _I + "Load", _I + "Pull", _I + "Push",
        _I + "PruneImages", _I + "Build",
        _N + "CreateNetwork", _N + "RemoveNetwork", _N + "PruneNetworks", _N + "ConnectNetwork", _N + "DisconnectNetwork",
        _V + "CreateVolume", _V + "RemoveVolume", _V + "PruneVolumes",
        _S + "Prune",
    }),
}  # fmt: skip
_REQUIRED: dict[str, Role] = {method: role for role, methods in TIERS.items() for method in methods}
_ROLES = {role.label: role for role in Role}


def required_role(method: str) -> Role | None:
    """The least role that may call ``method`` (``/package.Service/Method``); None: nobody may."""
    return _REQUIRED.get(method)


def parse_subject(subject: str) -> list[tuple[str, str]]:
    """The (type, value) pairs of an RFC 2253 distinguished name, as gRPC reports a peer's Subject
    (``CN=alice,OU=viewer,O=Teu``): escapes undone (``\\,`` and ``\\C3\\A9``), multi-valued RDNs
    (``OU=a+OU=b``) flattened, types upper-cased."""
    pairs: list[tuple[str, str]] = []
    text = subject.encode()
    current = bytearray()
    attr_type: str | None = None
    i = 0
    while i <= len(text):
        ch = text[i : i + 1]
        if ch == b"\\" and i + 1 < len(text):
            pair = text[i + 1 : i + 3]
            if len(pair) == 2 and all(c in b"0123456789abcdefABCDEF" for c in pair):
                current.append(int(pair, 16))
                i += 3
                continue
            current += text[i + 1 : i + 2]
            i += 2
            continue
        if ch == b"=" and attr_type is None:
            attr_type = current.decode(errors="replace").strip().upper()
            current.clear()
        elif ch in (b",", b"+", b""):
            if attr_type is not None:
                pairs.append((attr_type, current.decode(errors="replace")))
            attr_type = None
            current.clear()
        else:
            current += ch
        i += 1
    return pairs


@dataclass(frozen=True)
class Peer:
    """A TLS client: its certificate's CN and the role its OU names (None: no recognised role)."""

    identity: str
    role: Role | None


def peer_of(auth_context: Mapping[str, Iterable[bytes]]) -> Peer:
    """The client of a call, from ``context.auth_context()``. Unauthenticated unless the call came
    over TLS with a client certificate carrying exactly one non-empty CN."""
    if b"ssl" not in auth_context.get("transport_security_type", []):
        raise Unauthenticated("this listener requires mutual TLS")
    subjects = list(auth_context.get("x509_subject", []))
    return peer_of_subject(parse_subject(subjects[0].decode(errors="replace")) if len(subjects) == 1 else [])


def peer_of_subject(pairs: Iterable[tuple[str, str]]) -> Peer:
    """The client a certificate's Subject names, as (type, value) pairs (``CN``, ``OU``...)."""
    pairs = list(pairs)
    names = [value for kind, value in pairs if kind == "CN"]
    if len(names) != 1 or not names[0].strip():
        raise Unauthenticated("the client certificate has no identity (its Subject needs one non-empty CN)")
    roles = {_ROLES[value] for kind, value in pairs if kind == "OU" and value in _ROLES}
    return Peer(names[0], roles.pop() if len(roles) == 1 else None)


def authorize(method: str, peer: Peer) -> Role:
    """The peer's role if it may call ``method``, else PermissionDenied naming the role needed."""
    needed = required_role(method)
    if needed is None:
        raise PermissionDenied(f"{method} is not allowed over TCP")
    if peer.role is None:
        raise PermissionDenied(f"certificate of {peer.identity!r} names no role: its OU must be one of viewer, operator, admin")
    if peer.role < needed:
        raise PermissionDenied(f"{method} needs the {needed.label} role; {peer.identity!r} is {peer.role.label}")
    return peer.role


def _check(method: str, context: Ctx) -> None:
    """Authorizes one call; logs refusals and every call above the viewer tier."""
    peer: Peer | None = None
    try:
        peer = peer_of(context.auth_context())
        role = authorize(method, peer)
    except (Unauthenticated, PermissionDenied) as exc:
        log.warning(
            "authz_denied",
            method=method,
            peer=peer.identity if peer else None,
            role=peer.role.label if peer and peer.role else None,
            reason=exc.message,
        )
        raise
    structlog.contextvars.bind_contextvars(peer=peer.identity, role=role.label)
    if _REQUIRED[method] > Role.VIEWER:
        log.info("authz_allowed", method=method, peer=peer.identity, role=role.label)


def _unary(behavior: Callable[..., Awaitable[Any]], method: str) -> Callable[..., Awaitable[Any]]:
    async def wrapper(request: Any, context: Ctx) -> Any:
        _check(method, context)
        return await behavior(request, context)

    return wrapper


def _stream(behavior: Callable[..., AsyncIterator[Any]], method: str) -> Callable[..., AsyncIterator[Any]]:
    async def wrapper(request: Any, context: Ctx) -> AsyncIterator[Any]:
        _check(method, context)
        async for item in behavior(request, context):
            yield item

    return wrapper


class AuthzInterceptor(grpc.aio.ServerInterceptor):
    """Checks every call against the caller's role before the servicer sees it (TCP server only)."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler | None]],
        details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        handler = await continuation(details)
        if handler is None:
            return handler
        return rewrap(handler, details.method, _unary, _stream)
