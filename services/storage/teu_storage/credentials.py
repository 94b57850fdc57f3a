"""Registry credentials as one pull or push carries them (Docker's model: the engine keeps none).

A request names one reference; its credentials are for that reference's registry and are given to
the :class:`~teu_storage.distribution.Client` of that registry only. Where that client may send
them (the registry, its token server, over which transport) is decided there.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

from teu_api.errors import InvalidArgument
from teu_api.types.v1 import types_pb2

__all__ = ["Credentials", "from_proto"]


@dataclass(frozen=True)
class Credentials:
    """User and password, or an OAuth2 refresh token (Docker's ``identitytoken``), for one registry."""

    username: str = ""
    password: str = ""
    identity_token: str = ""

    def __repr__(self) -> str:  # never the secrets, whatever logs or tracebacks show
        return f"Credentials(username={self.username!r}, secret={'***' if self.password or self.identity_token else ''!r})"

    @property
    def has_basic(self) -> bool:
        """Whether there are a user and a password to send as Basic (to the registry, or for a token)."""
        return bool(self.username and self.password)

    def basic(self) -> str:
        """The Authorization value of HTTP Basic for the user and password."""
        return "Basic " + base64.b64encode(f"{self.username}:{self.password}".encode()).decode()


def from_proto(auth: types_pb2.RegistryAuth) -> Credentials | None:
    """The credentials of a request; None when it has none (anonymous).

    InvalidArgument for a user name holding ":" (HTTP Basic could not carry it).
    """
    if not (auth.username or auth.password or auth.identity_token):
        return None
    if ":" in auth.username:
        raise InvalidArgument("registry user name must not contain ':'")
    return Credentials(auth.username, auth.password, auth.identity_token)
