"""Volumes: named directories that outlive containers (Docker's ``local`` driver).

Layout::

    volumes/<name>/volume.json   name, creation time, labels, driver options, anonymous or not
    volumes/<name>/_data/        the data (a plain volume's mount source)

A volume appears whole: it is made in tmp/ and renamed into volumes/; it goes by a rename into
tmp/ first, so a crash leaves either all of it or nothing under its name. Storage never mounts a
volume: it returns how to mount it, and the runtime does. Driver options follow Docker's local
driver: none (a directory), ``type=tmpfs`` with ``o=size=...,uid=...`` (a fresh tmpfs for each
container that mounts it), or ``type=none,o=bind,device=/host/path`` (a bind of that host path).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import structlog

from teu_api.errors import InvalidArgument, NotFound
from teu_storage.snapshots import Mount

__all__ = ["Volume", "Volumes"]

log = structlog.get_logger()

NAME: Final = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]{1,254}")
_META: Final = "volume.json"
_OPTION_KEYS: Final = frozenset({"type", "device", "o"})
_TMPFS_OPTION: Final = re.compile(
    r"(?:size|nr_blocks|nr_inodes)=\d+[kmg%]?|mode=[0-7]{1,4}|(?:uid|gid)=\d+"
    r"|(?:no)?(?:exec|suid|dev|atime|diratime|relatime|strictatime)",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Volume:
    """A volume as recorded."""

    name: str
    path: Path  # the volume's directory; the data is in path / "_data"
    created_at: int = 0  # Unix ns
    labels: Mapping[str, str] = field(default_factory=dict)
    options: Mapping[str, str] = field(default_factory=dict)
    anonymous: bool = False

    @property
    def data(self) -> Path:
        """Where a plain volume's files are."""
        return self.path / "_data"

    def mount(self) -> Mount:
        """How to mount it (the destination is the caller's): a bind of its data, a tmpfs, or a bind of
        the host path its options name."""
        kind = self.options.get("type", "")
        opts = tuple(o for o in self.options.get("o", "").split(",") if o)
        if kind == "tmpfs":
            return Mount("tmpfs", "tmpfs", "", opts)
        if kind == "none":
            return Mount("bind", self.options["device"], "", ("rbind",))
        return Mount("bind", str(self.data), "", ("rbind",))


def check_options(options: Mapping[str, str]) -> None:
    """InvalidArgument unless ``options`` are ones the local driver takes, in a form it can mount."""
    for key in options:
        if key not in _OPTION_KEYS:
            raise InvalidArgument(f"invalid option key: {key!r} (the local driver takes type, device and o)")
    kind, device, o = options.get("type", ""), options.get("device", ""), options.get("o", "")
    if not options:
        return
    if kind == "tmpfs":
        for opt in filter(None, o.split(",")):
            if not _TMPFS_OPTION.fullmatch(opt):
                raise InvalidArgument(f"invalid tmpfs option {opt!r}")
    elif kind == "none":
        if "bind" not in o.split(","):
            raise InvalidArgument('a volume of type none needs o=bind (a bind of "device")')
        if not device.startswith("/"):
            raise InvalidArgument(f"invalid device {device!r}: a bind volume needs an absolute host path")
    elif kind:
        raise InvalidArgument(f"unsupported volume type {kind!r}: the local driver here mounts tmpfs or none (o=bind)")
    else:
        raise InvalidArgument("volume options need a type (tmpfs, or none with o=bind and device)")


class Volumes:
    """The volumes under ``root`` (made in ``tmp``, on the same filesystem)."""

    def __init__(self, root: Path, tmp: Path) -> None:
        self.root = root
        self.tmp = tmp

    def create(
        self, name: str, labels: Mapping[str, str], options: Mapping[str, str], anonymous: bool = False
    ) -> tuple[Volume, bool]:
        """The volume ``name``, made if it does not exist (Docker's create is idempotent): (volume,
        whether it was made now). An anonymous volume gets a random 64-hex-digit name."""
        if anonymous:
            name = uuid.uuid4().hex + uuid.uuid4().hex
        elif not NAME.fullmatch(name):
            raise InvalidArgument(
                f"invalid volume name {name[:80]!r}: want 2 to 255 characters of [a-zA-Z0-9_.-], starting with a letter or digit"
            )
        check_options(options)
        try:
            return self.get(name), False
        except NotFound:
            pass
        staging = self.tmp / f"volume-{uuid.uuid4().hex}"
        (staging / "_data").mkdir(parents=True, mode=0o755)
        os.chmod(staging / "_data", 0o755)  # whatever the umask: containers of any user may use it
        volume = Volume(name, self.root / name, time.time_ns(), dict(labels), dict(options), anonymous)
        record = {"name": name, "created_at": volume.created_at, "labels": volume.labels,
                  "options": volume.options, "anonymous": anonymous}  # fmt: skip
        (staging / _META).write_text(json.dumps(record))
        try:
            os.rename(staging, volume.path)
        except OSError:  # made meanwhile by another call (a directory that is not empty is in the way)
            shutil.rmtree(staging, ignore_errors=True)
            return self.get(name), False
        log.info("volume_created", volume=name, anonymous=anonymous)
        return volume, True

    def get(self, name: str) -> Volume:
        """The volume ``name``; NotFound if there is none."""
        if not NAME.fullmatch(name):
            raise NotFound(f"no such volume: {name[:80]!r}")
        path = self.root / name
        try:
            record = json.loads((path / _META).read_text())
        except FileNotFoundError:
            raise NotFound(f"no such volume: {name!r}") from None
        return Volume(name, path, int(record["created_at"]), record["labels"], record["options"], bool(record["anonymous"]))

    def list(self) -> list[Volume]:
        """Every volume, by name."""
        out = []
        for entry in sorted(os.listdir(self.root)):
            try:
                out.append(self.get(entry))
            except NotFound:
                continue  # being removed, or not a volume
        return out

    def remove(self, name: str) -> bool:
        """Deletes the volume and its data; False if there was none."""
        try:
            volume = self.get(name)
        except NotFound:
            return False
        doomed = self.tmp / f"removed-{uuid.uuid4().hex}"
        try:
            os.rename(volume.path, doomed)
        except FileNotFoundError:
            return False
        shutil.rmtree(doomed, ignore_errors=True)
        log.info("volume_removed", volume=name)
        return True

    def is_empty(self, volume: Volume) -> bool:
        """Whether a plain volume holds no file (the only kind filled from an image)."""
        return not volume.options and not any(os.scandir(volume.data))

    def size(self, volume: Volume) -> int:
        """Bytes of the files a plain volume holds (-1 for one whose data is elsewhere)."""
        if volume.options:
            return -1
        total = 0
        for top, _dirs, files in os.walk(volume.data):
            for f in files:
                try:
                    total += os.lstat(os.path.join(top, f)).st_blocks * 512
                except FileNotFoundError:
                    continue
        return total
