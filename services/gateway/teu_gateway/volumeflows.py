"""Volumes across the back ends: storage owns them (their data and records), the runtime knows which
containers mount them (each container's mounts name their volume). The gateway composes the two:
the volumes a new container needs, found or made and filled from its image; the anonymous ones that
go with a removed container; and the public calls, which refuse to remove a volume in use.

One lock orders the steps that make, use and remove volumes in this gateway, so a volume cannot go
between the moment a create finds it and the moment its container is recorded.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import structlog

from teu_api.errors import FailedPrecondition, InvalidArgument, NotFound, TeuError
from teu_api.runtime.v1 import runtime_pb2 as rt
from teu_api.storage.v1 import storage_pb2 as st
from teu_gateway.backends import Backends, call, idempotent, retry_unavailable
from teu_gateway.mounts import Planned, VolumeRequest, volume_mount

log = structlog.get_logger()


@dataclass(frozen=True)
class Attached:
    """A new container's mounts, and the volumes made for it (undone if the create fails)."""

    mounts: list[rt.ContainerMount]
    made: list[str]
    #: (volume, path) pairs to fill from the image once its snapshot exists.
    fill: list[tuple[str, str]]


class VolumeFlows:
    """The volume steps of the gateway's operations, and the public volume calls."""

    def __init__(self, b: Backends) -> None:
        self.b = b
        self.lock = asyncio.Lock()

    async def attach(self, planned: Sequence[Planned]) -> Attached:
        """Finds or makes each volume ``planned`` names (the caller holds :attr:`lock`)."""
        out = Attached([], [], [])
        try:
            for p in planned:
                if not isinstance(p, VolumeRequest):
                    out.mounts.append(p)
                    continue
                req = st.CreateVolumeRequest(name=p.name, labels=p.labels, options=p.options, anonymous=not p.name)
                resp: st.CreateVolumeResponse = await call("storage", self.b.storage.CreateVolume(req))
                if resp.created:
                    out.made.append(resp.volume.name)
                out.mounts.append(volume_mount(p, resp.volume))
                if not p.no_copy and not resp.volume.options:
                    out.fill.append((resp.volume.name, p.target))
        except BaseException:
            await self.undo(out.made)
            raise
        return out

    async def fill(self, cid: str, attached: Attached) -> None:
        """Copies the image's content at each new volume's path into it, if the volume is empty."""
        for name, path in attached.fill:
            req = st.FillVolumeRequest(name=name, key=cid, path=path)
            await idempotent("storage", functools.partial(self.b.storage.FillVolume, req))

    async def undo(self, made: Iterable[str]) -> None:
        """Removes the volumes a failed create made (repeated while storage restarts)."""
        for name in made:
            req = st.RemoveVolumeRequest(name=name)
            try:
                await retry_unavailable("storage", functools.partial(self.b.storage.RemoveVolume, req))
            except TeuError as exc:
                log.warning("volume_undo_failed", volume=name, error=exc.message)

    async def release(self, c: rt.Container) -> None:
        """After ``c`` is removed with its volumes (rm -v, --rm): its anonymous volumes that no other
        container mounts go too."""
        anonymous = [cm.volume for cm in c.spec.mounts if cm.anonymous_volume]
        if not anonymous:
            return
        async with self.lock:
            users = await self.users()
            for name in anonymous:
                if users.get(name):
                    log.info("volume_kept", volume=name, used_by=users[name][:3])
                    continue
                await self.undo([name])

    async def users(self) -> dict[str, list[str]]:
        """Each volume's containers (names), from the runtime's records."""
        listed = await idempotent("runtime", lambda: self.b.runtime.ListContainers(rt.ListContainersRequest(all=True)))
        out: dict[str, list[str]] = {}
        for c in listed.containers:
            for cm in c.spec.mounts:
                if cm.volume:
                    out.setdefault(cm.volume, []).append(c.name)
        return out

    # -- the public calls ------------------------------------------------------------------------

    async def create(self, name: str, labels: Mapping[str, str], options: Mapping[str, str]) -> st.Volume:
        """``volume create [NAME]``: a new anonymous-named volume without a name."""
        req = st.CreateVolumeRequest(name=name, labels=labels, options=options, anonymous=not name)
        async with self.lock:
            resp: st.CreateVolumeResponse = await call("storage", self.b.storage.CreateVolume(req))
        return resp.volume

    async def inspect(self, name: str) -> st.Volume:
        """One volume, with its size."""
        req = st.GetVolumeRequest(name=name, size=True)
        return (await idempotent("storage", lambda: self.b.storage.GetVolume(req))).volume

    async def listed(self, size: bool = False) -> list[st.Volume]:
        """Every volume."""
        req = st.ListVolumesRequest(size=size)
        return list((await idempotent("storage", lambda: self.b.storage.ListVolumes(req))).volumes)

    async def remove(self, name: str, force: bool) -> bool:
        """``volume rm``: FAILED_PRECONDITION naming the containers that use it; NOT_FOUND for an
        unknown one unless ``force``."""
        async with self.lock:
            try:
                await idempotent("storage", lambda: self.b.storage.GetVolume(st.GetVolumeRequest(name=name)))
            except NotFound:
                if force:
                    return False
                raise
            users = (await self.users()).get(name)
            if users:
                raise FailedPrecondition(f"remove {name}: volume is in use - [{', '.join(users)}]")
            req = st.RemoveVolumeRequest(name=name)
            return bool((await idempotent("storage", lambda: self.b.storage.RemoveVolume(req))).removed)

    async def prune(self, everything: bool, labels: Sequence[str]) -> tuple[list[str], int]:
        """``volume prune``: the volumes no container uses, anonymous ones only unless ``everything``,
        those matching every ``label`` filter (``key`` or ``key=value``); (names, bytes freed)."""
        async with self.lock:
            users = await self.users()
            doomed = [v for v in await self.listed(size=True)
                      if v.name not in users and (everything or v.anonymous) and matches(v, labels)]  # fmt: skip
            gone = []
            for v in doomed:
                req = st.RemoveVolumeRequest(name=v.name)
                if (await idempotent("storage", functools.partial(self.b.storage.RemoveVolume, req))).removed:
                    gone.append(v)
        return [v.name for v in gone], sum(max(v.size, 0) for v in gone)


