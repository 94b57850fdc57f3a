"""Images move between Teu and the real tools: podman loads and runs what Teu saves; Teu loads and runs
what podman saves (docker-archive and oci-archive) and what skopeo writes (OCI layout)."""

from __future__ import annotations

import io
import os
import resource
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import REPO, Engine
from teu.client import Client, ContainerOptions

TEU = str(REPO / ".venv" / "bin" / "teu")


class Podman:
    """podman with all its state under ``base`` (never the machine's own podman storage)."""

    def __init__(self, base: Path) -> None:
        self.base = base
        for d in ("root", "run", "tmp"):
            (base / d).mkdir(parents=True, exist_ok=True)
        # podman's default rlimits exceed this machine's hard limits (no CAP_SYS_RESOURCE): cap them
        nofile, nproc = resource.getrlimit(resource.RLIMIT_NOFILE)[1], min(resource.getrlimit(resource.RLIMIT_NPROC)[1], 32768)
        (base / "containers.conf").write_text(
            f'[containers]\nnetns = "none"\ndefault_ulimits = ["nofile={nofile}:{nofile}", "nproc={nproc}:{nproc}"]\n'
            f'[engine]\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\nruntime = "runc"\ntmp_dir = "{base}/tmp"\n'
        )
        (base / "storage.conf").write_text(f'[storage]\ndriver = "overlay"\ngraphroot = "{base}/root"\nrunroot = "{base}/run"\n')

    def __call__(self, *args: str) -> str:
        """Runs podman; its stdout (fails the test with its stderr)."""
        env = {**os.environ, "CONTAINERS_CONF": str(self.base / "containers.conf"),
               "CONTAINERS_STORAGE_CONF": str(self.base / "storage.conf")}  # fmt: skip
        cmd = ["podman", "--root", f"{self.base}/root", "--runroot", f"{self.base}/run", "--storage-driver", "overlay",
               "--cgroup-manager", "cgroupfs", "--events-backend", "file", "--tmpdir", f"{self.base}/tmp", *args]  # fmt: skip
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode == 0, f"podman {' '.join(args)}: {done.stderr}"
        return done.stdout


@pytest.fixture(scope="module")
def podman() -> Iterator[Podman]:
    """A private podman (short paths: podman wants a run root under 50 characters)."""
    if shutil.which("podman") is None:
        pytest.skip("podman is not installed (make test installs it)")
    base = Path(tempfile.mkdtemp(prefix="teupod-", dir="/tmp"))
    pod = Podman(base)
    yield pod
    subprocess.run(
        ["podman", "--root", f"{base}/root", "--runroot", f"{base}/run", "rm", "-af"], capture_output=True, check=False
    )
    subprocess.run(["umount", "-R", str(base / "root/overlay")], capture_output=True, check=False)
    shutil.rmtree(base, ignore_errors=True)


def test_podman_runs_what_teu_saves(client: Client, podman: Podman, tmp_path: Path) -> None:
    """An image committed and saved by Teu loads in podman and runs there with the change."""
    cid = client.run(ContainerOptions(image="busybox", cmd=["sh", "-c", "echo from-teu > /mark"])).id
    client.commit(cid, "teu-made:1", changes=['CMD ["cat", "/mark"]'])
    client.remove(cid)
    archive = tmp_path / "teu.tar"
    archive.write_bytes(b"".join(client.save(["teu-made:1"])))
    podman("load", "-i", str(archive))
    assert podman("run", "--rm", "teu-made:1").strip() == "from-teu"
    client.remove_image("teu-made:1")


@pytest.mark.parametrize("fmt", ["docker-archive", "oci-archive"])
def test_teu_runs_what_podman_saves(client: Client, podman: Podman, tmp_path: Path, fmt: str) -> None:
    """An image saved by podman in either format loads in Teu and runs."""
    podman("import", "--change", 'CMD ["sh"]', str(REPO / "build" / "busybox.tar"), f"pod/img:{fmt}")
    archive = tmp_path / f"pod-{fmt}.tar"
    podman("save", "--format", fmt, "-o", str(archive), f"pod/img:{fmt}")
    images = client.load(io.BytesIO(archive.read_bytes()))
    ref = images[0].repo_tags[0] if images[0].repo_tags else images[0].id
    r = client.run(ContainerOptions(image=ref, cmd=["echo", "from-podman"], remove=True))
    assert (r.exit_code, r.stdout) == (0, b"from-podman\n")


def test_teu_runs_what_skopeo_writes(client: Client, engine: Engine, tmp_path: Path) -> None:
    """An OCI layout written by skopeo (from Teu's own docker-archive) loads in Teu and runs."""
    if shutil.which("skopeo") is None:
        pytest.skip("skopeo is not installed (make test installs it)")
    client.tag("busybox", "skopeo-src:1")
    src = tmp_path / "src.tar"
    src.write_bytes(b"".join(client.save(["skopeo-src:1"])))
    out = tmp_path / "oci.tar"
    done = subprocess.run(["skopeo", "copy", f"docker-archive:{src}", f"oci-archive:{out}:skopeo/bb:1"],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    client.remove_image("skopeo-src:1")
    loaded = subprocess.run([TEU, "load", "-i", str(out)], env=engine.env(), capture_output=True, text=True, timeout=60)
    assert loaded.returncode == 0, loaded.stderr
    ref = loaded.stdout.split("Loaded image: ", 1)[1].split(",")[0].strip()
    r = client.run(ContainerOptions(image=ref, cmd=["echo", "from-skopeo"], remove=True))
    assert (r.exit_code, r.stdout) == (0, b"from-skopeo\n")
