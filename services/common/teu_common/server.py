"""Bootstrap shared by the four services: socket, interceptor, health, reflection, metrics, SIGTERM.

The gateway may also listen on TCP (``--tls-listen``): a second server with the same servicers,
mutual TLS only, with :class:`~teu_common.authz.AuthzInterceptor` in its chain. Interceptors are
per server in grpc.aio, so the unix socket's server never sees the authorization at all.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc
import structlog
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from prometheus_client import start_http_server

from teu_common import config as configmod
from teu_common import logging as teulogging
from teu_common import perms, tasks
from teu_common.authz import AuthzInterceptor
from teu_common.channels import MESSAGE_SIZES
from teu_common.interceptor import ErrorInterceptor

log = structlog.get_logger()


@dataclass
class Service:
    """One gRPC service to serve: its generated ``add_*_to_server`` function and implementation."""

    add: Callable[[Any, grpc.aio.Server], None]
    servicer: Any
    full_name: str


@dataclass
class Lifecycle:
    """What a service does around serving: set-up before, clean-up after."""

    services: Sequence[Service]
    on_stop: Callable[[], Awaitable[None]] | None = None
    background: list[asyncio.Task[Any]] = field(default_factory=list)


def parse_args(name: str, tls: bool = False, tls_from_env: bool = True) -> tuple[configmod.Config, configmod.TlsListen | None]:
    """Reads ``--root`` and ``--run-dir`` for service ``name``; with ``tls``, also the ``--tls-*``
    flags of its optional mutual-TLS listener (None when it has none). A front door passes
    ``tls_from_env=False``: its listener comes from ``--tls-listen`` only, never from TEU_TLS_LISTEN,
    which is the gateway's (the supervisor hands each front door its own address as that flag)."""
    parser = argparse.ArgumentParser(prog=f"teu-{name}", description=f"Teu {name} service")
    parser.add_argument("--root", help="state root (default $TEU_ROOT or /var/lib/teu)")
    parser.add_argument("--run-dir", help="socket dir (default $TEU_RUN or /run/teu)")
    if tls:
        configmod.add_tls_flags(parser)
    args = parser.parse_args()
    listener = None
    if tls and (tls_from_env or args.tls_listen):
        try:
            listener = configmod.load_tls(args.tls_listen, args.tls_ca, args.tls_cert, args.tls_key)
        except ValueError as exc:
            parser.error(str(exc))
    return configmod.load(args.root, args.run_dir), listener


async def _start_tls(services: Sequence[Service], tls: configmod.TlsListen) -> grpc.aio.Server:
    """Serves ``services`` on ``tls.address``: client certificates required, roles enforced."""
    # No SO_REUSEPORT: a port another process holds is an error, not a silently shared listener.
    options = [*MESSAGE_SIZES, ("grpc.so_reuseport", 0)]
    server = grpc.aio.server(interceptors=[ErrorInterceptor(), AuthzInterceptor()], options=options)
    for svc in services:
        svc.add(svc.servicer, server)
    credentials = grpc.ssl_server_credentials(
        [(tls.key.read_bytes(), tls.cert.read_bytes())], root_certificates=tls.ca.read_bytes(), require_client_auth=True
    )
    try:
        port = server.add_secure_port(tls.address, credentials)
    except RuntimeError as exc:
        log.error("tls_listen_failed", address=tls.address, error=str(exc))
        raise SystemExit(1) from None
    await server.start()
    log.info("serving_tls", address=tls.address, port=port, ca=str(tls.ca))
    return server


def _start_metrics(name: str, cfg: configmod.Config) -> None:
    """Serves /metrics on loopback; a taken port (another engine) falls back to a free one."""
    try:
        server, _ = start_http_server(cfg.metrics_port(name), addr="127.0.0.1")
    except OSError as exc:
        log.warning("metrics_port_taken", port=cfg.metrics_port(name), error=str(exc))
        server, _ = start_http_server(0, addr="127.0.0.1")
    port_file = cfg.run_dir / f"{name}.metrics"
    port_file.write_text(f"http://127.0.0.1:{server.server_port}/metrics\n")
    log.info("metrics_listening", port=server.server_port)


async def serve(
    name: str, cfg: configmod.Config, build: Callable[[], Awaitable[Lifecycle]], tls: configmod.TlsListen | None = None
) -> None:
    """Runs service ``name`` until SIGTERM or SIGINT, then shuts down gracefully; with ``tls``, its
    public services are also served on TCP to mutual-TLS clients, per their certificate's role."""
    teulogging.configure(name)
    perms.lock_down()
    perms.socket_dir(cfg.run_dir)
    perms.state_root(cfg.root)
    perms.private_dir(cfg.state_dir(name))
    lifecycle = await build()
    server = grpc.aio.server(interceptors=[ErrorInterceptor()], options=MESSAGE_SIZES)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    names = [reflection.SERVICE_NAME, health.SERVICE_NAME]
    for svc in lifecycle.services:
        svc.add(svc.servicer, server)
        names.append(svc.full_name)
        await health_servicer.set(svc.full_name, health_pb2.HealthCheckResponse.SERVING)
    await health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    reflection.enable_server_reflection(names, server)
    sock = cfg.socket(name)
    sock.unlink(missing_ok=True)
    server.add_insecure_port(f"unix:{sock}")
    tcp = await _start_tls(lifecycle.services, tls) if tls else None  # first: a gateway that cannot bind serves nothing
    await server.start()  # bound under umask 077: the socket is never open to others
    perms.service_socket(sock, public=name == "gateway")
    _start_metrics(name, cfg)
    log.info("serving", socket=str(sock), pid=os.getpid())
    asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, tasks.dump)
    await until_stopped()
    log.info("stopping")
    await health_servicer.enter_graceful_shutdown()
    await asyncio.gather(server.stop(grace=5), *([tcp.stop(grace=5)] if tcp else []))
    for task in lifecycle.background:
        task.cancel()
    if lifecycle.on_stop:
        await lifecycle.on_stop()
    sock.unlink(missing_ok=True)
    log.info("stopped")


async def until_stopped() -> None:
    """Returns once SIGTERM or SIGINT arrives: what every service and front door waits for before it stops."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


def main(name: str, build: Callable[[configmod.Config], Awaitable[Lifecycle]], tls: bool = False) -> None:
    """Entry point of a service's ``__main__``; ``tls``: it takes the ``--tls-*`` flags (the gateway)."""
    cfg, listener = parse_args(name, tls)
    asyncio.run(serve(name, cfg, lambda: build(cfg), listener))
