"""The resident's spare hands its early connection only to a command of the same gateway, once it is up."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc
import pytest

from teu.cli import warm as warm_module
from teu.cli.warm import WarmClient


class _Channel:
    """The seam: a channel that connects nowhere (no gRPC poller to outlive the test); the states
    below are the test's own."""

    def subscribe(self, callback: Callable[[grpc.ChannelConnectivity], None], try_to_connect: bool = False) -> None:
        pass

    def unsubscribe(self, callback: Callable[[grpc.ChannelConnectivity], None]) -> None:
        pass

    def __getattr__(self, name: str) -> Callable[..., Any]:
        return lambda *args, **kwargs: None  # the stubs' multicallables, never called here


@pytest.fixture()
def warm(monkeypatch: pytest.MonkeyPatch) -> WarmClient:
    monkeypatch.delenv("TEU_HOST", raising=False)
    monkeypatch.setenv("TEU_RUN", "/nonexistent-teu-run")
    monkeypatch.setattr(warm_module, "open_channel", lambda target: _Channel())
    return WarmClient("unix:/nonexistent-teu-run/gateway.sock")


def test_a_connected_channel_goes_to_a_command_of_its_gateway(warm: WarmClient) -> None:
    warm.state = grpc.ChannelConnectivity.READY
    assert warm.take(None, None) is warm.client
    warm.state = grpc.ChannelConnectivity.READY
    assert warm.take("unix:/nonexistent-teu-run/gateway.sock", None) is warm.client


def test_anything_else_opens_its_own(warm: WarmClient) -> None:
    warm.state = grpc.ChannelConnectivity.READY
    assert warm.take("unix:/elsewhere.sock", None) is None
    warm.state = grpc.ChannelConnectivity.TRANSIENT_FAILURE  # the engine was down when the spare connected
    assert warm.take(None, None) is None
    warm.state = None
    assert warm.take(None, None) is None
