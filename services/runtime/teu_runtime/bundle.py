"""The one owner of a container's paths: its bundle directory and what Teu, conmon and the OCI runtime
keep there. Nothing else spells these names.

    containers/<id>/            Bundle (conmon's -b for the container)
      config.json               the OCI spec, written by the runtime service at each start
      rootfs/                   mount point of the root filesystem
      hostname hosts resolv.conf  bind-mounted into the container (world-readable)
      attach ctl winsz          made by conmon: attach socket, control and window fifos
      pidfile conmon.pid        the container's init pid (runtime), conmon's own pid
      exits/<id>                conmon's exit file
      persist/exit persist/oom  the exit code and the OOM mark, kept until the next start
      exec/<session>/           ExecDir, one per exec session (conmon's -b for it)
        process.json exec_pid exit/<id> attach ctl
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from teu_runtime import mounts

__all__ = ["Bundle", "ConmonDir", "ExecDir"]


@dataclass(frozen=True)
class ConmonDir:
    """A directory conmon works in: it makes the attach socket and the control fifo there."""

    path: Path

    @property
    def attach(self) -> Path:
        """conmon's attach socket (SOCK_SEQPACKET)."""
        return self.path / "attach"

    @property
    def ctl(self) -> Path:
        """conmon's control fifo (resize, reopen the log)."""
        return self.path / "ctl"


@dataclass(frozen=True)
class ExecDir(ConmonDir):
    """An exec session's directory."""

    @property
    def process_spec(self) -> Path:
        """The OCI process of the session (``--exec-process-spec``)."""
        return self.path / "process.json"

    @property
    def pidfile(self) -> Path:
        """The session process's pid, written by the OCI runtime."""
        return self.path / "exec_pid"

    @property
    def exits(self) -> Path:
        """conmon's exit directory for the session."""
        return self.path / "exit"

    def exit_file(self, cid: str) -> Path:
        """The session's exit file (conmon names it after the container)."""
        return self.exits / cid


@dataclass(frozen=True)
class Bundle(ConmonDir):
    """A container's bundle directory."""

    @property
    def rootfs(self) -> Path:
        """Mount point of the root filesystem (the spec's ``root.path`` is relative: ``rootfs``)."""
        return self.path / "rootfs"

    @property
    def shm(self) -> Path:
        """A shareable-IPC container's /dev/shm: a tmpfs mounted here, in the engine's namespace,
        so that containers joining its IPC namespace can bind the same one."""
        return self.path / "shm"

    def unmount_all(self) -> None:
        """Unmounts the shared /dev/shm (if any), then the root filesystem."""
        mounts.unmount(self.shm)
        mounts.unmount(self.rootfs)

    @property
    def config(self) -> Path:
        """The OCI spec."""
        return self.path / "config.json"

    @property
    def hostname(self) -> Path:
        """The container's /etc/hostname."""
        return self.path / "hostname"

    @property
    def hosts(self) -> Path:
        """The container's /etc/hosts."""
        return self.path / "hosts"

    @property
    def resolv_conf(self) -> Path:
        """The container's /etc/resolv.conf."""
        return self.path / "resolv.conf"

    @property
    def pidfile(self) -> Path:
        """The container's init pid, written by the OCI runtime."""
        return self.path / "pidfile"

    @property
    def conmon_pid(self) -> Path:
        """conmon's own pid."""
        return self.path / "conmon.pid"

    @property
    def exits(self) -> Path:
        """conmon's exit directory."""
        return self.path / "exits"

    @property
    def persist(self) -> Path:
        """conmon's persist directory: ``exit`` and ``oom``."""
        return self.path / "persist"

    @property
    def exit_file(self) -> Path:
        """The exit code conmon recorded."""
        return self.persist / "exit"

    @property
    def oom_file(self) -> Path:
        """Present when the OOM killer ended the container."""
        return self.persist / "oom"

    def session(self, sid: str) -> ExecDir:
        """The directory of exec session ``sid``."""
        return ExecDir(self.path / "exec" / sid)
