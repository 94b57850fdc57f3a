"""Precise OOM attribution: the kernel's own report of each OOM kill, read from /dev/kmsg.

When the OOM killer kills, the kernel logs (under one lock, so reports never interleave)::

    dd invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=0
    memory: usage 16384kB, limit 16384kB, failcnt 60            (a cgroup's limit only)
    oom-kill:constraint=CONSTRAINT_MEMCG,...,oom_memcg=/…/teu/<id>,task_memcg=/…/teu/<id>,task=dd,pid=24071,uid=0
    Memory cgroup out of memory: Killed process 24071 (dd) total-vm:...

``constraint`` and ``oom_memcg`` say whose limit was hit: CONSTRAINT_MEMCG with ``oom_memcg`` the
container's own cgroup is its limit, an ancestor of it a parent's limit; any other constraint is the
host (or a cpuset's or memory policy's nodes). ``task_memcg`` names the container of the process
killed; ``memory: usage`` the use and limit of ``oom_memcg`` at that moment. No peer reports this:
Docker and podman only learn from the cgroup's counters that some OOM kill happened.

Each kmsg record has a sequence number; the runtime keeps the number of the last report it recorded
(with the boot id, since numbers start over at boot), in the same transaction as the kill, so a
restart of the service reads again what the kernel's ring buffer still holds and records each kill once.
"""

from __future__ import annotations

import asyncio
import errno
import os
import re
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import structlog

from teu_api.types.v1 import types_pb2

log = structlog.get_logger()
KMSG: Final = Path("/dev/kmsg")
BOOT_ID: Final = Path("/proc/sys/kernel/random/boot_id")
_USAGE: Final = re.compile(r"memory: usage (\d+)kB, limit (\d+)kB")
#: A container's cgroup, under the engine's parent or its own (--cgroup-parent): its id ends the path
#: (a kill of another engine's container is dropped by the runtime, which does not know the id).
_TASK: Final = re.compile(r"/([0-9a-f]{64})$")


@dataclass(frozen=True)
class Kill:
    """One OOM kill of a process of container ``container`` (its id), reported at kmsg record ``seq``."""

    seq: int
    container: str
    report: types_pb2.OomKill


@dataclass
class Parser:
    """Turns kmsg records into kills, one record at a time (the usage line comes before the kill's)."""

    usage: tuple[int, int] | None = None

    def feed(self, seq: int, text: str, now_ns: int) -> Kill | None:
        """The kill that record ``text`` completes, if it is an oom-kill line of a Teu container."""
        if "invoked oom-killer" in text:
            self.usage = None
        elif m := _USAGE.match(text):
            if self.usage is None:  # the first one is the OOM cgroup's (memory+swap and kmem follow)
                self.usage = (int(m[1]) * 1024, int(m[2]) * 1024)
        elif text.startswith("oom-kill:"):
            fields = dict(part.partition("=")[::2] for part in text[len("oom-kill:") :].split(","))
            found = _TASK.search(fields.get("task_memcg", ""))
            usage, self.usage = self.usage, None
            if found is None:
                return None
            report = types_pb2.OomKill(time_unix_nano=now_ns, pid=_int(fields.get("pid", "")), command=fields.get("task", ""))
            oom_memcg = fields.get("oom_memcg", "")
            if fields.get("constraint") == "CONSTRAINT_MEMCG" and oom_memcg:
                report.limit = "container" if oom_memcg == fields["task_memcg"] else "parent"
                report.cgroup = oom_memcg
                if usage is not None:
                    report.usage_bytes, report.limit_bytes = usage
            else:
                report.limit = "host"
            return Kill(seq, found[1], report)
        return None


def _int(text: str) -> int:
    return int(text) if text.isdigit() else 0


def records(chunk: bytes) -> Iterator[tuple[int, str]]:
    """(sequence number, message) of a kmsg record ("prio,seq,usec,flags;message\\n key=value...")."""
    header, sep, rest = chunk.decode("utf-8", "replace").partition(";")
    fields = header.split(",")
    if sep and len(fields) >= 2 and fields[1].isdigit():
        yield int(fields[1]), rest.split("\n", 1)[0]


def boot_id() -> str:
    """This boot's id (kmsg sequence numbers start over at each boot)."""
    try:
        return BOOT_ID.read_text().strip()
    except OSError:
        return ""


async def watch(after: int, on_kill: Callable[[Kill], Awaitable[None]], clock: Callable[[], int]) -> None:
    """Reads /dev/kmsg for ever (from its oldest record, skipping those up to ``after``) and hands each
    kill of a process in a container's cgroup to ``on_kill``. Returns at once, logging why, if kmsg cannot be read."""
    try:
        fd = os.open(KMSG, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        log.warning("oom_watch_unavailable", error=str(exc))
        return
    loop = asyncio.get_running_loop()
    readable = asyncio.Event()
    loop.add_reader(fd, readable.set)
    parser = Parser()
    try:
        while True:
            try:
                chunk = os.read(fd, 16384)
            except BlockingIOError:
                readable.clear()
                await readable.wait()
                continue
            except OSError as exc:
                if exc.errno == errno.EPIPE:  # records overwritten before we read them: go on from the next
                    continue
                raise
            for seq, text in records(chunk):
                if seq <= after:
                    continue
                kill = parser.feed(seq, text, clock())
                if kill is not None:
                    await on_kill(kill)
    finally:
        loop.remove_reader(fd)
        os.close(fd)
