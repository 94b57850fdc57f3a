"""A connection made before its command: the resident client's spare (resident.py) opens one to the
gateway the last command used, while it waits, so the next command starts with its channel up (its
set-up and connection were ~5 ms of every command)."""

from __future__ import annotations

import grpc

from teu.client import Client, TlsConfig, default_target, open_channel


class WarmClient:
    """A client of a unix-socket ``target``, connecting from the start. :meth:`take` hands it to a
    command that would open the same target, if its connection is up; otherwise the command opens its
    own, as without a resident (a channel that failed to connect would fail the call at once, even
    with the engine up by now)."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.channel = open_channel(target)
        self.client = Client(channel=self.channel)
        self.state: grpc.ChannelConnectivity | None = None
        self.channel.subscribe(self._seen, try_to_connect=True)

    def _seen(self, state: grpc.ChannelConnectivity) -> None:
        self.state = state

    def take(self, host: str | None, tls: TlsConfig | None) -> Client | None:
        """The client, for a command of ``host`` (None: the default target) and ``tls``; None when
        it is another target's or not connected.

        Neither is closed: closing waits for gRPC's connectivity poller (up to 0.2 s, more than the
        command), and the process ends with its command anyway (main.exit_now)."""
        self.channel.unsubscribe(self._seen)
        if tls is None and (host or default_target()) == self.target and self.state == grpc.ChannelConnectivity.READY:
            return self.client
        return None
