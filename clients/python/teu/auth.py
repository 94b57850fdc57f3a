"""Registry credentials on the client side, as Docker's CLI keeps them (the engine keeps none).

``teu login`` writes ``$XDG_CONFIG_HOME/teu/auth.json`` (default ``~/.config/teu/auth.json``;
directory 0700, file 0600, replaced atomically) in the shape of Docker's ``config.json``::

    {"auths": {"localhost:5000": {"auth": "<base64 of user:password>"}}}

Lookups also read Docker's own ``$DOCKER_CONFIG/config.json`` (default ``~/.docker/config.json``):
its ``auths`` entries with ``auth``, ``username``/``password`` or ``identitytoken``; ours win for the
same registry. Docker's credential helpers (``credsStore``, ``credHelpers``) are not run: a lookup
that finds nothing where one is configured says so on stderr.

Registries are keyed as Docker keys them: Docker Hub (``docker.io``, ``index.docker.io``,
``registry-1.docker.io``) is ``https://index.docker.io/v1/``; any other loses its scheme and path
(``https://localhost:5000/v2/`` is ``localhost:5000``).

:func:`verify` checks a user and password against a registry the way ``docker login`` does: ``GET
/v2/``, then the 401's challenge answered (Basic, or a token fetched from the realm). Like the
engine, it sends a password only over HTTPS or to a loopback host.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any, TextIO

from teu.errors import FailedPrecondition, InvalidArgument
from teu_api.types.v1 import types_pb2

__all__ = [
    "HUB_KEY",
    "auth_path",
    "docker_config_path",
    "lookup",
    "registry_key",
    "registry_of",
    "remove",
    "save",
    "stored",
]

HUB_KEY = "https://index.docker.io/v1/"
_HUB_NAMES = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})


# --- keys and paths ---------------------------------------------------------------------------------


def registry_key(server: str) -> str:
    """Docker's key for a registry: ``https://index.docker.io/v1/`` for Docker Hub, else its host[:port]."""
    host = server.strip()
    for scheme in ("http://", "https://"):
        if host.lower().startswith(scheme):
            host = host[len(scheme) :]
            break
    host = host.partition("/")[0].lower()
    return HUB_KEY if host in _HUB_NAMES else host


def registry_of(image: str) -> str:
    """The registry of an image reference, by the engine's (Docker's) rule: the first component if
    more follow and it has a dot or a port or is ``localhost``; otherwise Docker Hub."""
    first, sep, _ = image.partition("@")[0].partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return first
    return "docker.io"


def plain_http(image: str) -> bool:
    """Whether ``image``'s registry is spoken to over plain HTTP: a loopback one, as Docker treats
    127.0.0.0/8 as an insecure registry by default."""
    host = registry_of(image).rsplit(":", 1)[0].strip("[]")
    return host == "localhost" or host.startswith("127.") or host == "::1"


def auth_path() -> Path:
    """Where ``teu login`` keeps credentials: ``$XDG_CONFIG_HOME/teu/auth.json`` (default ~/.config)."""
    xdg = os.environ.get("XDG_CONFIG_HOME", "")
    base = Path(xdg) if os.path.isabs(xdg) else Path.home() / ".config"  # XDG: relative values are ignored
    return base / "teu" / "auth.json"


def docker_config_path() -> Path:
    """Docker's config file: ``$DOCKER_CONFIG/config.json``, default ``~/.docker/config.json``."""
    directory = os.environ.get("DOCKER_CONFIG", "")
    return (Path(directory) if directory else Path.home() / ".docker") / "config.json"


# --- reading ------------------------------------------------------------------------------------------


def lookup(server: str, *, warn: TextIO | None = None) -> types_pb2.RegistryAuth | None:
    """The credentials for ``server`` (any spelling: see :func:`registry_key`), ours before Docker's.

    None when neither file has any. InvalidArgument if our file is malformed; a malformed Docker
    file is skipped with a warning on ``warn`` (default stderr).
    """
    out = warn if warn is not None else sys.stderr
    key = registry_key(server)
    found = _find(_load(auth_path()).get("auths"), key, auth_path())
    if found is not None:
        return found
    docker_path = docker_config_path()
    try:
        docker = _load(docker_path)
        found = _find(docker.get("auths"), key, docker_path)
    except InvalidArgument as exc:
        print(f"WARNING: ignoring {exc.message}", file=out)
        return None
    if found is None:
        _warn_helpers(docker, key, docker_path, out)
    return found


