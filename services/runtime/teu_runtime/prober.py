"""The healthcheck prober: one small process in each container with a healthcheck, that runs its checks.

Starting a process in a container through the OCI runtime (``runc exec``: two Go processes, entering
every namespace, the cgroup, capabilities and the seccomp filter) costs about 36 ms of CPU; a check
every second on 50 containers would take almost two cores. So the runtime enters the container once
per run of the container: it starts, as an exec session of the container (the container's user,
environment, directory and confinement; conmon its parent, which reaps it: a process that entered
the container's PID namespace from outside must be reaped before the container's init can finish
exiting), the shell of the host's static busybox, which a container with a healthcheck has bound
read-only at spec.PROBER_PATH (on its /dev tmpfs, so nothing shows in its filesystem's diff;
read-only, as Docker's docker-init, so that no process of the container can write to the host's file
through /proc/<pid>/exe). That shell reads a line per check on its stdin, runs the check as its
child, and writes the check's output, then a line with a token and the exit code, on its stdout.
A check then costs a fork and an exec in the container, and a few bytes through conmon.

The shell looks the check's command up in the container's PATH itself: busybox prefers its own
applets to the container's binaries of the same name. The prober ends when the runtime closes it
or the container stops; one a runtime left behind when it died is ended by the next (its stdin,
which conmon holds open, would never close).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import signal
import struct
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final

import structlog

from teu_api.types.v1 import types_pb2
from teu_runtime import execs, spec
from teu_runtime.attach import AttachSocket
from teu_runtime.bundle import Bundle
from teu_runtime.conmon import Launch

log = structlog.get_logger()

MAX_OUTPUT: Final = 4096  # of a check's output kept, as Docker
SESSION_PREFIX: Final = "prober-"  # the prober's exec session is prober-<token>
PT_INTERP: Final = 3  # the ELF program header that names a dynamic loader
# $0 is the token; "$@" the check's command. Variable names stay clear of the container's environment.
SCRIPT: Final = r"""unset _teu_prober
while read -r _teu_line; do
  _teu_cmd=$1
  case $_teu_cmd in
  */*) ;;
  *)
    _teu_found=
    _teu_ifs=$IFS
    IFS=:
    for _teu_dir in $PATH; do
      if [ -f "$_teu_dir/$_teu_cmd" ] && [ -x "$_teu_dir/$_teu_cmd" ]; then
        _teu_found=$_teu_dir/$_teu_cmd
        break
      fi
    done
    IFS=$_teu_ifs
    if [ -z "$_teu_found" ]; then
      printf 'exec: "%s": executable file not found in $PATH\n%s 127\n' "$_teu_cmd" "$0"
      continue
    fi
    _teu_cmd=$_teu_found
    ;;
  esac
  (shift; exec "$_teu_cmd" "$@") </dev/null 2>&1
  printf '\n%s %d\n' "$0" "$?"
done
"""


def static_busybox() -> str:
    """The host's busybox if it is a static executable (Debian's busybox-static), else ""."""
    path = shutil.which("busybox")
    if not path:
        return ""
    try:
        with open(path, "rb") as f:
            head = f.read(64)
            if head[:4] != b"\x7fELF" or head[5] != 1:  # little-endian ELF
                return ""
            wide = head[4] == 2
            phoff, phentsize, phnum = struct.unpack_from("<Q14xHH" if wide else "<I10xHH", head, 32 if wide else 28)
            f.seek(phoff)
            table = f.read(phentsize * phnum)
    except OSError:
        return ""
    types = [struct.unpack_from("<I", table, i * phentsize)[0] for i in range(len(table) // phentsize)]
    return "" if PT_INTERP in types else path


class ProberGone(Exception):
    """The prober process is gone (the container stopped, or something killed it)."""


@dataclass
class Framer:
    """Splits the prober's stdout into checks: the output (its first MAX_OUTPUT bytes) up to the
    line ``<token> <code>``, which a newline the prober adds precedes."""

    token: bytes
    kept: bytearray = field(default_factory=bytearray)
    tail: bytearray = field(default_factory=bytearray)  # what may still hold the start of the marker

    def feed(self, data: bytes) -> tuple[bytes, int] | None:
        """The output and exit code once ``data`` completes a check's marker line; None before."""
        self.tail += data
        marker = b"\n" + self.token + b" "
        at = self.tail.find(marker)
        if at < 0:
            keep = max(0, len(self.tail) - len(marker) - 16)  # the rest may be the start of the marker
            self._keep(self.tail[:keep])
            del self.tail[:keep]
            return None
        end = self.tail.find(b"\n", at + len(marker))
        if end < 0:
            return None
        self._keep(self.tail[:at])
        code = int(self.tail[at + len(marker) : end] or b"-1")
        output = bytes(self.kept)
        del self.tail[: end + 1]
        self.kept.clear()
        return output, code

    def _keep(self, data: bytes | bytearray) -> None:
        room = MAX_OUTPUT - len(self.kept)
        if room > 0:
            self.kept += data[:room]


@dataclass
class Prober:
    """A running prober: its exec session (conmon, the prober's parent, reaps it and relays its
    stdio over the attach socket), the prober's process held, and its output as it comes."""

    session: execs.Session
    sock: AttachSocket
    process: execs.Process
    framer: Framer

    @classmethod
    async def start(cls, launch: Launch, bundle: Bundle, process: dict[str, Any], argv: list[str]) -> Prober:
        """Starts the prober in ``launch``'s container (``process``: the OCI process of an exec in
        it, whose arguments are replaced) for the check ``argv``, as exec session ``prober-<token>``."""
        token = secrets.token_hex(16)
        sid = f"{SESSION_PREFIX}{token}"
        # the script comes in the environment, so that the process list shows a short command line
        env = [*process["env"], f"_teu_prober={SCRIPT}"]
        doc = dict(process, args=[spec.PROBER_PATH, "sh", "-c", 'eval "$_teu_prober"', token, *argv], env=env, terminal=False)
        edir = bundle.session(sid)
        session = await execs.launch(execs.argv(replace(launch, terminal=False, stdin=True), sid, edir), edir, doc, sid, None)
        try:
            if session.pid <= 0 or session.sock is None:
                raise ProberGone(session.error or "the prober did not start")
            held = execs.Process(session.pid)
        except BaseException:
            await _end(session)
            raise
        return cls(session, session.sock, held, Framer(token.encode()))

    async def check(self, timeout_ns: int) -> types_pb2.HealthResult:
        """Runs the check once: exit code -1 when it outlived ``timeout_ns`` (it is killed then)."""
        start = time.time_ns()
        try:
            await self.sock.send(b"\n")
        except OSError as exc:
            raise ProberGone(str(exc)) from exc
        try:
            async with asyncio.timeout(timeout_ns / 1e9):
                output, code = await self._result()
        except TimeoutError:
            self._kill_check()
            async with asyncio.timeout(5):
                await self._result()  # the prober's own line for the killed check
            code, output = -1, f"Health check exceeded timeout ({timeout_ns / 1e9:g}s)".encode()
        return types_pb2.HealthResult(start=start, end=time.time_ns(), exit_code=code, output=output.decode(errors="replace"))

    async def _result(self) -> tuple[bytes, int]:
        while (packet := await self.sock.receive()) is not None:
            if (done := self.framer.feed(packet[1])) is not None:
                return done
        raise ProberGone("the prober's output ended")

    def _kill_check(self) -> None:
        """Kills the running check: the prober's child (found on the host, by the prober's pid)."""
        pid = self.session.pid
        with contextlib.suppress(OSError, ValueError):
            for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
                os.kill(int(child), signal.SIGKILL)

    async def close(self) -> None:
        """Ends the prober (conmon then exits too) and removes its session. Once: a close cut short by
        a cancellation may be asked again."""
        if not self.process.held:
            return
        self.process.send_signal(signal.SIGKILL)
        self.process.close()
        await _end(self.session)


async def _end(session: execs.Session) -> None:
    """Waits for conmon's last word on ``session`` (its process is gone or going), then removes it."""
    with contextlib.suppress(OSError, TimeoutError):
        await asyncio.wait_for(session.exit_code(), 10)
    session.cleanup()


def end_leftovers(bundle: Bundle) -> None:
    """Ends the probers of a runtime that is gone, in the container of ``bundle``: conmon keeps a
    prober's stdin open when its client disconnects, so it would wait for ever. Each is found by
    its session's pid file and killed only if its command line still holds its session's token."""
    try:
        dirs = [d for d in (bundle.path / "exec").iterdir() if d.name.startswith(SESSION_PREFIX)]
    except FileNotFoundError:
        return
    for d in dirs:
        edir = bundle.session(d.name)
        with contextlib.suppress(OSError, ValueError):
            pid = int(edir.pidfile.read_text().strip())
            if d.name.removeprefix(SESSION_PREFIX).encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(d, ignore_errors=True)
