"""Crash safety: a SIGKILL in the middle of import, commit or load leaves no half image and, after the
next start, no orphan data."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from teu_storage.storage import Storage

_WORKER = """
import asyncio, sys
from pathlib import Path
from teu_storage.storage import Storage
from teu_storage.imagespec import ImageConfig
root, what, src = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
storage = Storage.open(root)
async def chunks():
    with open(src, "rb") as f:
        while chunk := f.read(1 << 16):
            yield chunk
print("ready", flush=True)
for i in range(100):
    if what == "import":
        asyncio.run(storage.import_image(f"img:{i}", ImageConfig(), chunks()))
    elif what == "commit":
        storage.commit("c" * 64, f"img:{i}", ImageConfig(), str(i), "")
    else:
        copy = root / "tmp" / "in.tar"
        copy.write_bytes(src.read_bytes())
        storage.load(copy)
"""


def _check_consistent(root: Path) -> None:
    """Every image's layers are complete; nothing on disk is unreachable; tmp/ is empty."""
    storage = Storage.open(root)
    try:
        reachable = set()
        for image in storage.list_images():
            for diff_id in image.layers:
                assert storage.layers.dirs.exists(diff_id) and storage.layers.dirs.split(diff_id).exists()
                reachable.add(diff_id)
        assert storage.layers.dirs.on_disk() == reachable
        assert set(storage.store.layer_sizes()) == reachable
        assert {p.name for p in storage.layers.dirs.splits.iterdir()} == {d[7:] + ".gz" for d in reachable}
        assert len(list(storage.layers.dirs.links.iterdir())) == len(reachable)
        assert list(storage.tmp.iterdir()) == []
    finally:
        storage.close()


@pytest.mark.parametrize("what", ["import", "commit", "load"])
def test_sigkill_mid_operation_leaves_a_consistent_store(tmp_path: Path, tars: Any, kit: Any, what: str) -> None:
    """Killed at several points, the store reopens with whole images only and no orphan layers."""
    root = tmp_path / "state"
    files = [tars.file(f"d/f{i}", os.urandom(64)) for i in range(3000)]
    src = tmp_path / "src.tar"
    src.write_bytes(tars.build(*files))
    storage = Storage.open(root)
    base = kit.import_tar(storage, tars.busybox(), "base")
    storage.prepare_snapshot(kit.KEY, base.id)
    if what == "commit":
        (kit.upper(storage) / "d").mkdir()
        for i in range(3000):
            (kit.upper(storage) / "d" / f"f{i}").write_bytes(b"x")
    if what == "load":
        with open(src, "wb") as out:
            storage.save(["base"], "docker-archive", out)
        storage.remove_image("base", force=True)  # base stays (a snapshot uses it) but the tag goes
    storage.close()
    for delay in (0.05, 0.15, 0.3):
        proc = subprocess.Popen(
            [sys.executable, "-c", _WORKER, str(root), what, str(src)], stdout=subprocess.PIPE, env=os.environ
        )
        assert proc.stdout is not None and proc.stdout.readline().strip() == b"ready"
        time.sleep(delay)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
        _check_consistent(root)