def select(volumes: Iterable[st.Volume], users: Mapping[str, list[str]], filters: Sequence[str]) -> list[st.Volume]:
    """Docker's ``volume ls --filter``: name=SUBSTRING, label=KEY[=VALUE], dangling=true|false. Values
    of one key are alternatives but labels must all match; different keys must all match.
    INVALID_ARGUMENT for another key."""
    wanted: dict[str, list[str]] = {}
    for f in filters:
        key, eq, value = f.partition("=")
        if not eq or key not in ("name", "label", "dangling"):
            raise InvalidArgument(f"invalid filter {f[:80]!r}: volume filters are name=, label= and dangling=")
        if key == "dangling" and value.lower() not in ("true", "false", "1", "0"):
            raise InvalidArgument(f"invalid filter 'dangling={value[:40]}': want true or false")
        wanted.setdefault(key, []).append(value)

    def passes(v: st.Volume) -> bool:
        if "name" in wanted and not any(n in v.name for n in wanted["name"]):
            return False
        if "label" in wanted and not matches(v, wanted["label"]):
            return False
        dangling = not users.get(v.name)
        return "dangling" not in wanted or any((d.lower() in ("true", "1")) == dangling for d in wanted["dangling"])

    return [v for v in volumes if passes(v)]


def matches(v: st.Volume, labels: Sequence[str]) -> bool:
    """Whether the volume carries every label filter: ``key`` (any value) or ``key=value``."""
    for f in labels:
        key, eq, value = f.partition("=")
        if not key:
            raise InvalidArgument(f"invalid label filter {f!r}")
        if key not in v.labels or (eq and v.labels[key] != value):
            return False
    return True
