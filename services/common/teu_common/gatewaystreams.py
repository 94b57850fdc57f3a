"""The gateway's Exec and Attach streams as the front doors drive them (the CRI's exec and attach, the
web page's terminal): requests fed from a queue of frames (None ends them), and the output frames of
the answer."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator
from typing import Literal, Protocol

from teu_api.gateway.v1 import gateway_pb2 as gw
from teu_api.types.v1 import types_pb2
from teu_common.frontdoor import stream

Frames = asyncio.Queue[types_pb2.StdinFrame | None]


async def exec_requests(start: gw.ExecStart, frames: Frames) -> AsyncIterator[gw.ExecRequest]:
    yield gw.ExecRequest(start=start)
    while (frame := await frames.get()) is not None:
        yield gw.ExecRequest(frame=frame)


async def attach_requests(start: gw.AttachStart, frames: Frames) -> AsyncIterator[gw.AttachRequest]:
    yield gw.AttachRequest(start=start)
    while (frame := await frames.get()) is not None:
        yield gw.AttachRequest(frame=frame)


class Framed(Protocol):
    """An Exec or Attach response: an output frame, unless it is an exec's id."""

    @property
    def frame(self) -> types_pb2.OutputFrame: ...

    def HasField(self, field_name: Literal["frame"]) -> bool: ...  # protobuf's name


async def output_frames(responses: AsyncIterable[Framed]) -> AsyncIterator[types_pb2.OutputFrame]:
    """The output frames of an Exec or Attach stream (an exec's id left out)."""
    async for resp in stream(responses):
        if resp.HasField("frame"):
            yield resp.frame
