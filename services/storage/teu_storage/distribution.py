"""HTTP side of the OCI distribution API v2: one registry's connections, its auth, its errors.

Stdlib only (http.client), blocking: pulls and pushes call it from worker threads, a few at a time,
so connections are pooled (keep-alive) and shared under a lock.

Transport rule: plain HTTP only to loopback hosts (localhost, 127.0.0.0/8, ::1); everything else is
HTTPS with certificate verification, and so are redirects and token realms. ``localhost`` is
connected to as 127.0.0.1, so a resolver cannot send a "loopback" request elsewhere.

Auth, as registries ask for it (RFC 7235 challenges on a 401), with the credentials the one pull
or push carries for this registry (see credentials.py; the engine keeps none of its own):

- ``Bearer realm=...,service=...,scope=...``: a token is fetched from the realm and the request
  retried: by GET, anonymously or with the user and password as Basic; or, given an identity token
  (Docker's OAuth2 refresh token), by POST ``grant_type=refresh_token`` (Docker's token spec). Scopes
  seen during one operation are accumulated, so one token covers, e.g., push to one repository and
  pull from another (a cross-repository mount).
- ``Basic``: the user and password are sent, if there are any.

Where credentials go: to this registry, and to the token realm it names (as Docker does) when that
realm is HTTPS or on the registry's own host; never over plain HTTP to a non-loopback host (a plain
HTTP realm off loopback is refused outright, like any such URL). A realm that may not have them gets
an anonymous token request. Redirected requests (blob storage behind a CDN) go without any
Authorization.
"""

from __future__ import annotations

import http.client
import json
import re
import ssl
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import Message
from typing import IO

import structlog

from teu_api.errors import FailedPrecondition, InvalidArgument, NotFound, TeuError, Unavailable
from teu_common.fetch import is_loopback
from teu_storage.credentials import Credentials

__all__ = [
    "Challenge",
    "Client",
    "Response",
    "error_for",
    "expect",
    "is_loopback",
    "is_private",
    "parse_challenges",
]

log = structlog.get_logger()

_TIMEOUT = 60.0
_MAX_REDIRECTS = 5
_SEND_CHUNK = 1 << 20
_MAX_ERROR_BODY = 64 << 10
_MAX_TOKEN_BODY = 1 << 20
_DRAIN = 1 << 20  # unread bytes worth draining to keep a connection; beyond that, close it
# A fresh token refused for scopes it was issued for means "denied", not "expired".
_TOKEN_FRESH = 30.0
_USER_AGENT = "teu-storage"
_CLIENT_ID = "teu"  # OAuth2 client_id of token requests (Docker's is "docker")
_HUB = "docker.io"
_HUB_API = "registry-1.docker.io"
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_REDIRECTS = (301, 302, 303, 307, 308)


@dataclass(frozen=True)
class Challenge:
    """One challenge of a WWW-Authenticate header: scheme (lowercase) and parameters (names lowercase)."""

    scheme: str
    params: dict[str, str] = field(default_factory=dict)


def parse_challenges(header: str) -> list[Challenge]:
    """The challenges of a WWW-Authenticate value, e.g. ``Bearer realm="https://a/token",service="a"``.

    Quoted values may hold commas and backslash escapes; several challenges may share one header.
    Malformed parts end the parse (what was read so far is returned): a registry's header is not
    worth refusing the whole operation over.
    """
    out: list[Challenge] = []
    pos, end = 0, len(header)

    def skip(chars: str) -> None:
        nonlocal pos
        while pos < end and header[pos] in chars:
            pos += 1

    while True:
        skip(" \t,")
        token = _TOKEN.match(header, pos)
        if token is None:
            return out
        name, pos = token.group(), token.end()
        skip(" \t")
        if pos < end and header[pos] == "=" and out:
            pos += 1
            skip(" \t")
            if pos < end and header[pos] == '"':
                value, pos = _quoted(header, pos + 1)
            else:
                match = _TOKEN.match(header, pos)
                value = match.group() if match else ""
                pos = match.end() if match else pos
            out[-1].params[name.lower()] = value
        elif pos < end and header[pos] == "=":
            return out  # a parameter before any scheme
        else:
            out.append(Challenge(name.lower()))


