"""Tests of rotation against a fake conmon that honours the reopen protocol through a real fifo."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from contextlib import aclosing
from pathlib import Path

from teu_logs.logdirs import LogStore
from teu_logs.reader import ReadOptions, read_log
from teu_logs.rotation import Reopen, Rotator, apply_retention
from teu_logs.scan import Filter
from teu_logs.segments import LogConfig, LogDir

CID = "cd" * 32
TS = b"2026-11-30T06:24:30.%09d+00:00"


def fifo_reopen(ctl: Path) -> Reopen:
    """A reopen that writes ``2 0 0`` to a fake conmon's control fifo, as the runtime does."""

    async def reopen(_cid: str) -> bool:
        try:
            fd = os.open(ctl, os.O_WRONLY | os.O_NONBLOCK)
        except OSError:
            return False
        try:
            os.write(fd, b"2 0 0\n")
        finally:
            os.close(fd)
        return True

    return reopen


class FakeConmon(threading.Thread):
    """Writes numbered records to ``ctr.log`` like conmon, and on ``2 0 0`` from its control fifo
    closes the file, creates ``ctr.log.tmp`` and renames it over ``ctr.log`` (conmon's reopen)."""

    def __init__(self, log_path: Path, ctl: Path, count: int, pause_every: int = 20) -> None:
        super().__init__(daemon=True)
        self.log_path = log_path
        self.count = count
        self.pause_every = pause_every
        os.mkfifo(ctl)
        self.rfd = os.open(ctl, os.O_RDONLY | os.O_NONBLOCK)
        self.dummy = os.open(ctl, os.O_WRONLY)  # conmon keeps a writer too, so reads never see EOF
        self.reopens = 0

    def run(self) -> None:
        """Writes the records, serving the fifo between writes, then exits (closing the fifo)."""
        fd = os.open(self.log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            for i in range(self.count):
                os.write(fd, b"%s stdout F line %d\n" % (TS % i, i))
                try:
                    msg = os.read(self.rfd, 64)
                except BlockingIOError:
                    msg = b""
                if b"2 0 0\n" in msg:
                    os.fsync(fd)
                    os.close(fd)
                    tmp = str(self.log_path) + ".tmp"
                    fd = os.open(tmp, os.O_WRONLY | os.O_TRUNC | os.O_CREAT, 0o600)
                    os.rename(tmp, self.log_path)
                    self.reopens += 1
                if i % self.pause_every == 0:
                    time.sleep(0.001)
        finally:
            os.close(fd)
            os.close(self.rfd)
            os.close(self.dummy)


def test_rotation_with_fake_conmon_loses_and_repeats_nothing(tmp_path: Path) -> None:
    """A follower sees every line once while the store rotates a fake conmon's log many times."""
    count = 6000

    async def scenario() -> tuple[list[bytes], FakeConmon, int]:
        ctl = tmp_path / "ctl"
        store = LogStore(tmp_path, reopen=fifo_reopen(ctl))
        path = await store.prepare(CID)
        conmon = FakeConmon(path, ctl, count)
        await store.configure(CID, 4096, 6)
        maintainer = asyncio.create_task(store.maintain(interval=0.01))
        got: list[bytes] = []
        conmon.start()
        d = store._dir(CID)
        opts = ReadOptions(follow=True, flt=Filter(records=True))
        try:
            async with aclosing(read_log(d, opts, poll_max=0.005)) as batches:
                async for batch in batches:
                    got.extend(r[2] for r in batch.records)
                    if got[-1] == b"line %d\n" % (count - 1):
                        break
        finally:
            conmon.join()
            await store.tick()  # retention once conmon has reopened
            maintainer.cancel()
        return got, conmon, len(d.segments()) + d.current.exists()

    got, conmon, files = asyncio.run(asyncio.wait_for(scenario(), 10))
    assert got == [b"line %d\n" % i for i in range(count)]
    assert conmon.reopens >= 3
    assert files <= 6


def test_batch_read_after_rotations_is_the_retained_suffix(tmp_path: Path) -> None:
    """After the writer stops, a read from 0 gives an in-order, duplicate-free suffix ending at the last line."""
    count = 3000

    async def scenario() -> list[bytes]:
        store = LogStore(tmp_path, reopen=fifo_reopen(tmp_path / "ctl"))
        path = await store.prepare(CID)
        conmon = FakeConmon(path, tmp_path / "ctl", count)
        await store.configure(CID, 2048, 3)
        maintainer = asyncio.create_task(store.maintain(interval=0.005))
        conmon.start()
        await asyncio.to_thread(conmon.join)
        await asyncio.sleep(0.05)
        maintainer.cancel()
        return [r[2] async for b in store.read(CID, ReadOptions(flt=Filter(records=True))) for r in b.records]

    got = asyncio.run(scenario())
    first = int(got[0].split()[1])
    assert got == [b"line %d\n" % i for i in range(first, count)]
    assert first > 0


def test_a_log_whose_conmon_is_gone_is_trimmed_to_its_bound(tmp_path: Path) -> None:
    """When the reopen finds no conmon (the container exited), the oversized log is renamed and cut to
    max_size x max_files at a record boundary; positions stay what they were."""
    d = LogDir(tmp_path)
    d.config = LogConfig(100, 3)
    records = [b"%s stdout F line %d\n" % (TS % i, i) for i in range(10)]
    d.current.write_bytes(b"".join(records))
    size = d.current.stat().st_size
    asyncio.run(Rotator(fifo_reopen(tmp_path / "ctl")).check(CID, d))
    kept = b"".join(records[-5:])  # 5 records of 52 bytes fit in 300
    assert not d.current.exists()
    assert d.segments() == [(size - len(kept), tmp_path / f"seg-{size - len(kept):020d}.log")]
    assert d.segments()[0][1].read_bytes() == kept
    assert d.current_base() == size


def test_lost_reopen_is_asked_again_once_conmon_keeps_writing_to_the_old_file(tmp_path: Path) -> None:
    """If the reopen was lost (the service died between rename and reopen, or the runtime could not be
    reached), a later check asks again once growth proves it safe."""
    asked: list[str] = []

    async def reopen(cid: str) -> bool:
        asked.append(cid)
        return True

    async def scenario() -> None:
        d = LogDir(tmp_path)
        d.config = LogConfig(10**6, 5)
        seg = tmp_path / "seg-00000000000000000000.log"
        seg.write_bytes(TS % 0 + b" stdout F a\n")
        rotator = Rotator(reopen)
        await rotator.check(CID, d, now=100.0)
        await rotator.check(CID, d, now=101.5)  # checkpoint of the size, a while after the gap began
        await rotator.check(CID, d, now=101.6)
        assert asked == []  # no growth yet: nothing asked
        with open(seg, "ab") as f:
            f.write(TS % 1 + b" stdout F b\n")
        await rotator.check(CID, d, now=101.7)
        assert asked == [CID]

    asyncio.run(scenario())


def test_retention_keeps_the_byte_bound_too(tmp_path: Path) -> None:
    """Retention deletes the oldest segments while the log holds more than max_size x max_files bytes,
    even with fewer files than max_files (a segment that grew past max_size while conmon had not
    reopened yet), and never the file conmon may still write."""
    d = LogDir(tmp_path)
    d.config = LogConfig(100, 3)
    for base, size in ((0, 100), (100, 150)):
        (tmp_path / f"seg-{base:020d}.log").write_bytes(b"x" * size)
    d.current.write_bytes(b"x" * 60)
    asyncio.run(Rotator(None).check(CID, d))
    assert [b for b, _ in d.segments()] == [100] and d.floor == 250
    d.current.unlink()
    assert apply_retention(d, 3, 10) == 0  # ctr.log absent: the newest segment may still be written


def test_store_restart_reloads_config_and_rotates_oversized_logs(tmp_path: Path) -> None:
    """A new LogStore on the same root (after a crash) knows the retention, rotates what outgrew it, continues offsets."""

    async def scenario() -> None:
        store = LogStore(tmp_path)
        path = await store.prepare(CID)
        cfg = await store.configure(CID, 100, 2)
        assert (cfg.max_size, cfg.max_files) == (100, 2)
        path.write_bytes(b"".join(b"%s stdout F line %d\n" % (TS % i, i) for i in range(10)))
        offset = [b async for b in store.read(CID, ReadOptions())][-1].offset
        again = LogStore(tmp_path)
        await again.tick()
        assert not path.exists()
        assert [b for b, _ in again._dir(CID).segments()] == [0]
        path.write_bytes(TS % 10 + b" stdout F line 10\n")  # conmon's next file
        batches = [b async for b in again.read(CID, ReadOptions(offset=offset))]
        assert [c for b in batches for c in b.chunks] == [(1, b"line 10\n")]
        assert batches[-1].offset == offset + path.stat().st_size

    asyncio.run(scenario())


def test_usage_counts_every_segment(tmp_path: Path) -> None:
    """Usage adds up the current file and the segments of every log."""

    async def scenario() -> tuple[int, int]:
        store = LogStore(tmp_path)
        for cid in (CID, "ef" * 32):
            path = await store.prepare(cid)
            path.write_bytes(b"x" * 100)
        (tmp_path / CID / "seg-00000000000000000000.log").write_bytes(b"y" * 50)
        return await store.usage()

    assert asyncio.run(scenario()) == (250, 2)
