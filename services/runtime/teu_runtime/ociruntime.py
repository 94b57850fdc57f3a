"""The OCI runtime (runc or crun), driven through its CLI behind one small interface.

Both runtimes share the verbs Teu needs (``start``, ``kill``, ``delete``, ``state``) and their flags,
so one class serves both; conmon runs ``create`` itself.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from teu_api.errors import FailedPrecondition, Internal, Unavailable
from teu_runtime.cgroups import CgroupLayout


class OciRuntime(Protocol):
    """What the runtime service needs from an OCI runtime."""

    name: str
    path: str
    root: Path

    async def start(self, cid: str) -> None:
        """Starts the user process of a created container."""

    async def kill(self, cid: str, signal: int) -> None:
        """Sends ``signal`` to the container's init process."""

    async def delete(self, cid: str, force: bool = False) -> None:
        """Removes the container's runtime state and cgroups; no error if it is unknown."""

    async def pause(self, cid: str) -> None:
        """Freezes the container's processes (``<runtime> pause``)."""

    async def resume(self, cid: str) -> None:
        """Thaws them (``<runtime> resume``)."""

    async def processes(self, cid: str) -> list[int]:
        """Host pids of the container's processes (``<runtime> ps``)."""

    async def update(self, cid: str, resources: dict[str, Any]) -> None:
        """Changes a running container's cgroup limits (``<runtime> update``)."""

    def knows(self, cid: str) -> bool:
        """Whether the runtime still holds state for ``cid`` (cheap: no process is started)."""

    async def status(self, cid: str) -> tuple[str, int] | None:
        """(status, init pid) from ``<runtime> state``: "created", "running" or "stopped"; None if unknown."""


async def captured(*argv: str, stdin: bytes | None = None) -> tuple[int, str, str]:
    """Runs ``argv`` with ``stdin``: (exit code, stdout, stderr stripped). Its input and output go
    through unlinked files, not pipes: the end of a pipe can be held open by a process it leaves
    behind, and a wait on the child alone cannot hang that way."""
    with tempfile.TemporaryFile() as given, tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        given.write(stdin or b"")
        given.seek(0)
        proc = await asyncio.create_subprocess_exec(*argv, stdin=given, stdout=out, stderr=err)
        code = await proc.wait()
        out.seek(0)
        err.seek(0)
        return code, out.read().decode(errors="replace"), err.read().decode(errors="replace").strip()


@dataclass
class CliRuntime:
    """runc or crun, through its command line, with a private state root."""

    name: str
    path: str
    root: Path

    async def _run(self, *args: str, stdin: bytes | None = None) -> tuple[int, str, str]:
        """Runs the runtime with ``args``: (exit code, stdout, stderr)."""
        return await captured(self.path, f"--root={self.root}", *args, stdin=stdin)

    async def start(self, cid: str) -> None:
        """Runs ``<runtime> start``."""
        code, _, err = await self._run("start", cid)
        if code:
            raise Internal(f"{self.name} start failed: {err}")

    async def kill(self, cid: str, signal: int) -> None:
        """Runs ``<runtime> kill``; a container that is already gone is not an error of the caller."""
        code, _, err = await self._run("kill", cid, str(signal))
        if code:
            # runc says "process already finished" when the process exited between its state check and the signal
            if "not running" in err or "does not exist" in err or "already finished" in err:
                raise FailedPrecondition(f"container {cid[:12]} is not running")
            raise Internal(f"{self.name} kill failed: {err}")

    async def delete(self, cid: str, force: bool = False) -> None:
        """Runs ``<runtime> delete``, ignoring containers it does not know."""
        code, _, err = await self._run("delete", *(["--force"] if force else []), cid)
        if code and "not exist" not in err:
            raise Internal(f"{self.name} delete failed: {err}")

    async def pause(self, cid: str) -> None:
        """Runs ``<runtime> pause``."""
        code, _, err = await self._run("pause", cid)
        if code:
            raise Internal(f"{self.name} pause failed: {err.strip()}")

    async def resume(self, cid: str) -> None:
        """Runs ``<runtime> resume``."""
        code, _, err = await self._run("resume", cid)
        if code:
            raise Internal(f"{self.name} resume failed: {err.strip()}")

    async def update(self, cid: str, resources: dict[str, Any]) -> None:
        """Runs ``<runtime> update --resources -`` with the OCI ``linux.resources`` object on stdin."""
        code, _, err = await self._run("update", "--resources", "-", cid, stdin=json.dumps(resources).encode())
        if code:
            raise Internal(f"{self.name} update failed: {err.strip()}")

    async def processes(self, cid: str) -> list[int]:
        """Runs ``<runtime> ps --format json``."""
        code, out, err = await self._run("ps", "--format", "json", cid)
        if code:
            raise Internal(f"{self.name} ps failed: {err.strip()}")
        return [int(p) for p in json.loads(out or "[]")]

    def knows(self, cid: str) -> bool:
        """runc and crun both keep one directory per container under their root."""
        return (self.root / cid).exists()

    async def status(self, cid: str) -> tuple[str, int] | None:
        """Runs ``<runtime> state``."""
        code, out, _ = await self._run("state", cid)
        if code:
            return None
        try:
            doc = json.loads(out)
            return str(doc["status"]), int(doc.get("pid") or 0)
        except (ValueError, KeyError, TypeError):
            return None


@dataclass(frozen=True)
class Choice:
    """Which runtime to use, and why."""

    name: str
    path: str
    reason: str


def choose(layout: CgroupLayout, wanted: str | None = None) -> Choice:
    """Picks the OCI runtime by probing the host.

    crun is preferred where it works (it starts containers several times faster than runc), but
    crun 1.8 refuses hybrid hosts whose cgroup2 mount holds controllers; runc handles them.
    """
    found = {n: p for n in ("crun", "runc") if (p := shutil.which(n, path=_PATH))}
    if wanted:
        if wanted not in found:
            raise Unavailable(f"OCI runtime {wanted!r} requested but not installed")
        return Choice(wanted, found[wanted], "requested by TEU_OCI_RUNTIME")
    if "crun" in found and not (layout.hybrid and layout.v2_controllers):
        return Choice("crun", found["crun"], f"crun found; cgroups {layout.describe()}")
    if "runc" in found:
        reason = "crun refuses hybrid cgroups with controllers on cgroup2" if "crun" in found else "only runc found"
        return Choice("runc", found["runc"], f"{reason}; cgroups {layout.describe()}")
    raise Unavailable("no OCI runtime found: install runc or crun")


_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/bin", "/sbin", "/bin"])


async def version_line(path: str) -> str:
    """First line of ``<tool> --version``."""
    proc = await asyncio.create_subprocess_exec(
        path, "--version", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL
    )
    out, _ = await proc.communicate()
    return out.decode(errors="replace").splitlines()[0] if out else "unknown"
