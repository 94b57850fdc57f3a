"""Import from an http URL, served by a local http.server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import http.server
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from teu_api.errors import InvalidArgument, Unavailable
from teu_storage.imagespec import ImageConfig
from teu_storage.storage import Storage


@pytest.fixture
def server(tmp_path: Path, tars: Any) -> Iterator[str]:
    """Serves tmp_path/www (holding rootfs.tar) on 127.0.0.1; yields the base URL."""
    www = tmp_path / "www"
    www.mkdir()
    (www / "rootfs.tar").write_bytes(tars.busybox())

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, directory=str(www), **kwargs)

        def log_message(self, *args: Any) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


async def _none() -> AsyncIterator[bytes]:
    return
    yield b""


def _import_url(storage: Storage, url: str) -> Any:
    return asyncio.run(storage.import_image("web", ImageConfig(), _none(), url=url))


def test_import_from_url(storage: Storage, server: str, tars: Any) -> None:
    """The tar at the URL becomes the image, with the same layer as a streamed import."""
    image = _import_url(storage, f"{server}/rootfs.tar")
    assert image.repo_tags == ("web:latest",) and image.comment == f"Imported from {server}/rootfs.tar"
    assert (storage.layers.dirs.path(image.layers[0]) / "etc/passwd").exists()


@pytest.mark.parametrize(
    ("path", "error"),
    [("file:///etc/passwd", InvalidArgument), ("ftp://127.0.0.1/x", InvalidArgument), ("/missing.tar", InvalidArgument)],
)
def test_bad_urls_are_refused(storage: Storage, server: str, path: str, error: type[Exception]) -> None:
    """Non-http schemes and HTTP errors are InvalidArgument; nothing is left in tmp/."""
    url = path if "://" in path else server + path
    with pytest.raises(error):
        _import_url(storage, url)
    assert list(storage.tmp.iterdir()) == [] and storage.list_images() == []


def test_unreachable_host_is_unavailable(storage: Storage) -> None:
    """A closed port is Unavailable."""
    with pytest.raises(Unavailable):
        _import_url(storage, "http://127.0.0.1:9/x.tar")


@pytest.mark.parametrize("url", ["http://192.0.2.1/x.tar", "http://example.com/x.tar"])
def test_plain_http_is_only_for_loopback(url: str) -> None:
    """Plain HTTP off loopback is refused before any connection (a path attacker could swap the rootfs)."""
    from teu_common.fetch import _check_url

    with pytest.raises(InvalidArgument, match="plain HTTP"):
        _check_url(url)
    _check_url("https://example.com/x.tar")
    _check_url("http://127.0.0.1:8000/x.tar")


def test_redirect_from_https_to_http_is_refused() -> None:
    """A redirect may not downgrade https to http, nor lead to plain http off loopback."""
    import urllib.request

    from teu_common.fetch import _CheckedRedirects

    handler = _CheckedRedirects()
    req = urllib.request.Request("https://example.com/x.tar")
    for target in ("http://127.0.0.1/x.tar", "http://example.com/x.tar"):
        with pytest.raises(InvalidArgument):
            handler.redirect_request(req, None, 302, "Found", {}, target)  # type: ignore[arg-type]
    assert handler.redirect_request(req, None, 302, "Found", {}, "https://mirror.example.com/x.tar") is not None  # type: ignore[arg-type]
