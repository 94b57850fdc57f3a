"""Detects the host's cgroup layout: v2 (unified), v1, or hybrid (v1 plus a cgroup2 mount)."""

from __future__ import annotations

import errno
import os
import re
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from teu_api.errors import InvalidArgument


@dataclass(frozen=True)
class CgroupLayout:
    """What the host's /sys/fs/cgroup looks like."""

    version: int
    hybrid: bool
    v2_controllers: tuple[str, ...]

    def describe(self) -> str:
        """A short human description, e.g. "v1 (hybrid: hugetlb on cgroup2)"."""
        if self.version == 2:
            return "v2"
        if self.hybrid:
            held = ",".join(self.v2_controllers) or "none"
            return f"v1 (hybrid: {held} on cgroup2)"
        return "v1"


def detect(root: Path = Path("/sys/fs/cgroup")) -> CgroupLayout:
    """Reads the layout under ``root``."""
    unified = root / "cgroup.controllers"
    if unified.exists():
        return CgroupLayout(2, False, tuple(unified.read_text().split()))
    hybrid = root / "unified" / "cgroup.controllers"
    if hybrid.exists():
        return CgroupLayout(1, True, tuple(hybrid.read_text().split()))
    return CgroupLayout(1, False, ())


def swap_limit(layout: CgroupLayout, root: Path = Path("/sys/fs/cgroup")) -> bool:
    """Whether the kernel accounts swap, so a container's memory-plus-swap can be limited (v1 needs
    swapaccount; v2 has memory.swap.max in every cgroup but the root when it does)."""
    if layout.version == 2:
        own = Path("/proc/self/cgroup").read_text().strip().rpartition("::")[2].lstrip("/")
        return (root / own / "memory.swap.max").exists() or any(root.glob("*/memory.swap.max"))
    return (root / "memory" / "memory.memsw.limit_in_bytes").exists()


PARENT = "teu"  # containers' cgroups are <parent>/<id>, relative to this service's own cgroups


def parent_from_env() -> str:
    """The containers' cgroup parent TEU_CGROUP_PARENT names (dockerd's ``--cgroup-parent``), PARENT
    when unset: a relative path of plain names. INVALID_ARGUMENT for anything else."""
    value = os.environ.get("TEU_CGROUP_PARENT") or PARENT
    parts = value.split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise InvalidArgument(f"TEU_CGROUP_PARENT must be a relative path of plain names, not {value!r}")
    return value


_NAME = re.compile(r"[A-Za-z0-9_.:@+-]{1,255}")
MAX_PARENT = 1024


def check_container_parent(value: str) -> str:
    """A container's own --cgroup-parent, checked: "" (the engine's parent), an absolute path from the
    root of every hierarchy, or a relative one under the engine's parent, of plain names either way.
    Returns it without a trailing slash; INVALID_ARGUMENT for anything else."""
    if not value:
        return ""
    names = value.strip("/").split("/")
    if len(value) > MAX_PARENT or value.strip("/") == "" or any(n in (".", "..") or not _NAME.fullmatch(n) for n in names):
        raise InvalidArgument(f"invalid cgroup parent {value[:80]!r}: want a path of plain names, absolute or relative")
    return ("/" if value.startswith("/") else "") + "/".join(names)


def container_path(engine_parent: str, own: str, cid: str) -> str:
    """The OCI cgroupsPath of container ``cid``: under its own parent ``own`` when absolute, under the
    engine's parent otherwise (``own`` relative to it, or nothing)."""
    if own.startswith("/"):
        return f"{own}/{cid}"
    return f"{engine_parent}/{own}/{cid}" if own else f"{engine_parent}/{cid}"


def container_dirs(cid: str, engine_parent: str, own: str = "", proc: Path = Path("/proc/self")) -> list[Path]:
    """Where the OCI runtime makes container ``cid``'s cgroups, in every mounted hierarchy."""
    if own.startswith("/"):
        return [d / cid for d in parent_dirs(proc, own.lstrip("/"), absolute=True)]
    return [d / cid for d in parent_dirs(proc, f"{engine_parent}/{own}" if own else engine_parent)]