def stored() -> dict[str, types_pb2.RegistryAuth]:
    """Every registry's credentials in either file (ours first), by the host an image names it by
    (``docker.io`` for Docker Hub): what a build may need to pull its FROM images."""
    names: list[str] = []
    for path in (auth_path(), docker_config_path()):
        try:
            auths = _load(path).get("auths")
        except InvalidArgument:
            continue
        if isinstance(auths, dict):
            names += [n for n in auths if isinstance(n, str)]
    out: dict[str, types_pb2.RegistryAuth] = {}
    for name in names:
        key = registry_key(name)
        host = "docker.io" if key == HUB_KEY else key
        if host not in out and (creds := lookup(name, warn=io.StringIO())) is not None:
            out[host] = creds
    return out


def _load(path: Path) -> dict[str, Any]:
    """A config file's JSON object; {} if there is no file; InvalidArgument if it is not an object."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise InvalidArgument(f"cannot read {path}: {exc.strerror}") from exc
    try:
        doc = json.loads(raw)
    except ValueError as exc:
        raise InvalidArgument(f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise InvalidArgument(f"{path} is not a JSON object")
    return doc


def _find(auths: Any, key: str, path: Path) -> types_pb2.RegistryAuth | None:
    """The entry of ``auths`` whose key normalises to ``key``, as RegistryAuth (None if none)."""
    if not isinstance(auths, dict):
        return None
    for name, entry in auths.items():
        if isinstance(name, str) and registry_key(name) == key and isinstance(entry, dict):
            found = _entry(entry, name, path)
            if found is not None:
                return found
    return None


def _entry(entry: dict[str, Any], name: str, path: Path) -> types_pb2.RegistryAuth | None:
    """One ``auths`` entry: ``auth`` (base64 "user:password") or ``username``/``password``, plus
    ``identitytoken``; None when it holds none of them (e.g. a credential helper's placeholder)."""
    username, password = str(entry.get("username") or ""), str(entry.get("password") or "")
    if entry.get("auth"):
        try:
            decoded = base64.b64decode(str(entry["auth"]), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise InvalidArgument(f"{path}: the auth of {name} is not base64 of user:password") from exc
        username, sep, password = decoded.partition(":")
        if not sep:
            raise InvalidArgument(f"{path}: the auth of {name} is not base64 of user:password")
    token = str(entry.get("identitytoken") or "")
    if not (username or password or token):
        return None
    return types_pb2.RegistryAuth(username=username, password=password, identity_token=token)


def _warn_helpers(docker: dict[str, Any], key: str, path: Path, out: TextIO) -> None:
    """Says that Docker's credential helper for ``key``, if one is configured, is not used."""
    helpers = docker.get("credHelpers")
    helper = any(registry_key(k) == key for k in helpers) if isinstance(helpers, dict) else False
    if helper or docker.get("credsStore"):
        setting = "credHelpers" if helper else "credsStore"
        print(f"WARNING: teu does not run Docker's credential helpers ({setting} in {path}); "
              f"no credentials for {key}: use `teu login`", file=out)  # fmt: skip


# --- writing ------------------------------------------------------------------------------------------


def save(server: str, username: str, password: str) -> Path:
    """Stores ``username``/``password`` for ``server`` in our file (other entries kept); its path.

    InvalidArgument for a user name with ":" (Basic could not carry it) or a malformed file;
    FailedPrecondition if the file cannot be written.
    """
    if ":" in username:
        raise InvalidArgument("user name must not contain ':'")
    path = auth_path()
    doc = _load(path)
    existing = doc.get("auths")
    key = registry_key(server)
    auths = {k: v for k, v in existing.items() if registry_key(k) != key} if isinstance(existing, dict) else {}
    auths[key] = {"auth": base64.b64encode(f"{username}:{password}".encode()).decode()}
    doc["auths"] = auths
    _write(path, doc)
    return path


def remove(server: str) -> bool:
    """Removes ``server``'s entry from our file (Docker's file is never changed); whether there was one."""
    path = auth_path()
    doc = _load(path)
    auths = doc.get("auths")
    if not isinstance(auths, dict):
        return False
    key = registry_key(server)
    kept = {k: v for k, v in auths.items() if registry_key(k) != key}
    if len(kept) == len(auths):
        return False
    doc["auths"] = kept
    _write(path, doc)
    return True


def _write(path: Path, doc: dict[str, Any]) -> None:
    """Writes ``doc`` to ``path`` atomically (temp file, fsync, rename): file 0600 in a 0700 directory."""
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(path.parent, 0o700)
        fd, tmp = tempfile.mkstemp(prefix=".auth-", suffix=".json", dir=path.parent)
    except OSError as exc:
        raise FailedPrecondition(f"cannot write {path}: {exc.strerror}") from exc
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            os.fchmod(f.fileno(), 0o600)
            json.dump(doc, f, indent=2)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise FailedPrecondition(f"cannot write {path}: {exc.strerror}") from exc
