"""Build contexts as the engine takes them: a folder as a tar, a Dockerfile from elsewhere added."""

from __future__ import annotations

import io
import os
import secrets
import tarfile
import tempfile
from pathlib import Path
from typing import BinaryIO

__all__ = ["context_tar", "dockerfile_tar", "is_archive"]


def context_tar(folder: str | os.PathLike[str], dockerfile: bytes | None = None) -> tuple[BinaryIO, str]:
    """A temporary file holding ``folder`` as a tar (its symlinks as links; the engine applies its
    ``.dockerignore``), and with ``dockerfile`` (a Dockerfile from outside it) added under a name of
    its own, returned second ("" without one)."""
    out = tempfile.TemporaryFile()  # noqa: SIM115 - the caller closes it
    name = ""
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        root = Path(folder)
        if not root.is_dir():
            raise NotADirectoryError(f"unable to prepare context: path {str(folder)!r} not found or not a directory")
        for path in sorted(root.rglob("*")):
            tar.add(path, arcname=str(path.relative_to(root)), recursive=False)
        if dockerfile is not None:
            name = f".dockerfile.{secrets.token_hex(10)}"
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(dockerfile), 0o644
            tar.addfile(info, io.BytesIO(dockerfile))
    out.seek(0)
    return out, name


def dockerfile_tar(dockerfile: bytes) -> BinaryIO:
    """A context of only a Dockerfile (``teu build - < Dockerfile``)."""
    out = tempfile.TemporaryFile()  # noqa: SIM115 - the caller closes it
    with tarfile.open(fileobj=out, mode="w") as tar:
        info = tarfile.TarInfo("Dockerfile")
        info.size, info.mode = len(dockerfile), 0o644
        tar.addfile(info, io.BytesIO(dockerfile))
    out.seek(0)
    return out


def is_archive(head: bytes) -> bool:
    """Whether bytes starting a stream are a tar, plain or gzip, bzip2 or xz compressed."""
    magics = (b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00")
    return head.startswith(magics) or (len(head) >= 262 and head[257:262] == b"ustar")