def _quoted(text: str, pos: int) -> tuple[str, int]:
    """The quoted-string starting after the opening quote at ``pos``; (value, position after it)."""
    chars: list[str] = []
    while pos < len(text):
        c = text[pos]
        if c == "\\" and pos + 1 < len(text):
            chars.append(text[pos + 1])
            pos += 2
            continue
        if c == '"':
            return "".join(chars), pos + 1
        chars.append(c)
        pos += 1
    return "".join(chars), pos  # unterminated: take the rest


def is_private(url: str) -> bool:
    """Whether a secret may travel to ``url``: over HTTPS, or plain HTTP to a loopback host."""
    parts = urllib.parse.urlsplit(url)
    return parts.scheme == "https" or (parts.scheme == "http" and is_loopback(parts.hostname or ""))


class Response:
    """A response being read. Close it (or use ``with``): a fully read one returns its connection."""

    def __init__(
        self, client: Client, key: tuple[str, str], conn: http.client.HTTPConnection, resp: http.client.HTTPResponse, url: str
    ) -> None:
        self._client = client
        self._key = key
        self._conn: http.client.HTTPConnection | None = conn
        self._resp = resp
        self.url = url
        self.status = resp.status
        self.headers: Message = resp.headers

    def header(self, name: str) -> str:
        """A header's value, "" if absent."""
        return self.headers.get(name, "") or ""

    def read(self, n: int = -1) -> bytes:
        """The next bytes of the body (Unavailable if the connection breaks)."""
        try:
            return self._resp.read(n if n >= 0 else None)
        except (http.client.HTTPException, OSError) as exc:
            raise Unavailable(f"reading {self.url}: {exc!r}") from exc

    def read_limited(self, limit: int, what: str) -> bytes:
        """The whole body; InvalidArgument if it is over ``limit`` bytes (a document, not a blob)."""
        data = self.read(limit + 1)
        if len(data) > limit:
            raise InvalidArgument(f"{what} is larger than {limit} bytes")
        return data

    def close(self) -> None:
        """Releases the connection: back to the pool if the body was read (or cheaply drained)."""
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            if not self._resp.isclosed():
                self._resp.read(_DRAIN)
            reusable = self._resp.isclosed() and not self._resp.will_close
        except (http.client.HTTPException, OSError):
            reusable = False
        if reusable:
            self._client._release(self._key, conn)
        else:
            conn.close()

    def __enter__(self) -> Response:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


Body = bytes | IO[bytes] | None


