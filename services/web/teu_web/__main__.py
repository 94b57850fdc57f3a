"""Entry point: ``python -m teu_web [--root R] [--run-dir D]``: serves the page on TEU_WEB_LISTEN
(HOST:PORT, default 127.0.0.1:9180; port 0 picks a free one) until SIGTERM. Its address goes to
``<run-dir>/web.url``; served beyond loopback, a token is made, written to ``<run-dir>/web.token``
(root's only) and required of every request."""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import os
import secrets

import structlog
from aiohttp import web

from teu_common import config as configmod
from teu_common import logging as teulogging
from teu_common import perms
from teu_common.config import Config
from teu_common.frontdoor import Gateway
from teu_common.server import until_stopped
from teu_web import app as appmod

log = structlog.get_logger()
DEFAULT_LISTEN = "127.0.0.1:9180"


def parse() -> Config:
    parser = argparse.ArgumentParser(prog="teu-web", description="Teu's web page")
    parser.add_argument("--root", help="state root (default $TEU_ROOT or /var/lib/teu)")
    parser.add_argument("--run-dir", help="socket dir (default $TEU_RUN or /run/teu)")
    args = parser.parse_args()
    return configmod.load(args.root, args.run_dir)


def loopback(host: str) -> bool:
    """Whether ``host`` is this machine only (localhost, 127/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


async def serve(cfg: Config) -> None:
    """Serves the page until SIGTERM or SIGINT."""
    teulogging.configure("web")
    perms.lock_down()
    perms.socket_dir(cfg.run_dir)
    host, _, port = (os.environ.get("TEU_WEB_LISTEN") or DEFAULT_LISTEN).rpartition(":")
    host = host.strip("[]")
    token_path = cfg.run_dir / "web.token"
    token = ""
    if not loopback(host):
        token = secrets.token_urlsafe(24)
        token_path.write_text(token + "\n")  # under umask 077: root's only
    else:
        token_path.unlink(missing_ok=True)
    gateway = Gateway(cfg)
    runner = web.AppRunner(appmod.build(gateway, token), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, int(port), reuse_port=False)
    await site.start()
    bound = runner.addresses[0]
    shown = f"[{bound[0]}]" if ":" in bound[0] else bound[0]
    url = f"http://{shown}:{bound[1]}/"
    url_path = cfg.run_dir / "web.url"
    url_path.write_text(url + "\n")
    url_path.chmod(0o644)
    log.info("serving", url=url, token_required=bool(token), pid=os.getpid())
    await until_stopped()
    await runner.cleanup()
    await gateway.close()
    url_path.unlink(missing_ok=True)
    log.info("stopped")


if __name__ == "__main__":
    asyncio.run(serve(parse()))
