"""Channels from the gateway to the backing services, over their unix sockets, and the message size
limit every server and channel of the engine shares."""

from __future__ import annotations

import grpc

from teu_common.config import Config

MESSAGE_SIZES = [("grpc.max_receive_message_length", 16 << 20), ("grpc.max_send_message_length", 16 << 20)]


def connect(cfg: Config, service: str) -> grpc.aio.Channel:
    """An async channel to ``service``; it reconnects by itself when the service comes back."""
    return grpc.aio.insecure_channel(
        f"unix:{cfg.socket(service)}",
        options=[
            *MESSAGE_SIZES,
            ("grpc.initial_reconnect_backoff_ms", 100),
            ("grpc.max_reconnect_backoff_ms", 1000),
        ],
    )
