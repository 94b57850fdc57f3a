"""The public event stream's pure parts: cursors and Docker's filters."""

from __future__ import annotations

import pytest

from teu_api.errors import InvalidArgument
from teu_api.types.v1 import types_pb2
from teu_gateway import events


def event(type_: str, action: str, actor: str, **attributes: str) -> types_pb2.Event:
    return types_pb2.Event(type=type_, action=action, actor_id=actor, attributes=attributes)


def test_cursor_round_trip_and_refusals() -> None:
    assert events.parse_cursor(events.cursor({"r": 12, "s": 0})) == {"r": 12, "s": 0}
    for bad in ("", "r1", "s1-r2", "r-1-s2", "r1-s2-x", "r" + "9" * 30 + "-s1"):
        with pytest.raises(InvalidArgument):
            events.parse_cursor(bad)


def keep(*filters: str) -> list[str]:
    sample = [
        event("container", "start", "abc123", name="web", image="busybox:latest", tier="front"),
        event("container", "exec_start: sh -c date", "abc123", name="web", image="busybox"),
        event("container", "die", "def456", name="db", image="postgres:16", exitCode="1"),
        event("image", "tag", "sha256:1", name="busybox:latest"),
        event("network", "connect", "n1", name="back", container="abc123"),
        event("volume", "create", "data", driver="local"),
    ]
    match = events.matcher(events.parse_filters(filters))
    return [f"{e.type}/{e.action}" for e in sample if match(e)]


def test_filters_follow_docker() -> None:
    assert keep("type=volume") == ["volume/create"]
    assert keep("event=exec_start") == ["container/exec_start: sh -c date"]
    assert keep("event=start", "event=die") == ["container/start", "container/die"]
    assert keep("container=web") == ["container/start", "container/exec_start: sh -c date"]
    assert keep("container=def") == ["container/die"]  # an id prefix
    assert keep("image=busybox") == ["container/start", "container/exec_start: sh -c date", "image/tag"]
    assert keep("label=tier=front") == ["container/start"]
    assert keep("label=tier", "container=db") == []
    assert keep("network=back") == ["network/connect"]
    assert keep("volume=data", "type=volume") == ["volume/create"]


def test_bad_filters_and_times_are_invalid() -> None:
    for bad in ("colour=red", "type=pod", "event"):
        with pytest.raises(InvalidArgument):
            events.parse_filters([bad])
    with pytest.raises(InvalidArgument, match="before since"):
        events.request("", since_ns=20, until_ns=10, filters=[])
    with pytest.raises(InvalidArgument):
        events.request("", since_ns=-1, until_ns=0, filters=[])
