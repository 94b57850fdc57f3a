"""Entry point: ``python -m teu_web [--root R] [--run-dir D] [--tls-listen HOST:PORT --tls-ca ...]``:
serves the page on TEU_WEB_LISTEN (HOST:PORT, default 127.0.0.1:9180; port 0 picks a free one) until
SIGTERM. Its address goes to ``<run-dir>/web.url``; served beyond loopback, a token is made, written to
``<run-dir>/web.token`` (root's only) and required of every request. Given ``--tls-listen``, the page
is also served there over mutual TLS (the gateway's client certificates and roles; no token); its
address goes to ``<run-dir>/web-tls.url``."""

from __future__ import annotations

import asyncio
import os
import secrets

import structlog
from aiohttp import web

from teu_common import httpauthz, perms
from teu_common import logging as teulogging
from teu_common.config import Config, TlsListen
from teu_common.frontdoor import Gateway
from teu_common.server import parse_args, until_stopped
from teu_web import app as appmod
from teu_web import guard

log = structlog.get_logger()
DEFAULT_LISTEN = "127.0.0.1:9180"


def url_of(runner: web.AppRunner, index: int, scheme: str) -> str:
    """The address of the runner's ``index``th site."""
    host, port = runner.addresses[index][:2]
    return f"{scheme}://{f'[{host}]' if ':' in host else host}:{port}/"


async def serve(cfg: Config, tls: TlsListen | None = None) -> None:
    """Serves the page until SIGTERM or SIGINT."""
    teulogging.configure("web")
    perms.lock_down()
    perms.socket_dir(cfg.run_dir)
    host, _, port = (os.environ.get("TEU_WEB_LISTEN") or DEFAULT_LISTEN).rpartition(":")
    host = host.strip("[]")
    token_path = cfg.run_dir / "web.token"
    token = ""
    if not guard.loopback(host):
        token = secrets.token_urlsafe(24)
        token_path.write_text(token + "\n")  # under umask 077: root's only
    else:
        token_path.unlink(missing_ok=True)
    gateway = Gateway(cfg, httpauthz.interceptors())
    runner = web.AppRunner(appmod.build(gateway, token), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, int(port), reuse_port=False)
    await site.start()
    urls = {cfg.run_dir / "web.url": url_of(runner, 0, "http")}
    if tls is not None:
        tls_host, _, tls_port = tls.address.rpartition(":")
        ctx = httpauthz.server_context(tls)
        first = len(runner.addresses)  # the plain site's sockets (one per address "localhost" has) come first
        await web.TCPSite(runner, tls_host.strip("[]"), int(tls_port), ssl_context=ctx, reuse_port=False).start()
        urls[cfg.run_dir / "web-tls.url"] = url_of(runner, first, "https")
    for path, url in urls.items():
        path.write_text(url + "\n")
        path.chmod(0o644)
    log.info("serving", urls=list(urls.values()), token_required=bool(token), pid=os.getpid())
    await until_stopped()
    await runner.cleanup()
    await gateway.close()
    for path in urls:
        path.unlink(missing_ok=True)
    log.info("stopped")


if __name__ == "__main__":
    asyncio.run(serve(*parse_args("web", tls=True, tls_from_env=False)))
