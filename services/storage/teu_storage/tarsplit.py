"""tar-split: rebuilding a layer's exact tar bytes from its unpacked directory.

A layer's diff id is the sha256 of the tar it came from, and ``save``/``push`` must produce those
very bytes again, or docker and podman refuse the layer. Keeping every tar next to its unpacked tree
would double the disk use; like Docker (github.com/vbatts/tar-split), Teu keeps only what the tree
does not hold: headers, padding and end blocks verbatim, and for each regular file a reference
(relative path, size) to its content in the layer dir.

File format (gzip-compressed)::

    b"TEUSPLIT1\\n" <u64 tar size>
    records: b"R" <u64 n> <n raw bytes>  |  b"F" <u64 size> <u32 n> <n bytes of relative path>
"""

from __future__ import annotations

import gzip
import hashlib
import os
import struct
from collections.abc import Iterator, Sequence
from pathlib import Path

from teu_api.errors import Internal
from teu_storage.archive import Segment

__all__ = ["rebuilt", "tar_size", "write"]

_MAGIC = b"TEUSPLIT1\n"
_U64 = struct.Struct(">Q")
_U32 = struct.Struct(">I")
_CHUNK = 1 << 20


def write(tar_path: Path, segments: Sequence[Segment], out: Path) -> None:
    """Writes the tar-split of ``tar_path`` (described by ``segments``) to ``out``."""
    total = segments[-1].end if segments else 0
    with open(tar_path, "rb") as src, gzip.open(out, "wb", compresslevel=1) as dst:
        dst.write(_MAGIC + _U64.pack(total))
        for seg in segments:
            if seg.path is None:
                dst.write(b"R" + _U64.pack(seg.end - seg.start))
                src.seek(seg.start)
                left = seg.end - seg.start
                while left:
                    chunk = src.read(min(left, _CHUNK))
                    if not chunk:
                        raise Internal(f"{tar_path} shrank while writing its tar-split")
                    dst.write(chunk)
                    left -= len(chunk)
            else:
                raw = os.fsencode(seg.path)
                dst.write(b"F" + _U64.pack(seg.end - seg.start) + _U32.pack(len(raw)) + raw)


def tar_size(split: Path) -> int:
    """Size in bytes of the tar that ``split`` rebuilds."""
    with gzip.open(split, "rb") as f:
        head = f.read(len(_MAGIC) + _U64.size)
    if not head.startswith(_MAGIC):
        raise Internal(f"corrupt tar-split {split}")
    return int(_U64.unpack(head[len(_MAGIC) :])[0])


def rebuilt(split: Path, layer_dir: Path, diff_id: str) -> Iterator[bytes]:
    """The rebuilt tar's bytes, in pieces; Internal at the end if their digest is not ``diff_id``."""
    h = hashlib.sha256()
    for chunk in _rebuild(split, layer_dir):
        h.update(chunk)
        yield chunk
    if "sha256:" + h.hexdigest() != diff_id:
        raise Internal(f"layer {diff_id} is corrupt: its files rebuild to sha256:{h.hexdigest()}")


def _rebuild(split: Path, layer_dir: Path) -> Iterator[bytes]:
    with gzip.open(split, "rb") as f:
        if f.read(len(_MAGIC) + _U64.size)[: len(_MAGIC)] != _MAGIC:
            raise Internal(f"corrupt tar-split {split}")
        while kind := f.read(1):
            (size,) = _U64.unpack(f.read(_U64.size))
            if kind == b"R":
                while size:
                    chunk = f.read(min(size, _CHUNK))
                    if not chunk:
                        raise Internal(f"truncated tar-split {split}")
                    size -= len(chunk)
                    yield chunk
            elif kind == b"F":
                (n,) = _U32.unpack(f.read(_U32.size))
                yield from _file(layer_dir / os.fsdecode(f.read(n)), size)
            else:
                raise Internal(f"corrupt tar-split {split}")


def _file(path: Path, size: int) -> Iterator[bytes]:
    # O_NOFOLLOW: the layer dir is Teu's own, but a path must never lead anywhere else.
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(fd, "rb") as src:
        while size:
            chunk = src.read(min(size, _CHUNK))
            if not chunk:
                raise Internal(f"layer file {path} is shorter than recorded")
            size -= len(chunk)
            yield chunk
