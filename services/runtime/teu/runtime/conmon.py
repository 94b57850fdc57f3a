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
from dataclasses import dataclass
from pathlib import Path

from teu.errors import Internal

SYNC_TIMEOUT = 60.0


@dataclass(frozen=True)
class Launch:
    """Everything conmon needs for one container."""

    conmon: str
    runtime: str
    runtime_root: Path
    cid: str
    name: str
    bundle: Path
    log_path: str
    terminal: bool
    stdin: bool


@dataclass(frozen=True)
class Created:
    """conmon's answer: the container's init pid, or the runtime's error message."""

    pid: int
    error: str


def persist_dir(bundle: Path) -> Path:
    """Where conmon writes ``exit`` and ``oom``."""
    return bundle / "persist"


def argv(launch: Launch) -> list[str]:
    """conmon's command line (pure)."""
    b = launch.bundle
    args = [
        launch.conmon,
        "--api-version",
        "-c", launch.cid,
        "-u", launch.cid,
        "-r", launch.runtime,
        "-b", str(b),
        "-p", str(b / "pidfile"),
        "-n", launch.name,
        "--exit-dir", str(b / "exits"),
        "--persist-dir", str(persist_dir(b)),
        "-P", str(b / "conmon.pid"),
        "--full-attach",
        "-l", f"k8s-file:{launch.log_path}",
        "--log-level", "warning",
        "--runtime-arg", f"--root={launch.runtime_root}",
    ]  # fmt: skip
    if launch.terminal:
        args.append("-t")
    elif launch.stdin:
        args.append("-i")
    return args


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
    for sub in ("exits", "persist"):
        (spec.bundle / sub).mkdir(exist_ok=True)
    for stale in ("exits/" + spec.cid, "persist/exit", "persist/oom", "conmon.pid", "pidfile"):
        (spec.bundle / stale).unlink(missing_ok=True)
    read_fd, write_fd = os.pipe()
    env = {"_OCI_SYNCPIPE": str(write_fd), "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")}
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv(spec),
            pass_fds=(write_fd,),
            env=env,
            cwd=spec.bundle,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
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


def monitor_pid(bundle: Path) -> int:
    """conmon's pid, from its pidfile; 0 if absent."""
    try:
        return int((bundle / "conmon.pid").read_text().strip())
    except (FileNotFoundError, ValueError):
        return 0


def exit_status(bundle: Path) -> tuple[int, bool] | None:
    """(exit code, OOM-killed) once conmon has recorded the exit; None before that."""
    try:
        code = int((persist_dir(bundle) / "exit").read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    return code, (persist_dir(bundle) / "oom").exists()


def is_monitor(pid: int, cid: str) -> bool:
    """Whether ``pid`` is still the conmon process of container ``cid``."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return bool(cmdline) and cmdline[0].endswith(b"conmon") and cid.encode() in cmdline
