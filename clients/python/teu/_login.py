"""``teu login``'s check of credentials against the registry, as ``docker login`` does. Its own
module: it needs urllib's HTTP client, which the other commands should not pay to import."""

from __future__ import annotations

import base64
import ipaddress
import json
import re
import urllib.error
import urllib.parse
import urllib.request
from email.message import Message
from typing import Any

from teu.auth import HUB_KEY, registry_key
from teu.errors import FailedPrecondition, Unavailable

__all__ = ["verify"]

_HUB_API = "registry-1.docker.io"
_TIMEOUT = 30.0
_MAX_BODY = 1 << 20
_PARAM = re.compile(r'([A-Za-z0-9_.-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,"]*))')


def verify(server: str, username: str, password: str, timeout: float = _TIMEOUT) -> None:
    """Checks the credentials against ``server`` as ``docker login`` does (``GET /v2/``, then the
    challenge answered). FailedPrecondition if they are refused or could only be sent in the clear;
    Unavailable if the registry cannot be reached or answers oddly.
    """
    key = registry_key(server)
    host = _HUB_API if key == HUB_KEY else key
    hostname = urllib.parse.urlsplit(f"//{host}").hostname or ""
    base = f"{'http' if _is_loopback(hostname) else 'https'}://{host}"
    status, headers = _get(base + "/v2/", {}, timeout)
    if status == 200:
        return  # the registry asks for no credentials
    if status != 401:
        raise Unavailable(f"registry {key} answered HTTP {status} to GET /v2/")
    challenges = dict(_challenge(h) for h in headers.get_all("WWW-Authenticate") or [])
    basic = "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()
    if "bearer" in challenges and challenges["bearer"].get("realm"):
        token = _token(key, hostname, challenges["bearer"], username, basic, timeout)
        status, _ = _get(base + "/v2/", {"Authorization": "Bearer " + token}, timeout)
    elif "basic" in challenges:
        status, _ = _get(base + "/v2/", {"Authorization": basic}, timeout)
    else:
        raise Unavailable(f"registry {key} asks for an authentication scheme teu does not speak")
    if status != 200:
        raise FailedPrecondition(f"login to {key} failed: unauthorized: incorrect username or password")


def _token(key: str, hostname: str, params: dict[str, str], username: str, basic: str, timeout: float) -> str:
    """A token from the challenge's realm for the credentials (Docker's login: ``account`` = user)."""
    realm = params["realm"]
    parts = urllib.parse.urlsplit(realm)
    same_host = (parts.hostname or "").lower() == hostname.lower()  # then loopback, if plain HTTP
    if not (parts.scheme == "https" or (parts.scheme == "http" and same_host and _is_loopback(hostname))):
        raise FailedPrecondition(
            f"login to {key}: its token server {parts.netloc or realm} is not HTTPS; not sending the password"
        )
    query = urllib.parse.urlencode([(k, v) for k, v in (("service", params.get("service", "")), ("account", username)) if v])
    url = realm + ("&" if parts.query else "?") + query
    status, _, body = _fetch(url, {"Authorization": basic}, timeout)
    if status in (401, 403):
        raise FailedPrecondition(f"login to {key} failed: unauthorized: incorrect username or password")
    try:
        doc = json.loads(body) if status == 200 else {}
        token = doc.get("token") or doc.get("access_token")
    except (ValueError, AttributeError):
        token = None
    if not isinstance(token, str) or not token:
        raise Unavailable(f"login to {key}: the token server answered HTTP {status} without a token")
    return token


def _challenge(header: str) -> tuple[str, dict[str, str]]:
    """The scheme (lowercase) and parameters of one WWW-Authenticate challenge."""
    scheme, _, rest = header.strip().partition(" ")
    params = {
        m.group(1).lower(): re.sub(r"\\(.)", r"\1", m.group(2)) if m.group(2) is not None else m.group(3)
        for m in _PARAM.finditer(rest)
    }
    return scheme.lower(), params


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Redirects are not followed: an Authorization header must not travel to where they point."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect())


def _get(url: str, headers: dict[str, str], timeout: float) -> tuple[int, Message]:
    status, resp_headers, _ = _fetch(url, headers, timeout)
    return status, resp_headers


def _fetch(url: str, headers: dict[str, str], timeout: float) -> tuple[int, Message, bytes]:
    """GET ``url`` (no proxy, no redirect): status, headers, body (at most 1 MiB)."""
    request = urllib.request.Request(url, headers={"User-Agent": "teu-cli", **headers})
    try:
        with _OPENER.open(request, timeout=timeout) as resp:
            return resp.status, resp.headers, resp.read(_MAX_BODY)
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.headers, exc.read(_MAX_BODY)
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise Unavailable(f"cannot reach {urllib.parse.urlsplit(url).netloc}: {reason}") from exc


def _is_loopback(hostname: str) -> bool:
    """localhost, 127/8 or ::1 (the engine's rule for plain HTTP)."""
    if hostname.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(hostname).is_loopback
    except ValueError:
        return False
