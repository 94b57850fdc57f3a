"""The engine's user namespace remapping (Docker's ``userns-remap``), from ``TEU_USERNS_REMAP``.

- unset or empty: containers' root is the host's root (Docker's default);
- ``default``: the subordinate ranges of the user ``teuremap`` in /etc/subuid and /etc/subgid;
- ``USER``: that user's first subordinate ranges;
- ``UID:GID:SIZE``: container ids 0..SIZE-1 are host uids UID.. and gids GID.. (no lookup).

Container root is then an unprivileged uid on the host. Image layers are not copied per range: the
runtime mounts them through idmapped mounts (see ``teu_runtime.idmapped``), so what containers write
lands on disk with the container's own ids and images stay shared.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ENV", "IdMap", "configured", "parse"]

ENV = "TEU_USERNS_REMAP"
DEFAULT_USER = "teuremap"
_TRIPLE = re.compile(r"(\d+):(\d+):(\d+)")


@dataclass(frozen=True)
class IdMap:
    """Container ids 0..size-1 are host uids uid..uid+size-1 and gids gid..gid+size-1."""

    uid: int
    gid: int
    size: int

    def describe(self) -> str:
        """Docker's spelling in ``info``: ``name=userns,uidmap=0:100000:65536,gidmap=...``."""
        return f"name=userns,uidmap=0:{self.uid}:{self.size},gidmap=0:{self.gid}:{self.size}"


def _subordinate(table: str, user: str, root: Path) -> tuple[int, int]:
    try:
        lines = (root / table).read_text().splitlines()
    except OSError as exc:
        raise ValueError(f"{ENV}: cannot read /etc/{table}: {exc.strerror}") from None
    for line in lines:
        name, _, rest = line.partition(":")
        start, _, count = rest.partition(":")
        if name == user and start.isdigit() and count.isdigit():
            return int(start), int(count)
    raise ValueError(f"{ENV}: user {user!r} has no range in /etc/{table}")


def parse(value: str, etc: Path = Path("/etc")) -> IdMap | None:
    """The mapping ``value`` names (see the module's doc); ValueError for one that cannot be used
    (a range that includes host root, or of fewer than 65536 ids)."""
    value = value.strip()
    if not value:
        return None
    if m := _TRIPLE.fullmatch(value):
        mapping = IdMap(int(m.group(1)), int(m.group(2)), int(m.group(3)))
    else:
        user = DEFAULT_USER if value == "default" else value
        uid, uids = _subordinate("subuid", user, etc)
        gid, gids = _subordinate("subgid", user, etc)
        mapping = IdMap(uid, gid, min(uids, gids))
    if mapping.uid == 0 or mapping.gid == 0:
        raise ValueError(f"{ENV}: the range must not include host root (uid/gid 0)")
    if mapping.size < 65536:
        raise ValueError(f"{ENV}: the range needs at least 65536 ids, got {mapping.size}")
    return mapping


def configured() -> IdMap | None:
    """The engine's remapping, from the environment."""
    return parse(os.environ.get(ENV, ""))
