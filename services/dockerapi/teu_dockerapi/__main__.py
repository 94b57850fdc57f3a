"""Entry point: ``python -m teu_dockerapi [--root R] [--run-dir D]``: serves Docker's Engine API on
``<run-dir>/docker.sock`` until SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal

import structlog
from aiohttp import web

from teu_common import logging as teulogging
from teu_common import perms
from teu_common.config import Config
from teu_common.server import parse_args
from teu_dockerapi import app as appmod
from teu_dockerapi.gateway import Gateway

log = structlog.get_logger()


async def serve(cfg: Config) -> None:
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
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()
    await gateway.close()
    sock.unlink(missing_ok=True)
    log.info("stopped")


if __name__ == "__main__":
    cfg, _ = parse_args("dockerapi")
    asyncio.run(serve(cfg))
