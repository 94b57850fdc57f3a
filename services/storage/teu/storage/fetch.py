"""Downloading an image tar from an http(s) URL (``import`` with a URL)."""

from __future__ import annotations

import http.client
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable

from teu.errors import InvalidArgument, Unavailable

__all__ = ["download"]

_TIMEOUT = 30.0
_CHUNK = 1 << 20


def download(url: str, write: Callable[[bytes], None]) -> None:
    """Streams the body of ``url`` into ``write``.

    Only http and https, redirects included: the opener is built without the file: and ftp:
    handlers urllib adds by default, so a redirect cannot make storage read a local file.
    InvalidArgument for a bad URL or an HTTP error status, Unavailable if the host cannot be reached.
    """
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidArgument(f"import URL must be http(s)://host/...: {url!r}")
    opener = urllib.request.OpenerDirector()
    for handler in (
        urllib.request.ProxyHandler(),
        urllib.request.HTTPHandler(),
        urllib.request.HTTPSHandler(),
        urllib.request.HTTPRedirectHandler(),
        urllib.request.HTTPErrorProcessor(),
        urllib.request.HTTPDefaultErrorHandler(),
    ):
        opener.add_handler(handler)
    request = urllib.request.Request(url, headers={"User-Agent": "teu-storage"})
    try:
        with opener.open(request, timeout=_TIMEOUT) as response:
            while chunk := response.read(_CHUNK):
                write(chunk)
    except urllib.error.HTTPError as exc:
        raise InvalidArgument(f"fetching {url}: HTTP {exc.code} {exc.reason}") from exc
    except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
        raise Unavailable(f"fetching {url}: {getattr(exc, 'reason', exc)}") from exc