def parent_dirs(proc: Path = Path("/proc/self"), parent: str = PARENT, absolute: bool = False) -> list[Path]:
    """The directories the OCI runtime makes containers' cgroups in: ``parent`` under this process's
    cgroup in every mounted hierarchy (a relative cgroupsPath is resolved that way), or under the
    hierarchy's root with ``absolute``."""
    mounts: dict[str, list[tuple[str, Path]]] = {}  # hierarchy key -> (mount root, mount point)
    for line in (proc / "mountinfo").read_text().splitlines():
        fields, _, tail = line.partition(" - ")
        fstype, _, options = (tail.split() + ["", "", ""])[:3]
        parts = fields.split()
        if fstype == "cgroup2":
            key = ""
        elif fstype == "cgroup":
            key = ",".join(sorted(o for o in options.split(",") if o not in ("rw", "ro")))
        else:
            continue
        mounts.setdefault(key, []).append((parts[3], Path(parts[4])))
    dirs = []
    for line in (proc / "cgroup").read_text().splitlines():
        _, controllers, own = line.split(":", 2)
        for root, point in mounts.get(",".join(sorted(controllers.split(","))) if controllers else "", []):
            if own == root or own.startswith(root.rstrip("/") + "/"):
                dirs.append(point / parent if absolute else point / own[len(root.rstrip("/")) :].lstrip("/") / parent)
                break
    return dirs


def remove_leftovers(cid: str, parent: str = PARENT, own: str = "", timeout: float = 2.0) -> list[Path]:
    """Removes the cgroups of container ``cid`` that its OCI runtime left: a create cut short (the
    runtime service died during it, and its state was undone before the OCI runtime had recorded the
    cgroups) leaves them behind where ``<runtime> delete`` cannot see them. Processes still in them
    are killed first (thawed if frozen). Call only once the OCI runtime holds no state for ``cid``.
    Returns the directories that could not be removed within ``timeout`` seconds."""
    left = [d for d in container_dirs(cid, parent, own) if d.is_dir()]
    deadline = time.monotonic() + timeout
    while left:
        left = [d for d in left if not _remove_tree(d)]
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    return left


def _remove_tree(top: Path) -> bool:
    """Kills what runs in the cgroup ``top`` and its children, then removes them, deepest first;
    whether ``top`` is gone."""
    for here, _, _ in os.walk(top, topdown=False):
        try:
            for name, thawed in (("freezer.state", "THAWED"), ("cgroup.freeze", "0")):
                if Path(here, name).exists():
                    Path(here, name).write_text(thawed)
            for pid in Path(here, "cgroup.procs").read_text().split():
                os.kill(int(pid), signal.SIGKILL)
            os.rmdir(here)
        except (ProcessLookupError, FileNotFoundError):
            continue
        except OSError as exc:
            if exc.errno != errno.EBUSY:
                raise
    return not top.exists()


def remove_parents(parent: str = PARENT) -> None:
    """Removes the parent directories, and the folders made under them (relative --cgroup-parent),
    that hold no container any more (at a clean stop), deepest first."""
    for d in parent_dirs(parent=parent):
        for here, _, _ in os.walk(d, topdown=False):
            try:
                os.rmdir(here)
            except OSError:  # absent, or containers run on in it
                continue


def open_parents(parent: str = PARENT) -> None:
    """Makes existing parent directories 0755: a container's root, which may be an unprivileged host
    uid under user namespace remapping, must pass through them to its own cgroup (an engine that
    ran its OCI runtime under umask 077 left them 0700)."""
    for d in parent_dirs(parent=parent):
        try:
            if d.is_dir():
                os.chmod(d, 0o755)
        except OSError:
            continue