class Client:
    """Requests to one registry (``host`` as references name it, e.g. "localhost:5000").

    ``credentials`` are this registry's (see the module's doc for where they may go). Thread-safe.
    InvalidArgument at construction for plain HTTP to a non-loopback host.
    """

    def __init__(
        self,
        host: str,
        *,
        insecure: bool = False,
        credentials: Credentials | None = None,
        timeout: float = _TIMEOUT,
    ) -> None:
        api = _HUB_API if host == _HUB else host
        hostname = urllib.parse.urlsplit(f"//{api}").hostname or ""
        loopback = is_loopback(hostname)
        if insecure and not loopback:
            raise InvalidArgument(f"plain HTTP is only allowed for registries on loopback, not {host}")
        self.host = host
        self.base = f"{'http' if loopback else 'https'}://{api}"
        self._netloc = urllib.parse.urlsplit(self.base).netloc.lower()
        self._hostname = hostname.lower()
        self._credentials = credentials
        self._timeout = timeout
        self._ssl = ssl.create_default_context()
        self._lock = threading.Lock()
        self._idle: dict[tuple[str, str], list[http.client.HTTPConnection]] = {}
        self._auth = ""  # the Authorization value sent to the registry
        self._token_at = 0.0
        self._scopes: list[str] = []
        self._granted: frozenset[str] = frozenset()

    def close(self) -> None:
        """Closes idle connections."""
        with self._lock:
            idle, self._idle = self._idle, {}
        for conns in idle.values():
            for conn in conns:
                conn.close()

    def url(self, path: str) -> str:
        """Absolute URL of ``path`` ("/v2/...") or of a Location the registry sent (relative or not)."""
        return urllib.parse.urljoin(self.base + "/", path)

    def request(
        self,
        method: str,
        path: str,
        *,
        headers: dict[str, str] | None = None,
        body: Body = None,
        size: int | None = None,
        on_sent: Callable[[int], None] | None = None,
    ) -> Response:
        """Sends a request, authenticating and following redirects (GET/HEAD) as needed.

        ``body`` is bytes or a seekable file of ``size`` bytes (streamed, ``on_sent`` told of each
        piece). Any status comes back as a Response; see :func:`error_for`. Unavailable when the
        registry cannot be reached.
        """
        url = self.url(path)
        for attempt in range(3):
            sent_auth = self._auth
            resp = self._follow(method, url, headers or {}, body, size, on_sent)
            if resp.status != 401 or attempt == 2:
                return resp
            challenges = parse_challenges(", ".join(resp.headers.get_all("WWW-Authenticate") or []))
            if not self._authenticate(challenges, sent_auth):
                return resp
            resp.close()
            if body is not None and not isinstance(body, bytes):
                body.seek(0)
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns on its last round

    # --- auth --------------------------------------------------------------------------------

    def _authenticate(self, challenges: list[Challenge], sent_auth: str) -> bool:
        """Acts on a 401's challenges; True if the request is worth retrying with new credentials."""
        with self._lock:
            if self._auth != sent_auth:
                return True  # another thread refreshed the credentials meanwhile
        by_scheme = {c.scheme: c for c in challenges}
        bearer = by_scheme.get("bearer")
        if bearer is not None and bearer.params.get("realm"):
            return self._bearer(bearer)
        creds = self._credentials
        if "basic" in by_scheme and creds is not None and creds.has_basic and is_private(self.base):
            with self._lock:
                basic = creds.basic()
                if self._auth == basic:
                    return False  # the credentials themselves were refused
                self._auth = basic
            return True
        return False

    def _bearer(self, challenge: Challenge) -> bool:
        with self._lock:
            for scope in challenge.params.get("scope", "").split():
                if scope not in self._scopes:
                    self._scopes.append(scope)
            scopes = tuple(self._scopes)
            fresh = time.monotonic() - self._token_at < _TOKEN_FRESH
            if self._auth.startswith("Bearer ") and set(scopes) <= self._granted and fresh:
                return False  # the token covers what was asked: this is a refusal
        token = self._fetch_token(challenge, scopes)
        with self._lock:
            self._auth = "Bearer " + token
            self._token_at = time.monotonic()
            self._granted = frozenset(scopes)
        return True

    def _realm(self, challenge: Challenge) -> str:
        """The challenge's token realm; FailedPrecondition unless it is HTTPS or plain HTTP on loopback."""
        realm = challenge.params["realm"]
        if not is_private(realm):
            where = urllib.parse.urlsplit(realm).netloc or realm
            raise FailedPrecondition(f"registry {self.host} names a token server that is not HTTPS ({where}); refusing it")
        return realm

    def _realm_credentials(self, realm: str) -> Credentials | None:
        """The credentials the realm may have: HTTPS, or this registry's own host (then loopback)."""
        if self._credentials is None:
            return None
        parts = urllib.parse.urlsplit(realm)
        if parts.scheme == "https" or (parts.hostname or "").lower() == self._hostname:
            return self._credentials
        log.warning("registry_token_anonymous", registry=self.host, realm=parts.netloc,
                    reason="plain HTTP token server on another host")  # fmt: skip
        return None

    def _fetch_token(self, challenge: Challenge, scopes: tuple[str, ...]) -> str:
        realm = self._realm(challenge)
        creds = self._realm_credentials(realm)
        service = challenge.params.get("service", "")
        refresh = creds.identity_token if creds is not None else ""
        if refresh:
            resp = self._token_by_refresh(realm, service, scopes, refresh)
        else:
            resp = self._token_by_get(realm, service, scopes, creds)
        with resp:  # OAuth2 refuses a refresh token with 400 invalid_grant; Docker's GET with 401
            if resp.status in (401, 403) or (resp.status == 400 and refresh):
                raise FailedPrecondition(f"unauthorized: the token server of {self.host} refused the credentials")
            if resp.status != 200:
                raise Unavailable(f"token server of {self.host} answered HTTP {resp.status}")
            raw = resp.read_limited(_MAX_TOKEN_BODY, "token response")
        try:
            doc = json.loads(raw)
            token = doc.get("token") or doc.get("access_token")
        except (ValueError, AttributeError):
            token = None
        if not isinstance(token, str) or not token:
            raise Unavailable(f"token server of {self.host} sent no token")
        log.debug("registry_token", registry=self.host, scopes=list(scopes), authenticated=creds is not None)
        return token

    def _token_by_get(self, realm: str, service: str, scopes: tuple[str, ...], creds: Credentials | None) -> Response:
        """Docker's token GET: service and scopes in the query; the user as ``account`` and, with the
        password, as Basic."""
        basic = creds if creds is not None and creds.has_basic else None
        query = ([("service", service)] if service else []) + [("scope", s) for s in scopes]
        query += [("account", basic.username)] if basic is not None else []
        sep = "&" if urllib.parse.urlsplit(realm).query else "?"
        url = realm + (sep + urllib.parse.urlencode(query) if query else "")
        headers = {"Authorization": basic.basic()} if basic is not None else {}
        return self._send_once("GET", url, headers, None, None, None)

    def _token_by_refresh(self, realm: str, service: str, scopes: tuple[str, ...], refresh_token: str) -> Response:
        """Docker's OAuth2 token POST: ``grant_type=refresh_token`` with the identity token, as a form."""
        form = {"grant_type": "refresh_token", "refresh_token": refresh_token, "client_id": _CLIENT_ID}
        if service:
            form["service"] = service
        if scopes:
            form["scope"] = " ".join(scopes)
        body = urllib.parse.urlencode(form).encode()
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        return self._send_once("POST", realm, headers, body, None, None)

    # --- transport ---------------------------------------------------------------------------

    def _follow(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        body: Body,
        size: int | None,
        on_sent: Callable[[int], None] | None,
    ) -> Response:
        for _ in range(_MAX_REDIRECTS + 1):
            own = urllib.parse.urlsplit(url).netloc.lower() == self._netloc
            sent = dict(headers)
            if own and self._auth:
                sent["Authorization"] = self._auth
            resp = self._send_once(method, url, sent, body, size, on_sent)
            location = resp.header("Location")
            if resp.status not in _REDIRECTS or method not in ("GET", "HEAD") or not location:
                return resp
            resp.close()
            url = urllib.parse.urljoin(url, location)
        raise Unavailable(f"{self.host}: too many redirects")

    def _send_once(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        body: Body,
        size: int | None,
        on_sent: Callable[[int], None] | None,
    ) -> Response:
        parts = urllib.parse.urlsplit(url)
        hostname = parts.hostname or ""
        if parts.scheme == "http" and not is_loopback(hostname):
            raise Unavailable(f"{self.host}: refusing plain HTTP to non-loopback {parts.netloc}")
        if parts.scheme not in ("http", "https"):
            raise Unavailable(f"{self.host}: refusing {parts.scheme!r} URL {url}")
        key = (parts.scheme, parts.netloc.lower())
        target = parts.path or "/"
        if parts.query:
            target += "?" + parts.query
        length = len(body) if isinstance(body, bytes) else size
        for retry in (True, False):
            conn, reused = self._acquire(key, hostname, parts.port)
            try:
                conn.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
                conn.putheader("Host", parts.netloc)
                conn.putheader("User-Agent", _USER_AGENT)
                for name, value in headers.items():
                    conn.putheader(name, value)
                if body is not None or method in ("POST", "PUT", "PATCH"):
                    conn.putheader("Content-Length", str(length or 0))
                conn.endheaders()
                if body is not None:
                    _send_body(conn, body, on_sent)
                resp = conn.getresponse()
            except (http.client.HTTPException, OSError) as exc:
                conn.close()
                # A kept-alive connection the server closed meanwhile: retry once on a new one.
                rewindable = body is None or isinstance(body, bytes) or body.seekable()
                if retry and reused and rewindable and isinstance(exc, _STALE):
                    if body is not None and not isinstance(body, bytes):
                        body.seek(0)
                    continue
                raise Unavailable(f"registry {self.host}: {method} {parts.netloc}{parts.path}: {exc!r}") from exc
            return Response(self, key, conn, resp, url)
        raise AssertionError("unreachable")  # pragma: no cover

    def _acquire(self, key: tuple[str, str], hostname: str, port: int | None) -> tuple[http.client.HTTPConnection, bool]:
        with self._lock:
            idle = self._idle.get(key)
            if idle:
                return idle.pop(), True
        conn: http.client.HTTPConnection
        if key[0] == "https":  # the certificate is checked against the name asked for
            conn = http.client.HTTPSConnection(hostname, port, timeout=self._timeout, context=self._ssl)
        else:
            address = "127.0.0.1" if hostname.lower() == "localhost" else hostname
            conn = http.client.HTTPConnection(address, port, timeout=self._timeout)
        return conn, False

    def _release(self, key: tuple[str, str], conn: http.client.HTTPConnection) -> None:
        with self._lock:
            self._idle.setdefault(key, []).append(conn)


