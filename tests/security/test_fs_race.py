"""Root in a running container cannot make commit, export, diff or cp read the host's files by swapping
a directory for a symlink to the host's "/" while the engine walks the container's writable layer
(the class of CVE-2018-15664)."""

from __future__ import annotations

import io
import os
import secrets
import shutil
import stat
import subprocess
import tarfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from teu.client import Client, ContainerOptions
from teu.errors import TeuError
from teu.testing import PrivateEngine, wait_until

# In /w, walked in this order: "a" holds many files, so a walk spends a while between listing /w and
# descending into the others; "b" is turned into a symlink to a small host directory and back (so a
# walk through it can finish before the swap back); "c" is a 2 MiB file, so what a walk read in b
# reaches the client even if the walk fails later; "d" is turned into a symlink to the host's "/" and
# back. One swap at a time; the real directories wait in /keep and hold decoys where cp looks.
SWAPPER = r"""
T=$1
mkdir -p /keep /w/a /w/b /w/d/.teu-race-$T && cd /w || exit 1
i=0
while [ $i -lt 1500 ]; do echo "file $i" > a/f$i; i=$((i+1)); done
dd if=/dev/zero of=c bs=1024 count=2048 2>/dev/null
echo decoy > b/shadow
echo decoy > d/.teu-race-$T/shadow
touch /ready
while :; do
    mv b /keep/b; ln -s /.teu-race-$T b; usleep 4000; rm b; mv /keep/b b
    mv d /keep/d; ln -s / d; usleep 1000; rm d; mv /keep/d d
done
"""
TEU = str(Path(__file__).resolve().parents[2] / ".venv" / "bin" / "teu")
BUDGET = 45.0  # seconds for the whole loop of operations


@dataclass(frozen=True)
class Marker:
    """Host files no container may ever see: ``/.teu-race-<name>/shadow`` and ``.../leak-<secret>``,
    both holding ``secret``; the container knows ``name`` (it plants decoys there), never ``secret``."""

    name: str
    secret: bytes


@pytest.fixture()
def marker() -> Iterator[Marker]:
    """The host's secret files, removed at the end."""
    name, secret = secrets.token_hex(8), secrets.token_hex(8)
    host_dir = Path(f"/.teu-race-{name}")  # "." sorts it before the host's other directories
    host_dir.mkdir()
    try:
        (host_dir / "shadow").write_text(f"{secret}\n")
        (host_dir / f"leak-{secret}").write_text(f"{secret}\n")
        yield Marker(name, secret.encode())
    finally:
        shutil.rmtree(host_dir)


@pytest.fixture()
def swapper(client: Client, marker: Marker) -> Iterator[str]:
    """A running container (root inside) swapping /w/b and /w/d between directories and host symlinks."""
    options = ContainerOptions(image="busybox", cmd=["sh", "-c", SWAPPER, "sh", marker.name])
    cid = client.run_detached(options)
    try:
        wait_until(lambda: client.exec_run(cid, ["test", "-e", "/ready"]).exit_code == 0, timeout=60)
        yield cid
    finally:
        client.remove(cid, force=True)


def _collect(chunks: Iterator[bytes]) -> tuple[bytes, bool]:
    """The bytes a stream delivered before it ended or failed, and whether it completed."""
    parts: list[bytes] = []
    try:
        for chunk in chunks:
            parts.append(chunk)
    except TeuError:
        return b"".join(parts), False
    return b"".join(parts), True


def _fd_count(engine: PrivateEngine) -> int:
    return len(os.listdir(f"/proc/{engine.service_pid('storage')}/fd"))


def test_swapping_a_dir_for_a_host_symlink_never_leaks_host_files(
    engine: PrivateEngine, client: Client, swapper: str, marker: Marker
) -> None:
    """Hundreds of commits, exports, diffs and cps racing dir/symlink swaps never yield a host file,
    and the storage service leaks no file descriptors doing them."""
    fds_before = _fd_count(engine)
    ops = ["export", "cp /w", f"cp /w/d/.teu-race-{marker.name}/shadow", "cp /w/b/shadow", "diff"]
    done = dict.fromkeys([*ops, "commit"], 0)
    complete = dict.fromkeys(done, 0)
    leaks: list[str] = []
    deadline = time.monotonic() + BUDGET
    rounds = 0
    while time.monotonic() < deadline and rounds < 100:
        rounds += 1
        for op in [*ops, "commit"] if rounds % 3 == 0 else ops:
            data, ok = _run(client, swapper, op)
            done[op] += 1
            complete[op] += ok
            if marker.secret in data:
                leaks.append(op)
    print(f"operations: {done}, completed: {complete}")
    assert not leaks, f"host file leaked through {sorted(set(leaks))} ({len(leaks)} times of {done})"
    assert sum(done.values()) >= 200 and done["commit"] >= 10
    assert _fd_count(engine) <= fds_before + 8


def _run(client: Client, cid: str, op: str) -> tuple[bytes, bool]:
    """Output of one operation (diff: its lines; commit: its saved layers) and whether it succeeded."""
    if op == "export":
        return _collect(client.export(cid))
    if op.startswith("cp "):
        return _collect(client.copy_from_tar(cid, op[3:]))
    if op == "commit":
        return _commit(client, cid)
    try:
        return "\n".join(f"{c.kind} {c.path}" for c in client.diff(cid)).encode(), True
    except TeuError:
        return b"", False


def _commit(client: Client, cid: str) -> tuple[bytes, bool]:
    """The layer tars of a commit of the container (saved back out of the engine), and whether it succeeded."""
    try:
        image = client.commit(cid)
    except TeuError:
        return b"", False
    try:
        saved, ok = _collect(client.save([image.id]))
        assert ok
        layers = []
        with tarfile.open(fileobj=io.BytesIO(saved)) as outer:
            for member in outer.getmembers():
                f = outer.extractfile(member) if member.isfile() else None
                if f is not None:
                    layers.append(f.read())
        return b"".join(layers), True
    finally:
        client.remove_image(image.id, force=True)


def test_cp_out_of_a_container_drops_setuid_and_setgid(engine: PrivateEngine, client: Client, tmp_path: Path) -> None:
    """A setuid/setgid file made by root in a container loses those bits when root copies it to the host."""
    plant = "cp /bin/busybox /tmp/suid && chmod 6755 /tmp/suid"
    cid = client.run(ContainerOptions(image="busybox", cmd=["sh", "-c", plant])).id
    (tmp_path / "dir").mkdir()
    try:
        for src, dst in (("/tmp/suid", tmp_path / "file"), ("/tmp", tmp_path / "dir")):
            done = subprocess.run([TEU, "cp", f"{cid}:{src}", str(dst)], env=engine.env(), capture_output=True, timeout=60)
            assert done.returncode == 0, done.stderr
        for copied in (tmp_path / "file", tmp_path / "dir" / "tmp" / "suid"):
            mode = copied.stat().st_mode
            assert not mode & (stat.S_ISUID | stat.S_ISGID) and mode & 0o100, oct(mode)
    finally:
        client.remove(cid, force=True)
