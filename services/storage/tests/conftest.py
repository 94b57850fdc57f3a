"""Fixtures shared by the storage tests: in-memory tar building and a fresh store."""

from __future__ import annotations

import asyncio
import io
import os
import stat
import subprocess
import tarfile
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from teu_storage.imagespec import ImageConfig
from teu_storage.metadata import Image
from teu_storage.snapshots import Mount
from teu_storage.storage import Storage


class Tars:
    """Builds tar archives in memory from TarInfo entries."""

    MTIME = 1_600_000_000

    @staticmethod
    def entry(
        name: str,
        kind: bytes = tarfile.REGTYPE,
        *,
        mode: int = 0o644,
        uid: int = 0,
        gid: int = 0,
        linkname: str = "",
        size: int = 0,
    ) -> tarfile.TarInfo:
        """A member header with the given attributes."""
        info = tarfile.TarInfo(name)
        info.type, info.mode, info.uid, info.gid = kind, mode, uid, gid
        info.linkname, info.size, info.mtime = linkname, size, Tars.MTIME
        return info

    @classmethod
    def file(cls, name: str, data: bytes = b"data", **kw: int) -> tuple[tarfile.TarInfo, bytes]:
        """A regular file member."""
        return cls.entry(name, size=len(data), **kw), data  # type: ignore[arg-type]

    @classmethod
    def dir(cls, name: str, mode: int = 0o755, **kw: int) -> tuple[tarfile.TarInfo, None]:
        """A directory member."""
        return cls.entry(name, tarfile.DIRTYPE, mode=mode, **kw), None  # type: ignore[arg-type]

    @classmethod
    def sym(cls, name: str, target: str) -> tuple[tarfile.TarInfo, None]:
        """A symlink member."""
        return cls.entry(name, tarfile.SYMTYPE, mode=0o777, linkname=target), None

    @classmethod
    def link(cls, name: str, target: str) -> tuple[tarfile.TarInfo, None]:
        """A hard link member."""
        return cls.entry(name, tarfile.LNKTYPE, linkname=target), None

    @staticmethod
    def build(*members: tuple[tarfile.TarInfo, bytes | None], fmt: int = tarfile.PAX_FORMAT) -> bytes:
        """The tar of ``members``, in order."""
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=fmt) as tar:
            for info, data in members:
                tar.addfile(info, io.BytesIO(data) if data is not None else None)
        return buf.getvalue()

    @classmethod
    def busybox(cls) -> bytes:
        """A small rootfs shaped like busybox: dirs, /tmp 1777, setuid binary, absolute symlink, hard link."""
        return cls.build(
            cls.dir("./"),
            cls.dir("bin"),
            cls.file("bin/busybox", b"#!busybox\n" * 10, mode=0o755),
            cls.sym("bin/sh", "/bin/busybox"),
            cls.link("bin/ls", "bin/busybox"),
            cls.file("bin/su", b"su", mode=0o4755),
            cls.dir("tmp", mode=0o1777),
            cls.dir("home/user", mode=0o750, uid=1000, gid=1000),
            cls.file("home/user/.profile", b"x", mode=0o600, uid=1000, gid=1000),
            (cls.entry("run/fifo", tarfile.FIFOTYPE, mode=0o620), None),
            cls.file("etc/passwd", b"root:x:0:0::/root:/bin/sh\n"),
        )


@pytest.fixture
def tars() -> type[Tars]:
    """The tar builder."""
    return Tars


@pytest.fixture
def storage(tmp_path: Path) -> Iterator[Storage]:
    """A fresh store under tmp_path/state."""
    opened = Storage.open(tmp_path / "state")
    yield opened
    opened.close()


async def _one_chunk(data: bytes) -> AsyncIterator[bytes]:
    yield data


class Kit:
    """Helpers for tests of layers, snapshots and images (a fixture: tests cannot import conftest)."""

    KEY = "c" * 64

    @staticmethod
    def import_tar(storage: Storage, data: bytes, ref: str = "", config: ImageConfig | None = None) -> Image:
        """Imports ``data`` as a one-layer image (the async import run to completion)."""
        return asyncio.run(storage.import_image(ref, config or ImageConfig(), _one_chunk(data)))

    @staticmethod
    def whiteout(path: Path) -> None:
        """Makes an overlay whiteout (char device 0:0) at ``path``."""
        os.mknod(path, stat.S_IFCHR | 0o600, os.makedev(0, 0))

    @staticmethod
    def make_opaque(path: Path) -> None:
        """Marks directory ``path`` opaque the way overlayfs does."""
        os.setxattr(path, "trusted.overlay.opaque", b"y")

    @staticmethod
    def upper(storage: Storage, key: str = KEY) -> Path:
        """The writable dir of snapshot ``key``."""
        return storage.snapshots.dir / key / "upper"

    @staticmethod
    @contextmanager
    def mounted(mount: Mount, where: Path) -> Iterator[Path]:
        """Mounts an overlay spec from storage at ``where`` like the runtime would; skips if not allowed."""
        where.mkdir(exist_ok=True)
        done = subprocess.run(
            ["mount", "-t", mount.type, mount.source, "-o", ",".join(mount.options), str(where)],
            capture_output=True,
            check=False,
        )
        if done.returncode != 0:
            pytest.skip(f"cannot mount overlay here: {done.stderr.decode().strip()}")
        try:
            yield where
        finally:
            subprocess.run(["umount", str(where)], check=True)

    @staticmethod
    def tar_names(data: bytes) -> list[str]:
        """Member names of tar ``data``."""
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            return tar.getnames()

    @staticmethod
    def tar_members(data: bytes) -> dict[str, tarfile.TarInfo]:
        """Members of tar ``data`` by name."""
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            return {m.name: m for m in tar.getmembers()}


@pytest.fixture
def kit() -> type[Kit]:
    """The helpers."""
    return Kit
