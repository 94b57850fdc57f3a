"""Interchange with podman: what Teu saves podman loads (and mounts), and the other way round.

podman runs with a private root, run root and config under the test's temp dir (the flags of
/work/shared/peers/11-podman-env.sh), so the machine's podman storage is never touched.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest

from teu_storage.imagespec import ImageConfig
from teu_storage.storage import Storage

pytestmark = pytest.mark.skipif(
    shutil.which("podman") is None, reason="podman is not installed: interchange with it cannot be tested"
)


class Podman:
    """podman with all its state under ``base``."""

    def __init__(self, base: Path) -> None:
        self.base = base
        for d in ("root", "run", "tmp"):
            (base / d).mkdir(parents=True, exist_ok=True)
        (base / "containers.conf").write_text(
            f'[engine]\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\ntmp_dir = "{base}/tmp"\n'
        )
        (base / "storage.conf").write_text(f'[storage]\ndriver = "overlay"\ngraphroot = "{base}/root"\nrunroot = "{base}/run"\n')

    def __call__(self, *args: str) -> str:
        """Runs podman with ``args``; its stdout."""
        env = {
            **os.environ,
            "CONTAINERS_CONF": str(self.base / "containers.conf"),
            "CONTAINERS_STORAGE_CONF": str(self.base / "storage.conf"),
        }
        cmd = [
            "podman", "--root", f"{self.base}/root", "--runroot", f"{self.base}/run",
            "--storage-driver", "overlay", "--cgroup-manager", "cgroupfs", "--events-backend", "file",
            "--tmpdir", f"{self.base}/tmp", *args,
        ]  # fmt: skip
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120, check=False)
        if done.returncode != 0:
            raise AssertionError(f"podman {' '.join(args)} failed: {done.stderr}")
        return done.stdout

    def reset(self) -> None:
        """Deletes every image and unmounts what podman mounted."""
        try:
            self("rmi", "--all", "--force")
        finally:
            # containers/storage may leave its overlay dir bind-mounted on itself.
            subprocess.run(["umount", "-R", str(self.base / "root/overlay")], capture_output=True, check=False)


@pytest.fixture(scope="module")
def podman() -> Any:
    """A private podman shared by this module's tests; short paths, as podman wants a runroot under 50 chars."""
    base = Path(tempfile.mkdtemp(prefix="teupod-", dir="/tmp"))
    pod = Podman(base)
    yield pod
    pod.reset()
    shutil.rmtree(base, ignore_errors=True)


def _image_with_whiteouts(storage: Storage, tars: Any, kit: Any) -> Any:
    base = kit.import_tar(storage, tars.busybox(), "base", ImageConfig(cmd=["sh"]))
    storage.prepare_snapshot(kit.KEY, base.id)
    up = kit.upper(storage)
    (up / "bin").mkdir()
    kit.whiteout(up / "bin/su")
    (up / "home").mkdir()
    kit.make_opaque(up / "home")
    (up / "home/fresh").write_text("fresh")
    return storage.commit(kit.KEY, "teu/app:1", ImageConfig(cmd=["sh"]), "change", "")


@pytest.mark.parametrize("fmt", ["docker-archive", "oci-archive"])
def test_podman_loads_what_teu_saves(storage: Storage, tars: Any, kit: Any, podman: Any, tmp_path: Path, fmt: str) -> None:
    """podman load accepts Teu's archive with the same image id and applies its whiteouts."""
    image = _image_with_whiteouts(storage, tars, kit)
    archive = tmp_path / "teu.tar"
    with open(archive, "wb") as out:
        storage.save(["teu/app:1"], fmt, out)
    podman("load", "-i", str(archive))
    assert podman("image", "inspect", "--format", "{{.Id}}", image.id[7:19]).strip() == image.id[7:]
    merged = Path(podman("image", "mount", image.id[7:]).strip())
    try:
        assert sorted(os.listdir(merged / "bin")) == ["busybox", "ls", "sh"]
        assert os.listdir(merged / "home") == ["fresh"]
    finally:
        podman("image", "unmount", image.id[7:])


@pytest.mark.parametrize("fmt", ["docker-archive", "oci-archive"])
def test_teu_loads_what_podman_saves(storage: Storage, tars: Any, podman: Any, tmp_path: Path, fmt: str) -> None:
    """An image podman imported and saved (gzip OCI layers included) loads in Teu with its name and files."""
    rootfs = tmp_path / "rootfs.tar"
    rootfs.write_bytes(tars.busybox())
    podman_id = podman("import", str(rootfs), "pod/img:2").strip().removeprefix("sha256:")
    archive = tmp_path / "podman.tar"
    podman("save", "--format", fmt, "-o", str(archive), "pod/img:2")
    [loaded] = storage.load(archive)
    assert loaded.id == "sha256:" + podman_id
    assert "localhost/pod/img:2" in loaded.repo_tags
    layer = storage.layers.dirs.path(loaded.layers[0])
    assert (layer / "etc/passwd").read_bytes() == b"root:x:0:0::/root:/bin/sh\n"
    assert oct(os.lstat(layer / "tmp").st_mode & 0o7777) == "0o1777"
    buf = io.BytesIO()
    storage.save(["localhost/pod/img:2"], "docker-archive", buf)  # layers rebuild to podman's digests
