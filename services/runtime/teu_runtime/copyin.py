"""``cp`` into a running container: a tar stream extracted inside its mounted root filesystem.

The extraction runs in a child process chrooted into the container's root filesystem, as Docker's
chrootarchive does: every path, the destination's and each member's, symlinks included, resolves
inside the container's root, so a container that swaps a directory for a symlink to ``/`` while the
copy runs redirects it only within its own files (the CVE-2018-15664 class cannot reach the host).
The child is :mod:`teu_runtime.untar` (standard library only: nothing is imported once it is
chrooted).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from pathlib import Path

from teu_api.errors import FailedPrecondition, InvalidArgument, NotFound
from teu_runtime.untar import NOT_FOUND

__all__ = ["copy_into", "id_mapping"]


def id_mapping(pid: int) -> tuple[int, int, int]:
    """(uid offset, gid offset, size) of the container with process ``pid``: (0, 0, 0) without
    remapping. FailedPrecondition once the process is gone."""
    try:
        uids = Path(f"/proc/{pid}/uid_map").read_text().split()
        gids = Path(f"/proc/{pid}/gid_map").read_text().split()
    except FileNotFoundError:
        raise FailedPrecondition("the container is not running") from None
    if len(uids) == 3 and len(gids) == 3 and uids[0] == gids[0] == "0" and uids[1] != "0":
        return int(uids[1]), int(gids[1]), min(int(uids[2]), int(gids[2]))
    return 0, 0, 0


async def copy_into(rootfs: Path, dest: str, chunks: AsyncIterator[bytes], mapping: tuple[int, int, int]) -> int:
    """Extracts the tar in ``chunks`` into ``dest`` (absolute, in the container) of the root
    filesystem mounted at ``rootfs``; returns the members extracted. The child is killed if the
    copy is cancelled or fails on this side."""
    if not dest.startswith("/"):
        raise InvalidArgument(f"copy destination must be absolute: {dest!r}")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "teu_runtime.untar", str(rootfs), dest, *(str(n) for n in mapping),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdin is not None
    try:
        try:
            async for chunk in chunks:
                proc.stdin.write(chunk)
                await proc.stdin.drain()
        except (BrokenPipeError, ConnectionResetError):
            pass  # the child stopped early: its error says why
        finally:
            proc.stdin.close()
        out, err = await proc.communicate()
    except BaseException:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        raise
    message = err.decode(errors="replace").strip().splitlines()[-1:] or ["copy failed"]
    if proc.returncode == NOT_FOUND:
        raise NotFound(message[0])
    if proc.returncode != 0:
        raise InvalidArgument(f"copying into the container failed: {message[0]}")
    return int(out.decode().strip() or 0)
