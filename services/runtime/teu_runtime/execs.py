"""Exec sessions: an extra process in a running container, through conmon's exec mode.

The handshake (see the conmon notes): conmon reads the start pipe once before it forks; the monitor
creates ``<session>/attach`` and says ``{"data": 0}`` on the attach pipe; we connect, then write the
start pipe again and conmon runs ``<runtime> exec``; the sync pipe reports the pid, and after the
output ends, the exit code.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
from dataclasses import dataclass
from typing import Any

from teu_api.errors import Internal
from teu_runtime.attach import AttachSocket, resize
from teu_runtime.bundle import ExecDir
from teu_runtime.conmon import Launch, clean_error, command, read_line

HANDSHAKE_TIMEOUT = 30.0


@dataclass
class Session:
    """A running exec session."""

    id: str
    dir: ExecDir
    pid: int
    error: str
    sock: AttachSocket | None
    proc: asyncio.subprocess.Process | None
    sync_fd: int

    async def exit_code(self) -> int:
        """Waits for conmon's final report: the exit code of the process. The sync pipe is taken
        once (a second call, or one after a cancelled call, reads the exit file): closing a number
        twice would close whatever file got that number in between."""
        fd, self.sync_fd = self.sync_fd, -1
        if fd < 0:
            return _exit_file(self.dir)
        try:
            line = await read_line(fd)
        finally:
            os.close(fd)
        if self.proc is not None:
            await self.proc.wait()
        try:
            return int(json.loads(line).get("data", -1)) if line.strip() else _exit_file(self.dir)
        except (ValueError, json.JSONDecodeError):
            return _exit_file(self.dir)

    def cleanup(self) -> None:
        """Removes the session's directory."""
        if self.sock:
            self.sock.close()
        shutil.rmtree(self.dir.path, ignore_errors=True)


class Process:
    """An exec's process held by a pidfd taken while it runs: a signal never reaches another process
    that got its pid after conmon reaped it, and the pidfd is closed once (its number may be another
    file's afterwards)."""

    def __init__(self, pid: int) -> None:
        """Takes hold of ``pid``; OSError if it is gone already."""
        self._pidfd = os.pidfd_open(pid)

    @property
    def held(self) -> bool:
        return self._pidfd >= 0

    def send_signal(self, sig: int) -> None:
        """Signals the process; nothing if it is gone or no longer held."""
        if self._pidfd >= 0:
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(self._pidfd, sig)

    def close(self) -> None:
        pidfd, self._pidfd = self._pidfd, -1
        if pidfd >= 0:
            os.close(pidfd)


def _exit_file(edir: ExecDir) -> int:
    for f in edir.exits.glob("*"):
        try:
            return int(f.read_text().strip())
        except ValueError:
            pass
    return -1


def argv(launch: Launch, sid: str, edir: ExecDir) -> list[str]:
    """conmon's command line for exec session ``sid`` of ``launch``'s container (pure)."""
    return command(launch, sid, edir, edir.pidfile, edir.exits, "none",
                   "-e", "--exec-attach", "--exec-process-spec", str(edir.process_spec))  # fmt: skip


async def launch(base: list[str], edir: ExecDir, process: dict[str, Any], sid: str, size: tuple[int, int] | None) -> Session:
    """Starts an exec session and connects to its stdio before the process runs."""
    sdir = edir.path
    edir.exits.mkdir(parents=True)
    edir.process_spec.write_text(json.dumps(process))
    sync_r, sync_w = os.pipe()
    start_r, start_w = os.pipe()
    attach_r, attach_w = os.pipe()
    env = {
        "_OCI_SYNCPIPE": str(sync_w),
        "_OCI_STARTPIPE": str(start_r),
        "_OCI_ATTACHPIPE": str(attach_w),
        "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
    }
    try:
        proc = await asyncio.create_subprocess_exec(
            *base, pass_fds=(sync_w, start_r, attach_w), env=env, cwd=sdir,
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
    finally:
        for fd in (sync_w, start_r, attach_w):
            os.close(fd)
    session = Session(sid, edir, 0, "", None, proc, sync_r)
    try:
        os.write(start_w, b"1")
        ready = await asyncio.wait_for(read_line(attach_r), HANDSHAKE_TIMEOUT)
        if not ready.strip() or int(json.loads(ready).get("data", -1)) < 0:
            raise Internal(f"conmon could not prepare the exec session: {ready.decode(errors='replace').strip()}")
        session.sock = await AttachSocket.connect(edir.attach)
        if size:
            resize(edir.ctl, *size)
        os.write(start_w, b"1")
        line = await asyncio.wait_for(read_line(sync_r), HANDSHAKE_TIMEOUT)
        msg: dict[str, Any] = json.loads(line) if line.strip() else {"data": -1, "message": "conmon exited without reporting"}
        session.pid = int(msg.get("data", -1))
        if session.pid <= 0:
            session.error = clean_error(str(msg.get("message", ""))).removeprefix("exec failed: ")
    except BaseException:
        session.cleanup()
        os.close(sync_r)
        raise
    finally:
        os.close(start_w)
        os.close(attach_r)
    return session
