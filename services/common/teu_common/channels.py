"""Channels from one service to another, over their unix sockets, and the message size limit every
server and channel of the engine shares.

A back end that restarts (the supervisor brings it back within two seconds) must not fail the calls
made meanwhile: a channel's calls wait for its service to accept connections (gRPC's wait-for-ready,
set for every method in the channel's service config, so the wait costs nothing per call in Python)
instead of failing at once with "connection refused". Calls are never sent twice: one that was in
flight when the service died still fails, and its caller decides whether it may be repeated.
"""

from __future__ import annotations

import json

import grpc

from teu_common.config import Config

MESSAGE_SIZES = [("grpc.max_receive_message_length", 16 << 20), ("grpc.max_send_message_length", 16 << 20)]
_RECONNECT = [("grpc.initial_reconnect_backoff_ms", 100), ("grpc.max_reconnect_backoff_ms", 1000)]
_WAIT_FOR_READY = ("grpc.service_config", json.dumps({"methodConfig": [{"name": [{}], "waitForReady": True}]}))


def connect(cfg: Config, service: str, wait: bool = True) -> grpc.aio.Channel:
    """An async channel to ``service``; it reconnects by itself when the service comes back, and its
    calls wait for it while it does (``wait``; without, they fail at once while it is down)."""
    options = [*MESSAGE_SIZES, *_RECONNECT, *([_WAIT_FOR_READY] if wait else [])]
    return grpc.aio.insecure_channel(f"unix:{cfg.socket(service)}", options=options)
