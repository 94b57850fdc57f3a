"""Entry point: ``python -m teu_dockerapi [--root R] [--run-dir D] [--tls-listen HOST:PORT --tls-ca ...]``:
serves Docker's Engine API on ``<run-dir>/docker.sock`` (and, given ``--tls-listen``, on TCP to mutual-TLS
clients, whose roles teu_common.httpauthz enforces) until SIGTERM."""

from __future__ import annotations

import asyncio
import os

import structlog
from aiohttp import web

from teu_common import httpauthz as authz
from teu_common import logging as teulogging
from teu_common import perms
from teu_common.config import Config, TlsListen
from teu_common.server import parse_args, until_stopped
from teu_dockerapi import app as appmod
from teu_dockerapi.gateway import Gateway

log = structlog.get_logger()


async def serve(cfg: Config, tls: TlsListen | None = None) -> None:
    """Runs the API until SIGTERM or SIGINT."""
    teulogging.configure("dockerapi")
    perms.lock_down()
    perms.socket_dir(cfg.run_dir)
    gateway = Gateway(cfg)
    runner = web.AppRunner(appmod.build(gateway), access_log=None, handle_signals=False)
    await runner.setup()
    sock = cfg.run_dir / "docker.sock"
    sock.unlink(missing_ok=True)
    await web.UnixSite(runner, str(sock)).start()  # made under umask 077: never open to others
    perms.service_socket(sock, public=True)
    log.info("serving", socket=str(sock), pid=os.getpid())
    if tls is not None:
        host, _, port = tls.address.rpartition(":")
        await web.TCPSite(runner, host.strip("[]"), int(port), ssl_context=authz.server_context(tls), reuse_port=False).start()
        log.info("serving_tls", address=tls.address)
    await until_stopped()
    await runner.cleanup()
    await gateway.close()
    sock.unlink(missing_ok=True)
    log.info("stopped")


if __name__ == "__main__":
    asyncio.run(serve(*parse_args("dockerapi", tls=True, tls_from_env=False)))
