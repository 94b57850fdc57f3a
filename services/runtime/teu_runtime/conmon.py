"""Launching conmon, the per-container monitor, and reading what it leaves behind.

See docs/architecture.md and shared notes on conmon: conmon double-forks, runs ``<runtime> create``,
reports the container's pid (or the runtime's error) as one JSON line on the sync pipe, keeps the
container's stdio and log file, and writes the exit code to ``<bundle>/persist/exit`` (plus
``persist/oom`` after an OOM kill) before it exits. It never runs ``start``: Teu does.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import resource
from dataclasses import dataclass
from pathlib import Path

from teu_api.errors import Internal
from teu_common import perms
from teu_runtime.bundle import Bundle, ConmonDir

SYNC_TIMEOUT = 60.0


@dataclass(frozen=True)
class Launch:
    """Everything conmon needs for one container (or, with the session's id, one exec session)."""

    conmon: str
    runtime: str
    runtime_root: Path
    cid: str
    name: str
    bundle: Bundle
    log_path: str
    terminal: bool
    stdin: bool
    log_size_max: int = 0  # the most bytes a log file may reach (0: no bound); exec sessions have no log


@dataclass(frozen=True)
class Created:
    """conmon's answer: the container's init pid, or the runtime's error message."""

    pid: int
    error: str


def command(launch: Launch, uuid: str, workdir: ConmonDir, pidfile: Path, exit_dir: Path, log: str, *extra: str) -> list[str]:
    """conmon's command line (pure): what a container's monitor and an exec session's share, then
    ``extra``. ``workdir`` is conmon's -b, where it makes the attach socket and the control fifo."""
    args = [
        launch.conmon, "--api-version",
        "-c", launch.cid, "-u", uuid, "-n", launch.name,
        "-r", launch.runtime, "--runtime-arg", f"--root={launch.runtime_root}",
        "-b", str(workdir.path), "-p", str(pidfile), "--exit-dir", str(exit_dir),
        "--full-attach", "-l", log, "--log-level", "warning",
    ]  # fmt: skip
    if launch.terminal:
        args.append("-t")
    elif launch.stdin:
        args.append("-i")
    return [*args, *extra]


def bounded(launch: Launch, hard_limit: int) -> list[str]:
    """conmon's command line behind ``prlimit``, which gives conmon (and nothing it leaves the limit
    to) a soft RLIMIT_FSIZE of the log's backstop, kept under the engine's hard limit (raising it needs
    CAP_SYS_RESOURCE). The kernel then refuses every write that would take a log file past it, at any
    writer speed and whatever conmon's version: conmon's own --log-size-max truncates the file,
    which loses lines, and before 2.1.9 it even cut files it had just reopened (docs/architecture.md,
    Logs). The container gets its own limit from its OCI spec (confine.rlimits)."""
    line = argv(launch)
    if launch.log_size_max <= 0:
        return line
    soft = launch.log_size_max if hard_limit < 0 else min(launch.log_size_max, hard_limit)
    return ["prlimit", f"--fsize={soft}:", "--", *line]


def argv(launch: Launch) -> list[str]:
    """The container monitor's command line (pure)."""
    b = launch.bundle
    return command(launch, launch.cid, b, b.pidfile, b.exits, f"k8s-file:{launch.log_path}",
                   "--persist-dir", str(b.persist), "-P", str(b.conmon_pid))  # fmt: skip


_LOGRUS_MSG = re.compile(r'msg="((?:[^"\\]|\\.)*)"')


def clean_error(message: str) -> str:
    """The runtime's error without its logger's decoration (``time=... level=error msg="..."``)."""
    found: list[str] = _LOGRUS_MSG.findall(message)
    if not found:
        return message.strip()
    text = found[-1].encode().decode("unicode_escape", errors="replace")
    return text.removeprefix("runc create failed: ").removeprefix("crun create failed: ").strip()


def parse_sync(line: bytes) -> Created:
    """Decodes conmon's sync message; EOF with nothing means conmon died early."""
    if not line.strip():
        return Created(-1, "conmon exited without reporting (see the runtime service log)")
    msg = json.loads(line)
    pid = int(msg.get("data", -1))
    return Created(pid, "" if pid > 0 else clean_error(str(msg.get("message", ""))))


async def launch(spec: Launch) -> Created:
    """Starts conmon and waits until the container is created (or failed to be)."""
    b = spec.bundle
    for sub in (b.exits, b.persist):
        sub.mkdir(exist_ok=True)
    for stale in (b.exits / spec.cid, b.exit_file, b.oom_file, b.conmon_pid, b.pidfile):
        stale.unlink(missing_ok=True)
    read_fd, write_fd = os.pipe()
    env = {"_OCI_SYNCPIPE": str(write_fd), "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")}
    try:
        proc = await asyncio.create_subprocess_exec(
            *bounded(spec, resource.getrlimit(resource.RLIMIT_FSIZE)[1]),
            pass_fds=(write_fd,),
            # SIGXFSZ stays ignored (Python ignores it): a write past the bound fails with EFBIG, and
            # conmon drops that output instead of dying. runc hands the container default handlers.
            restore_signals=False,
            env=env,
            cwd=b.path,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
            umask=perms.OCI_RUNTIME_UMASK,
        )
    finally:
        os.close(write_fd)
    try:
        line = await asyncio.wait_for(read_line(read_fd), SYNC_TIMEOUT)
    except TimeoutError as exc:
        raise Internal(f"conmon did not report within {SYNC_TIMEOUT:.0f}s") from exc
    finally:
        os.close(read_fd)
    _, err = await proc.communicate()
    created = parse_sync(line)
    if created.pid <= 0 and not created.error and err:
        return Created(-1, err.decode(errors="replace").strip())
    return created


async def wait_readable(fd: int) -> None:
    """Returns once ``fd`` is readable (a pipe with data or at EOF, a pidfd whose process ended)."""
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[None] = loop.create_future()

    def resolve() -> None:
        if not ready.done():
            ready.set_result(None)

    loop.add_reader(fd, resolve)
    try:
        await ready
    finally:
        loop.remove_reader(fd)


async def read_line(fd: int) -> bytes:
    """One line from one of conmon's pipes, read on the event loop (no thread is held while conmon
    takes its time: an exec's exit code comes when its process ends), byte by byte so that a later
    message (an exec's exit code after its pid) stays in the pipe. The messages are a few dozen bytes."""
    os.set_blocking(fd, False)
    line = bytearray()
    while True:
        try:
            ch = os.read(fd, 1)
        except BlockingIOError:
            await wait_readable(fd)
            continue
        line += ch
        if not ch or ch == b"\n":
            return bytes(line)


def monitor_pid(bundle: Bundle) -> int:
    """conmon's pid, from its pidfile; 0 if absent."""
    try:
        return int(bundle.conmon_pid.read_text().strip())
    except (FileNotFoundError, ValueError):
        return 0


def exit_status(bundle: Bundle) -> tuple[int, bool] | None:
    """(exit code, OOM-killed) once conmon has recorded the exit; None before that."""
    try:
        code = int(bundle.exit_file.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    return code, bundle.oom_file.exists()


def is_monitor(pid: int, cid: str) -> bool:
    """Whether ``pid`` is still the conmon process of container ``cid``."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return bool(cmdline) and cmdline[0].endswith(b"conmon") and cid.encode() in cmdline
