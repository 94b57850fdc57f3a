"""The engines Teu is measured against, each started safely with all state under one temp root.

podman runs with its own --root/--runroot, cgroupfs, runc, file events and no network; the raw OCI
runtimes run a prepared bundle. docker is used only where a docker daemon binary exists; it is then
started without bridge or iptables. Nothing here touches the host's network or other engines.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Podman:
    """A private podman: every path under ``base``."""

    base: Path

    def conf(self) -> dict[str, str]:
        """Environment naming the private config files."""
        return {"CONTAINERS_STORAGE_CONF": str(self.base / "storage.conf"), "CONTAINERS_CONF": str(self.base / "containers.conf")}

    def argv(self) -> list[str]:
        """The podman command with its private roots."""
        b = self.base
        return ["podman", "--root", f"{b}/root", "--runroot", f"{b}/run", "--storage-driver", "overlay",
                "--cgroup-manager", "cgroupfs", "--events-backend", "file", "--tmpdir", f"{b}/tmp"]  # fmt: skip

    def setup(self, image_tar: Path) -> None:
        """Writes the config and imports the busybox image as ``busybox``."""
        for d in ("root", "run", "tmp"):
            (self.base / d).mkdir(parents=True, exist_ok=True)
        (self.base / "storage.conf").write_text(
            f'[storage]\ndriver = "overlay"\ngraphroot = "{self.base}/root"\nrunroot = "{self.base}/run"\n'
        )
        nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        nproc = min(resource.getrlimit(resource.RLIMIT_NPROC)[1], 32768)
        (self.base / "containers.conf").write_text(
            '[containers]\nlog_driver = "k8s-file"\nnetns = "none"\n'
            f'default_ulimits = ["nofile={nofile}:{nofile}", "nproc={nproc}:{nproc}"]\n'
            f'[engine]\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\nruntime = "runc"\ntmp_dir = "{self.base}/tmp"\n'
            f'[network]\nnetwork_config_dir = "{self.base}/networks"\n'
        )
        self.run(["import", "--change", 'CMD ["sh"]', str(image_tar), "localhost/busybox"])

    def run(self, args: list[str], **kw: object) -> subprocess.CompletedProcess[bytes]:
        """Runs a podman subcommand, checked."""
        return subprocess.run([*self.argv(), *args], env={**os.environ, **self.conf()}, check=True, capture_output=True, **kw)  # type: ignore[call-overload, no-any-return]

    def cleanup(self) -> None:
        """Removes every podman container and unmounts podman's storage."""
        subprocess.run(
            [*self.argv(), "rm", "-af", "-t", "0"], check=False, env={**os.environ, **self.conf()}, capture_output=True
        )
        subprocess.run(
            [*self.argv(), "system", "reset", "-f"], check=False, env={**os.environ, **self.conf()}, capture_output=True
        )


def available(tool: str) -> bool:
    """Whether ``tool`` is installed."""
    return shutil.which(tool) is not None


def oci_bundle(base: Path, image_tar: Path, runtime: str) -> Path:
    """An OCI bundle running ``true`` in busybox, from ``<runtime> spec``, for the raw runtime."""
    bundle = base / f"bundle-{runtime}"
    rootfs = bundle / "rootfs"
    rootfs.mkdir(parents=True, exist_ok=True)
    with tarfile.open(image_tar) as tf:
        tf.extractall(rootfs, filter="fully_trusted")
    subprocess.run([runtime, "spec"], cwd=bundle, check=True)
    spec = json.loads((bundle / "config.json").read_text())
    spec["process"]["args"] = ["true"]
    spec["process"]["terminal"] = False
    spec["root"]["readonly"] = False
    (bundle / "config.json").write_text(json.dumps(spec))
    return bundle


def crun_works_here() -> tuple[bool, str]:
    """crun 1.8 refuses hybrid cgroup hosts whose cgroup2 mount holds controllers."""
    hybrid = Path("/sys/fs/cgroup/unified/cgroup.controllers")
    if hybrid.exists() and hybrid.read_text().strip():
        return False, "crun refuses this hybrid cgroup host"
    return available("crun"), "crun not installed"


@dataclass
class Docker:
    """A private dockerd (Debian's docker.io): state under ``base``; no bridge, iptables or forwarding."""

    base: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def sock(self) -> str:
        """The daemon's socket."""
        return f"unix://{self.base}/docker.sock"

    def argv(self) -> list[str]:
        """The docker CLI pointed at this daemon."""
        return ["/usr/bin/docker", "-H", self.sock]

    def setup(self, image_tar: Path) -> None:
        """Starts dockerd and imports the busybox image as ``busybox``."""
        self.base.mkdir(parents=True, exist_ok=True)
        (self.base / "daemon.json").write_text("{}")
        with (self.base / "dockerd.log").open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    "/usr/sbin/dockerd",
                    "--config-file",
                    f"{self.base}/daemon.json",
                    "--data-root",
                    f"{self.base}/data",
                    "--exec-root",
                    f"{self.base}/exec",
                    "--pidfile",
                    f"{self.base}/dockerd.pid",
                    "--host",
                    self.sock,
                    "--bridge=none",
                    "--iptables=false",
                    "--ip6tables=false",
                    "--ip-forward=false",
                    "--ip-masq=false",
                    "--userland-proxy=false",
                ],
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        for _ in range(120):
            if subprocess.run([*self.argv(), "version"], capture_output=True, check=False).returncode == 0:
                break
            time.sleep(0.5)
        else:
            raise RuntimeError("dockerd did not start")
        subprocess.run(
            [*self.argv(), "import", "--change", 'CMD ["sh"]', str(image_tar), "busybox"], check=True, capture_output=True
        )

    def cleanup(self) -> None:
        """Removes its containers, stops dockerd (and the containerd it started) by pid, unmounts."""
        if self.proc is None:
            return
        ids = subprocess.run([*self.argv(), "ps", "-aq"], capture_output=True, check=False).stdout.split()
        if ids:
            subprocess.run([*self.argv(), "rm", "-f", *[i.decode() for i in ids]], capture_output=True, check=False)
        children = [int(p) for p in subprocess.run(["ps", "-o", "pid=", "--ppid", str(self.proc.pid)],
                                                   capture_output=True, text=True, check=False).stdout.split()]  # fmt: skip
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for pid in children:
            try:
                os.kill(pid, 15)
            except ProcessLookupError:
                pass
        for line in reversed(Path("/proc/self/mountinfo").read_text().splitlines()):
            mnt = line.split()[4]
            if mnt.startswith(str(self.base)):
                subprocess.run(["umount", "-l", mnt], capture_output=True, check=False)
