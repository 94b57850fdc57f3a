"""The resident's spare hands its early connection only to a command of the same gateway, once it is up."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest

from teu.cli.warm import WarmClient


@pytest.fixture()
def warm(monkeypatch: pytest.MonkeyPatch) -> Iterator[WarmClient]:
    monkeypatch.delenv("TEU_HOST", raising=False)
    monkeypatch.setenv("TEU_RUN", "/nonexistent-teu-run")
    w = WarmClient("unix:/nonexistent-teu-run/gateway.sock")
    w.channel.unsubscribe(w._seen)  # the states below are the test's, not the (failing) connection's
    yield w
    w.channel.close()  # a command's process ends instead; here gRPC's poller must not outlive the channel


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
