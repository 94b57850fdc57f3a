"""The errors every SDK call raises: Teu's one error vocabulary, defined in :mod:`teu_api.errors`."""

from teu_api.errors import (
    AlreadyExists,
    Cancelled,
    FailedPrecondition,
    Internal,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    TeuError,
    Unauthenticated,
    Unavailable,
    Unimplemented,
    from_status,
)

__all__ = [
    "AlreadyExists",
    "Cancelled",
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
]
