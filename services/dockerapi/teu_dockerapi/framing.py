"""Docker's stream framing of non-terminal output: an 8-byte header (stream, 0, 0, 0, size as a
big-endian uint32) before each piece, 1 for stdout and 2 for stderr. Pure."""

from __future__ import annotations

import struct

from teu_api.types.v1 import types_pb2

STDOUT, STDERR = 1, 2


def frame(stream: int, data: bytes) -> bytes:
    """``data`` framed for ``stream`` (a teu.types.v1.Stream)."""
    kind = STDERR if stream == types_pb2.STREAM_STDERR else STDOUT
    return struct.pack(">BxxxL", kind, len(data)) + data