_STALE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError, http.client.BadStatusLine)


def _send_body(conn: http.client.HTTPConnection, body: bytes | IO[bytes], on_sent: Callable[[int], None] | None) -> None:
    if isinstance(body, bytes):
        conn.send(body)
        if on_sent is not None:
            on_sent(len(body))
        return
    while chunk := body.read(_SEND_CHUNK):
        conn.send(chunk)
        if on_sent is not None:
            on_sent(len(chunk))


def error_for(resp: Response, what: str) -> TeuError:
    """The Teu error for a failed response (the registry's own error code and message included).

    404 → NotFound, 400/405 → InvalidArgument, 401/403 → FailedPrecondition (not authorised),
    429/5xx and anything else → Unavailable (retrying may help).
    """
    detail = ""
    try:
        body = resp.read_limited(_MAX_ERROR_BODY, "error body") if resp.status != 204 else b""
        errors = json.loads(body).get("errors") if body else None
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            detail = f"{errors[0].get('code', '')}: {errors[0].get('message', '')}".strip(": ")
    except (ValueError, AttributeError, TeuError):
        pass
    if resp.status == 401 and not detail:  # a HEAD's 401 has no body to say it
        detail = "authentication required"
    message = f"{what}: HTTP {resp.status}" + (f" ({detail})" if detail else "")
    if resp.status == 404:
        return NotFound(message)
    if resp.status in (400, 405, 413, 415):
        return InvalidArgument(message)
    if resp.status in (401, 403):
        return FailedPrecondition(f"unauthorized: {message}")
    return Unavailable(message)


@contextmanager
def expect(resp: Response, statuses: tuple[int, ...], what: str) -> Iterator[Response]:
    """Yields ``resp`` if its status is one of ``statuses``, else raises :func:`error_for`; closes it."""
    with resp:
        if resp.status not in statuses:
            raise error_for(resp, what)
        yield resp
