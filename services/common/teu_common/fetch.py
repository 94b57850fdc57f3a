"""Downloading from an http(s) URL (``import`` with a URL, a build's ``ADD URL``): https, or plain http to this machine only."""

from __future__ import annotations

import http.client
import ipaddress
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import IO

from teu_api.errors import InvalidArgument, Unavailable

__all__ = ["download", "is_loopback"]

_TIMEOUT = 30.0
_CHUNK = 1 << 20


def download(url: str, write: Callable[[bytes], None]) -> None:
    """Streams the body of ``url`` into ``write``.

    Only https, or plain http to a loopback host (anyone on the path could swap a plain-HTTP rootfs),
    redirects included: a redirect from https to http, or to plain http elsewhere, is refused; and the
    opener is built without the file: and ftp: handlers urllib adds by default, so a redirect cannot
    make storage read a local file. InvalidArgument for a bad URL or an HTTP error status,
    Unavailable if the host cannot be reached.
    """
    _check_url(url)
    opener = urllib.request.OpenerDirector()
    for handler in (
        urllib.request.ProxyHandler(),
        urllib.request.HTTPHandler(),
        urllib.request.HTTPSHandler(),
        _CheckedRedirects(),
        urllib.request.HTTPErrorProcessor(),
        urllib.request.HTTPDefaultErrorHandler(),
    ):
        opener.add_handler(handler)
    request = urllib.request.Request(url, headers={"User-Agent": "teu"})
    try:
        with opener.open(request, timeout=_TIMEOUT) as response:
            while chunk := response.read(_CHUNK):
                write(chunk)
    except urllib.error.HTTPError as exc:
        raise InvalidArgument(f"fetching {url}: HTTP {exc.code} {exc.reason}") from exc
    except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
        raise Unavailable(f"fetching {url}: {getattr(exc, 'reason', exc)}") from exc


def is_loopback(hostname: str) -> bool:
    """Whether ``hostname`` (no port, no brackets) names this machine: localhost, 127/8 or ::1."""
    if hostname.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(hostname).is_loopback
    except ValueError:
        return False


def _check_url(url: str) -> None:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidArgument(f"URL must be http(s)://host/...: {url!r}")
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        raise InvalidArgument(f"URL {url!r}: plain HTTP is allowed to loopback hosts only; use https")


class _CheckedRedirects(urllib.request.HTTPRedirectHandler):
    """Follows a redirect only to a URL that :func:`download` would accept itself."""

    def redirect_request(self, req: urllib.request.Request, fp: IO[bytes], code: int, msg: str,
                         headers: http.client.HTTPMessage, newurl: str) -> urllib.request.Request | None:  # fmt: skip
        if urllib.parse.urlsplit(req.full_url).scheme == "https" and urllib.parse.urlsplit(newurl).scheme != "https":
            raise InvalidArgument(f"URL {req.full_url!r} redirects from https to {newurl!r}: refused")
        _check_url(newurl)
        return super().redirect_request(req, fp, code, msg, headers, newurl)
