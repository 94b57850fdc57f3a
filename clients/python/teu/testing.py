"""A private Teu engine for tests and benchmarks: the real services, state in a temp dir.

with PrivateEngine(Path(tmp)) as engine:
    with Client(engine.target) as teu: ...
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType

from teu._images import chunks_of
from teu.build import context_tar
from teu.client import Client
from teu.errors import TeuError
from teu_api.gateway.v1 import gateway_pb2 as gw
from teu_api.types.v1 import types_pb2

__all__ = ["PrivateEngine", "wait_ready", "wait_until"]


def wait_until(check: Callable[[], object], timeout: float = 30.0, what: str = "condition") -> None:
    """Polls ``check`` until it returns something true; TimeoutError naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not reached in {timeout} s")
        time.sleep(0.05)


def wait_ready(client: Client, timeout: float = 30.0) -> None:
    """Blocks until the gateway and every backend answer."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            client.info()
            return
        except TeuError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


#: What a private engine starts with unless the environment says otherwise: no bridge by default, no DNS
#: relaying, its web page on a free loopback port (engines side by side).
QUIET = {"TEU_DEFAULT_NETWORK": "none", "TEU_DNS_UPSTREAM": "none", "TEU_WEB_LISTEN": "127.0.0.1:0"}


class PrivateEngine:
    """``teu-engine`` with its state and sockets under ``base``; stopping it removes every container.

    Containers default to ``--network none`` (loopback only) unless TEU_DEFAULT_NETWORK says otherwise:
    a private engine in the host's network namespace must not create bridges or rules there. Its
    user networks' DNS relays nothing (TEU_DNS_UPSTREAM=none) unless the caller names an upstream it
    started itself.
    """

    def __init__(
        self, base: Path, wrap: Sequence[str] = (), env: Mapping[str, str] | None = None, args: Sequence[str] = ()
    ) -> None:
        """``wrap`` prefixes the engine's command (e.g. ``nsenter --net=/run/netns/X`` to run it in a
        network namespace of the caller's); ``env`` adds variables (e.g. TEU_DEFAULT_NETWORK=bridge);
        ``args`` are ``teu-engine``'s own flags (e.g. ``--web-listen``)."""
        self.root = base / "lib"
        self.run_dir = base / "run"
        self.log_path = base / "engine.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.wrap = list(wrap)
        self.args = list(args)
        #: Its containers' cgroups go under a parent of its own, apart from those of other engines.
        self.cgroup_parent = f"teu-{secrets.token_hex(4)}"
        self.extra_env = {"TEU_CGROUP_PARENT": self.cgroup_parent, **(env or {})}

    @property
    def target(self) -> str:
        """The gateway address."""
        return f"unix:{self.run_dir}/gateway.sock"

    def env(self) -> dict[str, str]:
        """Environment that points the ``teu`` CLI at this engine."""
        return {**os.environ, "TEU_RUN": str(self.run_dir), "TEU_ROOT": str(self.root)}

    def start(self) -> PrivateEngine:
        """Starts the supervisor and waits until the engine answers."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    *self.wrap,
                    sys.executable,
                    "-m",
                    "teu_engine",
                    "--root",
                    str(self.root),
                    "--run-dir",
                    str(self.run_dir),
                    *self.args,
                ],
                env={**QUIET, **os.environ, "TEU_METRICS_PORT_BASE": "0", **self.extra_env},
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        with Client(self.target) as c:
            wait_ready(c)
        return self

    def service_pid(self, name: str, timeout: float = 20.0) -> int:
        """pid of one of the four services of this engine; waits (up to ``timeout``) while the
        supervisor is restarting it."""
        deadline = time.monotonic() + timeout
        while True:
            for proc in Path("/proc").iterdir():
                if not proc.name.isdigit():
                    continue
                try:
                    cmd = (proc / "cmdline").read_bytes().split(b"\0")
                except OSError:
                    continue
                if f"teu_{name}".encode() in cmd and str(self.run_dir).encode() in cmd:
                    return int(proc.name)
            if time.monotonic() > deadline:
                raise LookupError(name)
            time.sleep(0.05)

    def stop(self) -> None:
        """Removes every container, then stops the services."""
        if self.proc is None:
            return
        with Client(self.target) as c:
            for s in c.list(all=True):
                try:
                    c.remove(s.id, force=True)
                except TeuError:
                    pass
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=30)
        self.proc = None

    def halt(self) -> None:
        """Stops the services and leaves the containers as they are (running ones run on), as
        ``make stop`` does; :meth:`start` brings the engine back."""
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=30)
        self.proc = None

    def __enter__(self) -> PrivateEngine:
        return self.start()

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()


def residents(folder: Path) -> dict[int, Path]:
    """The resident clients (and their spare children) serving from sockets under ``folder``: pid -> socket."""
    out = {}
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmd = (proc / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"teu.cli.resident" in cmd and len(cmd) > 1 and cmd[-2].startswith(str(folder).encode()):
                out[int(proc.name)] = Path(os.fsdecode(cmd[-2]))
    return out


#: The CRI service's default sandbox image (containerd's), which tests and benchmarks make offline from
#: a busybox rootfs tar: it waits until SIGTERM, then exits 0, as the real pause does. No process of
#: it is called ``sleep``: a pod's containers may see its processes (critest looks for a ``sleep``).
PAUSE_IMAGE = "registry.k8s.io/pause:3.9"
PAUSE_ENTRYPOINT = ["sh", "-c", "trap 'exit 0' TERM; tail -f /dev/null & wait"]


def import_pause(client: Client, rootfs_tar: Path) -> None:
    """Imports the pause image from ``rootfs_tar`` unless the engine has it."""
    if not client.list_images([f"reference={PAUSE_IMAGE}"]):
        with rootfs_tar.open("rb") as f:
            client.import_image(f, PAUSE_IMAGE, types_pb2.ImageConfig(entrypoint=PAUSE_ENTRYPOINT))


def cri_tool(name: str) -> str | None:
    """Kubernetes' CRI tool ``name`` (crictl, critest) on PATH or in $TEU_CRI_TOOLS; None if neither has it."""
    tools = os.environ.get("TEU_CRI_TOOLS", "")
    found = shutil.which(name) or (str(Path(tools) / name) if tools else None)
    return found if found and Path(found).exists() else None


def build_folder(client: Client, folder: Path, options: gw.BuildOptions | None = None) -> tuple[str, str]:
    """Builds the context ``folder`` through the SDK: (image id, every progress line and output)."""
    tar, _ = context_tar(folder)
    image, out = "", []
    with tar:
        for frame in client.build(chunks_of(tar), options):
            part = frame.WhichOneof("part")
            if part == "result":
                image = frame.result.image_id
            else:
                out.append(frame.status + "\n" if part == "status" else frame.output.decode(errors="replace"))
    return image, "".join(out)
