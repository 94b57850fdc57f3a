"""Where container logs live: ``<root>/<container id>/``, one directory per container.

conmon writes ``ctr.log``; this class rotates it into segments, serves reads over all of them, and
keeps the per-log retention settings in ``state.json`` so they survive restarts of the service.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
from collections.abc import AsyncGenerator
from contextlib import aclosing
from pathlib import Path
from typing import Final

import structlog

from teu_api.errors import FailedPrecondition, InvalidArgument, NotFound
from teu_api.ids import is_full_id
from teu_logs.inotify import Inotify
from teu_logs.k8sfile import STDERR, STDOUT
from teu_logs.reader import Batch, ReadOptions, read_log
from teu_logs.rotation import Reopen, Rotator, apply_retention
from teu_logs.scan import Filter
from teu_logs.segments import LOG_NAME, STATE_NAME, LogConfig, LogDir

log = structlog.get_logger()

DEFAULT_MAX_SIZE: Final = 20 * 1024 * 1024
DEFAULT_MAX_FILES: Final = 5
#: How often the background task looks at every configured log even if inotify reported nothing.
CHECK_INTERVAL: Final = 1.0
#: The least time between two looks at the logs that changed: a writer that never pauses makes
#: events without end, and a look every 2 ms keeps rotation within a fraction of a MiB of the size.
MIN_INTERVAL: Final = 0.002


def env_int(name: str, default: int) -> int:
    """A positive integer from the environment; ``default`` when unset or not a positive integer."""
    raw = os.environ.get(name)
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value <= 0:
        log.warning("bad_environment_value", name=name, value=raw, default=default)
        return default
    return value


class LogStore:
    """The log directories under one root: conmon writes the files, this class rotates and serves them."""

    def __init__(
        self, root: Path, *, reopen: Reopen | None = None, max_size: int | None = None, max_files: int | None = None
    ) -> None:
        """``reopen`` asks conmon, through the runtime, to reopen a container's log after a rotation
        (None: logs are renamed only, as for a container whose conmon is gone)."""
        self.root = root.absolute()
        self.max_size = max_size or env_int("TEU_LOG_MAX_SIZE", DEFAULT_MAX_SIZE)
        self.max_files = max_files or env_int("TEU_LOG_MAX_FILES", DEFAULT_MAX_FILES)
        self._dirs: dict[str, LogDir] = {}
        self._rotator = Rotator(reopen)
        # Set by maintain(): the watches of the configured logs' directories.
        self._inotify: Inotify | None = None
        self._watches: dict[int, str] = {}
        # Serialises rotation against configuration and removal (readers never take it).
        self._lock = asyncio.Lock()
        self._load()

    def _load(self) -> None:
        """Picks up the logs that have retention settings, so rotation resumes after a restart."""
        try:
            entries = list(os.scandir(self.root))
        except FileNotFoundError:
            return
        for entry in entries:
            if is_full_id(entry.name) and os.path.exists(os.path.join(entry.path, STATE_NAME)):
                self._dirs[entry.name] = LogDir(Path(entry.path))

    def _check_id(self, container_id: str) -> Path:
        """The log directory of ``container_id``; InvalidArgument unless it is 64 lowercase hex digits."""
        if not is_full_id(container_id):
            raise InvalidArgument(f"invalid container id {container_id!r}: want 64 lowercase hex digits")
        return self.root / container_id

    def _dir(self, container_id: str) -> LogDir:
        """The (shared) LogDir of an existing log; NotFound if there is none."""
        path = self._check_id(container_id)
        d = self._dirs.get(container_id)
        if d is not None and d.exists():
            return d
        if not path.is_dir():
            raise NotFound(f"no log for container {container_id}")
        d = self._dirs[container_id] = LogDir(path)
        return d

    async def prepare(self, container_id: str) -> Path:
        """Creates the container's log directory and returns the path conmon must write the log to."""
        directory = self._check_id(container_id)
        await asyncio.to_thread(directory.mkdir, mode=0o700, parents=True, exist_ok=True)
        log.info("log_prepared", container_id=container_id)
        return directory / LOG_NAME

    async def configure(self, container_id: str, max_size: int, max_files: int) -> LogConfig:
        """Sets the log's retention (0 = engine default); returns what is in force."""
        if max_size < 0 or max_files < 0:
            raise InvalidArgument(f"max_size and max_files must not be negative, got {max_size} and {max_files}")
        cfg = LogConfig(max_size or self.max_size, max_files or self.max_files)
        async with self._lock:
            d = await asyncio.to_thread(self._dir, container_id)
            d.config = cfg
            await asyncio.to_thread(d.save)
            # A smaller bound applies now; a smaller max_size at the next check.
            await asyncio.to_thread(apply_retention, d, cfg.max_files, cfg.max_size * cfg.max_files)
            self._watch(container_id, d)
        log.info("log_configured", container_id=container_id, max_size=cfg.max_size, max_files=cfg.max_files)
        return cfg

    async def read(self, container_id: str, opts: ReadOptions) -> AsyncGenerator[Batch, None]:
        """Batches of the container's log; see :func:`teu_logs.reader.read_log`. NotFound if it has no log."""
        if opts.offset < 0:
            raise InvalidArgument(f"offset must not be negative, got {opts.offset}")
        if opts.tail < 0:
            raise InvalidArgument(f"tail must not be negative, got {opts.tail}")
        if opts.flt.since < 0 or opts.flt.until < 0:
            raise InvalidArgument("since and until must not be negative")
        if not opts.flt.streams or not opts.flt.streams <= {STDOUT, STDERR}:
            raise InvalidArgument(f"streams must be stdout or stderr, got {sorted(opts.flt.streams)}")
        d = await asyncio.to_thread(self._dir, container_id)
        async with aclosing(read_log(d, opts)) as batches:
            async for batch in batches:
                yield batch

    async def remove(self, container_id: str) -> bool:
        """Deletes the container's log directory; False if there was none."""
        directory = self._check_id(container_id)
        async with self._lock:
            d = self._dirs.pop(container_id, None)
            if d is not None:
                self._rotator.forget(d)
                self._unwatch(container_id)
            try:
                await asyncio.to_thread(shutil.rmtree, directory)
            except FileNotFoundError:
                return False
        log.info("log_removed", container_id=container_id)
        return True

    async def rotate(self, container_id: str) -> Path:
        """Starts a new current file now (the old one a segment); its path. NotFound for an unknown log,
        FailedPrecondition when no conmon writes it."""
        self._check_id(container_id)
        async with self._lock:
            d = self._dirs.get(container_id)
            if d is None:
                raise NotFound(f"no log for container {container_id[:12]}")
            if not await self._rotator.rotate_now(container_id, d):
                raise FailedPrecondition(f"the log of container {container_id[:12]} has no writer: the container does not run")
        log.info("log_rotated_on_request", container_id=container_id)
        return d.current

    def written(self) -> dict[str, int]:
        """Bytes each container has logged since its log was made (the position its log has reached,
        which rotation and retention never lower). Blocking; safe from any thread."""
        out = {}
        try:
            entries = list(os.scandir(self.root))
        except FileNotFoundError:
            return {}
        for entry in entries:
            if not is_full_id(entry.name) or not entry.is_dir():
                continue
            d = self._dirs.get(entry.name) or LogDir(Path(entry.path))
            try:
                files = d.snapshot()
            except RuntimeError:  # rotating right now: the next scrape has it
                continue
            out[entry.name] = files[-1].end if files else d.floor
        return out

    async def usage(self) -> tuple[int, int]:
        """(bytes of every file of every log, number of logs)."""
        return await asyncio.to_thread(self._usage)

    def disk_bytes(self) -> int:
        """Bytes of every file of every log (blocking)."""
        return self._usage()[0]

    def _usage(self) -> tuple[int, int]:
        """Blocking part of :meth:`usage`: one directory listing per log."""
        total = count = 0
        try:
            entries = list(os.scandir(self.root))
        except FileNotFoundError:
            return 0, 0
        for entry in entries:
            if not is_full_id(entry.name) or not entry.is_dir():
                continue
            count += 1
            try:
                with os.scandir(entry.path) as files:
                    for f in files:
                        if f.name.endswith(".log"):
                            try:
                                total += f.stat().st_size
                            except FileNotFoundError:
                                continue
            except FileNotFoundError:
                count -= 1
        return total, count

    def _watch(self, container_id: str, d: LogDir) -> None:
        """Wakes rotation when the log's directory changes (once maintain() runs)."""
        if self._inotify is None or container_id in self._watches.values():
            return
        try:
            self._watches[self._inotify.watch(d.path)] = container_id
        except OSError as exc:  # the periodic round still looks at it
            log.warning("log_watch_failed", path=str(d.path), error=str(exc))

    def _unwatch(self, container_id: str) -> None:
        for wd, cid in list(self._watches.items()):
            if cid == container_id:
                del self._watches[wd]
                if self._inotify is not None:
                    self._inotify.unwatch(wd)

    async def _check(self, container_ids: list[str]) -> None:
        """One look at each of these logs (rotation, reopen, retention)."""
        async with self._lock:
            for cid in container_ids:
                d = self._dirs.get(cid)
                if d is None:
                    continue
                try:
                    await self._rotator.check(cid, d)
                except OSError as exc:
                    log.warning("log_rotation_failed", path=str(d.path), error=str(exc))

    async def tick(self) -> None:
        """One look at every configured log."""
        await self._check(list(self._dirs))

    async def maintain(self, interval: float = CHECK_INTERVAL) -> None:
        """Keeps the configured logs within their bounds until cancelled (the service's background task):
        a look at a log as soon as inotify says it changed, and at every log each ``interval``."""
        loop = asyncio.get_running_loop()
        inotify = self._inotify = Inotify()
        woken = asyncio.Event()
        changed: set[int] = set()

        def readable() -> None:
            changed.update(inotify.changed())
            woken.set()

        loop.add_reader(inotify.fd, readable)
        try:
            for cid, d in list(self._dirs.items()):
                self._watch(cid, d)
            last_round = loop.time()
            while True:
                try:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(woken.wait(), interval)
                    woken.clear()
                    due = [self._watches[wd] for wd in changed if wd in self._watches]
                    changed.clear()
                    if loop.time() - last_round >= interval:  # every log, even while others keep writing
                        last_round = loop.time()
                        await self.tick()
                    else:
                        await self._check(due)
                except Exception:
                    log.exception("log_maintenance_failed")  # keep going: one bad round must not stop rotation
                await asyncio.sleep(MIN_INTERVAL)
        finally:
            loop.remove_reader(inotify.fd)
            self._inotify = None
            self._watches.clear()
            inotify.close()


def make_filter(streams: list[int], grep: str, since: int, until: int, timestamps: bool) -> Filter:
    """A :class:`Filter` from request fields; InvalidArgument for a bad pattern or stream."""
    if grep:
        try:
            rx: re.Pattern[bytes] | None = re.compile(grep.encode())
        except re.error as exc:
            raise InvalidArgument(f"invalid grep pattern {grep!r}: {exc}") from None
    else:
        rx = None
    wanted = frozenset(streams) if streams else frozenset((STDOUT, STDERR))
    return Filter(streams=wanted, grep=rx, since=since, until=until, records=timestamps)
