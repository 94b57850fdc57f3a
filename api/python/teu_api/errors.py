"""Teu's one error vocabulary, shared by the services and the client.

Core code raises these and knows nothing of gRPC. The mapping to gRPC status codes lives here and
only here: servers translate with :func:`to_status`, clients translate back with :func:`from_status`,
so a caller checks "not found" the same way whether the failing part was local or remote.

    TeuError
    ├── NotFound             the named thing does not exist
    ├── AlreadyExists        the id or name is taken
    ├── InvalidArgument      the request itself is wrong (bad name, negative memory, hostile tar)
    ├── FailedPrecondition   the request is fine but the state forbids it (start a running container)
    ├── Unauthenticated      the caller has no identity the engine accepts (a TLS certificate without CN)
    ├── PermissionDenied     the caller's role does not allow the operation
    ├── Unavailable          a backing service or tool cannot be reached; retrying may help
    │   └── DeadlineExceeded the operation outlived the time it was given
    ├── Unimplemented        the operation is not built yet
    ├── Cancelled            the caller went away
    └── Internal             a bug or an unexpected failure of the host
"""

from __future__ import annotations

import grpc

__all__ = [
    "AlreadyExists",
    "Cancelled",
    "DeadlineExceeded",
    "FailedPrecondition",
    "Internal",
    "InvalidArgument",
    "NotFound",
    "PermissionDenied",
    "TeuError",
    "Unauthenticated",
    "Unavailable",
    "Unimplemented",
    "from_status",
    "to_status",
]


class TeuError(Exception):
    """Base of every error Teu reports to a caller."""

    @property
    def message(self) -> str:
        """The one-line message shown to the user."""
        return str(self.args[0]) if self.args else type(self).__name__


class NotFound(TeuError):
    """Raised when a container, image, snapshot or log does not exist."""


class AlreadyExists(TeuError):
    """Raised when an id, name or key is already taken."""


class InvalidArgument(TeuError):
    """Raised when a request is malformed or its values are out of range."""


class FailedPrecondition(TeuError):
    """Raised when the current state forbids the operation."""


class Unauthenticated(TeuError):
    """Raised when the caller cannot be identified (over TCP: a client certificate without identity)."""


class PermissionDenied(TeuError):
    """Raised when the caller is identified but its role does not allow the operation."""


class Unavailable(TeuError):
    """Raised when a backing service or host tool cannot be reached."""


class DeadlineExceeded(Unavailable):
    """Raised when an operation outlived the time its caller gave it (a CRI ExecSync's timeout)."""


class Unimplemented(TeuError):
    """Raised for an operation that Teu does not provide yet."""


class Cancelled(TeuError):
    """Raised when the caller cancelled the operation."""


class Internal(TeuError):
    """Raised for unexpected failures: a bug, or the host misbehaving."""


_CODES: dict[type[TeuError], grpc.StatusCode] = {
    NotFound: grpc.StatusCode.NOT_FOUND,
    AlreadyExists: grpc.StatusCode.ALREADY_EXISTS,
    InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
    PermissionDenied: grpc.StatusCode.PERMISSION_DENIED,
    Unavailable: grpc.StatusCode.UNAVAILABLE,
    DeadlineExceeded: grpc.StatusCode.DEADLINE_EXCEEDED,
    Unimplemented: grpc.StatusCode.UNIMPLEMENTED,
    Cancelled: grpc.StatusCode.CANCELLED,
    Internal: grpc.StatusCode.INTERNAL,
}
_CLASSES: dict[grpc.StatusCode, type[TeuError]] = {code: cls for cls, code in _CODES.items()}


def to_status(error: TeuError) -> grpc.StatusCode:
    """The gRPC status code that reports ``error``."""
    for cls in type(error).__mro__:
        if cls in _CODES:
            return _CODES[cls]
    return grpc.StatusCode.INTERNAL


def from_status(code: grpc.StatusCode, details: str) -> TeuError:
    """The Teu error for a gRPC status received from a server."""
    return _CLASSES.get(code, Internal)(details or code.name)
