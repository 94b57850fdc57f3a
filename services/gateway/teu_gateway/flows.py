"""The standard operations, composed from the backing services' primitives.

``run`` = resolve image (storage) → snapshot (storage) → log file (logs) → create (runtime) →
start (runtime) → stream output (logs) until the exit (runtime) → on ``--rm``, delete in reverse.
A failure at any step undoes the earlier ones. The gateway holds no state of its own: what it must
remember across its own restarts (auto-removal) is read back from the runtime.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import structlog

from teu_api.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound, TeuError, Unavailable
from teu_api.gateway.v1 import gateway_pb2 as gw
from teu_api.ids import is_full_id
from teu_api.logs.v1 import logs_pb2 as lg
from teu_api.runtime.v1 import runtime_pb2 as rt
from teu_api.storage.v1 import storage_pb2 as st
from teu_api.types.v1 import types_pb2
from teu_gateway import convert, limits, mounts, options, security
from teu_gateway.autoremove import AutoRemover
from teu_gateway.backends import Backends, call, idempotent, retry_unavailable
from teu_gateway.filesystem import Filesystem
from teu_gateway.logflows import LogReader, outputs
from teu_gateway.volumeflows import Attached, VolumeFlows

log = structlog.get_logger()
#: How long a failed start of a ``--rm`` container waits for its removal before reporting the error.
REMOVAL_PATIENCE = 10.0
RUNNING, EXITED = types_pb2.CONTAINER_STATE_RUNNING, types_pb2.CONTAINER_STATE_EXITED
WAIT_POLL = 0.1  # how often wait --condition looks again (health and removal have no event to wait on)


@dataclass(frozen=True)
class Exit:
    """How a container's process ended."""

    exit_code: int
    oom_killed: bool
    error: str


class Flows:
    """The gateway's operations over the three backends."""

    def __init__(self, b: Backends) -> None:
        self.b = b
        self.auto_remover = AutoRemover(self.wait, lambda cid: self.remove(cid, force=False, volumes=True))
        self.logs = LogReader(b, self.wait)
        self.fs = Filesystem(b)
        self.volumes = VolumeFlows(b)

    async def find(self, ref: str) -> rt.Container:
        """The container named by id, id prefix or name."""
        limits.check_length(ref, limits.MAX_REF, "container")
        resp = await idempotent("runtime", lambda: self.b.runtime.GetContainer(rt.GetContainerRequest(ref=ref)))
        return resp.container

    async def create(self, config: gw.ContainerConfig) -> rt.Container:
        """Creates a container; on failure nothing is left behind (volumes it made included)."""
        limits.check_config(config)
        image = (await idempotent("storage", lambda: self.b.storage.GetImage(st.GetImageRequest(ref=config.image)))).image
        spec = options.container_spec(config, image, apparmor=security.apparmor_enabled())
        inherited = [m for ref in config.volumes_from for m in await self._inherit(ref)]
        planned = mounts.plan(config.mounts, inherited, image.config.volumes)
        cid = secrets.token_hex(32)
        # a volume must not go between being found here and its container being recorded
        uses_volumes = any(isinstance(p, mounts.VolumeRequest) or p.volume for p in planned)
        async with self.volumes.lock if uses_volumes else contextlib.nullcontext():
            attached = await self.volumes.attach(planned)
            spec.mounts.extend(attached.mounts)
            try:
                return await self._create_recorded(cid, config, spec, image.id, attached)
            except BaseException:
                await self.volumes.undo(attached.made)
                raise

    async def _inherit(self, ref: str) -> list[rt.ContainerMount]:
        """The mounts ``--volumes-from C[:ro|rw]`` takes from C."""
        name, _, mode = ref.partition(":")
        return mounts.inherit(await self.find(name), mode)

    async def _create_recorded(
        self, cid: str, config: gw.ContainerConfig, spec: rt.ContainerSpec, image_id: str, attached: Attached
    ) -> rt.Container:
        """Snapshot and log (side by side: two services), new volumes filled from the snapshot, then
        the runtime's record; on failure the snapshot and log go again."""
        try:
            snapshot, logged = await asyncio.gather(
                self._prepare_snapshot(cid, image_id), self._prepare_log(cid, config), return_exceptions=True
            )
            if isinstance(snapshot, BaseException):
                raise snapshot
            if isinstance(logged, BaseException):
                raise logged
            spec.log_path, spec.log_size_max = logged
            await self.volumes.fill(cid, attached)
            req = rt.CreateContainerRequest(id=cid, name=config.name, spec=spec)
            try:
                return (await call("runtime", self.b.runtime.CreateContainer(req))).container
            except Unavailable:
                return await self._created_after_all(req)
        except BaseException:
            await self._release(cid)
            raise

    async def _prepare_snapshot(self, cid: str, image_id: str) -> None:
        """PrepareSnapshot for a new container, repeated while storage restarts: the key is new, so
        ALREADY_EXISTS on a repeat means the first call made it."""
        req = st.PrepareSnapshotRequest(key=cid, image_id=image_id)
        try:
            await call("storage", self.b.storage.PrepareSnapshot(req))
        except Unavailable:
            with contextlib.suppress(AlreadyExists):
                await idempotent("storage", lambda: self.b.storage.PrepareSnapshot(req))

    async def _created_after_all(self, req: rt.CreateContainerRequest) -> rt.Container:
        """The truth about a create whose answer was lost (the runtime died during the call), once the
        runtime is back: the container if it was recorded, else the outcome of asking once more."""
        try:
            return (await self._get_when_back(req.id)).container
        except NotFound:
            log.warning("create_repeated", container=req.id[:12])
            return (await call("runtime", self.b.runtime.CreateContainer(req))).container

    async def _get_when_back(self, cid: str) -> rt.GetContainerResponse:
        """GetContainer, waiting for a restarting runtime."""
        return await retry_unavailable("runtime", lambda: self.b.runtime.GetContainer(rt.GetContainerRequest(ref=cid)))

    async def _prepare_log(self, cid: str, config: gw.ContainerConfig) -> tuple[str, int]:
        """The log conmon will write, with its retention set: (path, conmon's backstop bound, a multiple
        of the rotation size in force, for when the logs service cannot rotate)."""
        path = (await idempotent("logs", lambda: self.b.logs.PrepareLog(lg.PrepareLogRequest(container_id=cid)))).path
        size, files = options.log_options(config.log_opts)
        req = lg.ConfigureLogRequest(container_id=cid, max_size=size, max_files=files)
        in_force = await idempotent("logs", lambda: self.b.logs.ConfigureLog(req))
        return path, options.log_backstop(in_force.max_size)

    async def _release(self, cid: str) -> None:
        """Removes a container's snapshot and log (concurrently), each repeated while its service
        restarts (both removals are idempotent); a failure beyond that is logged."""

        async def one(service: str, make: Callable[[], Awaitable[object]]) -> None:
            try:
                await retry_unavailable(service, make)
            except TeuError as exc:
                log.warning("release_failed", container=cid[:12], service=service, error=exc.message)

        await asyncio.gather(
            one("storage", lambda: self.b.storage.RemoveSnapshot(st.RemoveSnapshotRequest(key=cid))),
            one("logs", lambda: self.b.logs.RemoveLog(lg.RemoveLogRequest(container_id=cid))),
        )

    async def start(self, cid: str, hand_over: bool = True, require_running: bool = False, restart: bool = False) -> rt.Container:
        """Starts a container; the returned record says whether its process could run (with
        ``require_running``, a process that could not run is FAILED_PRECONDITION, as for `teu start`).
        A ``--rm`` container is handed to the auto-remover once started (``hand_over``), and whenever
        the start fails. ``restart``: this start ends a restart."""
        try:
            c = await self._start_once(cid, restart)
        except BaseException as exc:
            await self._hand_over_after_failed_start(cid, wait=isinstance(exc, Exception))
            raise
        if c.spec.auto_remove and (hand_over or c.state != RUNNING):
            self.auto_remover.watch(cid)
        if require_running and c.error:
            raise FailedPrecondition(f"container {c.name} could not start: {c.error}")
        return c

    async def _start_once(self, cid: str, restart: bool = False) -> rt.Container:
        """StartContainer; when the runtime dies during the call, the truth once it is back: the
        container as that start left it, or a second start if the first never happened (the runtime
        undoes a start it was cut short in when it comes back)."""
        req = rt.StartContainerRequest(id=cid, rootfs=await self.rootfs(cid), restart=restart)
        asked = time.time_ns()
        try:
            return (await call("runtime", self.b.runtime.StartContainer(req))).container
        except Unavailable:
            c = (await self._get_when_back(cid)).container
            if c.started_at >= asked or c.state == RUNNING:
                return c
            log.warning("start_repeated", container=cid[:12])
            return (await call("runtime", self.b.runtime.StartContainer(req))).container

    async def _hand_over_after_failed_start(self, cid: str, wait: bool) -> None:
        """A ``--rm`` container whose start failed is removed: at once if it never ran (the start was
        refused), else once it is not running; with ``wait``, the error is reported once it is gone
        (or after REMOVAL_PATIENCE, the removal going on meanwhile)."""
        with contextlib.suppress(TeuError, TimeoutError):
            c = await self.find(cid)
            if c.spec.auto_remove and c.state == types_pb2.CONTAINER_STATE_CREATED:
                await self.remove(cid, force=False, volumes=True)  # refused before it ran: no exit to wait for
            elif c.spec.auto_remove:
                if wait:
                    await asyncio.wait_for(self.auto_remover.removed(cid), REMOVAL_PATIENCE)
                else:
                    self.auto_remover.watch(cid)

    async def rootfs(self, cid: str) -> list[types_pb2.Mount]:
        """The container's root filesystem mounts, asked of storage (their one owner) at each start."""
        resp = await idempotent("storage", lambda: self.b.storage.GetSnapshotMounts(st.GetSnapshotMountsRequest(key=cid)))
        return list(resp.mounts)

    async def inspect(self, ref: str) -> gw.ContainerDetails:
        """Everything about a container, its root filesystem mounts as storage has them now. A full
        id (what the API's clients pass) is asked of the runtime and storage side by side; the mounts
        are asked again if the id named something else (a container whose name looks like an id)."""
        if not is_full_id(ref):
            c = await self.find(ref)
            return convert.details(c, await self.rootfs(c.id))
        found, mounts = await asyncio.gather(self.find(ref), self.rootfs(ref), return_exceptions=True)
        if isinstance(found, BaseException):
            raise found
        if isinstance(mounts, BaseException) or found.id != ref:
            mounts = await self.rootfs(found.id)
        return convert.details(found, mounts)

    async def read_logs(self, request: gw.LogsRequest) -> AsyncIterator[gw.LogsResponse]:
        """The Logs stream of the containers named, each read once however often it is named, at most
        MAX_LOG_CONTAINERS of them (each one read holds files open in the logs service)."""
        refs = list(dict.fromkeys(request.containers))
        if not refs:
            raise InvalidArgument("name at least one container")
        if len(refs) > limits.MAX_LOG_CONTAINERS:
            raise InvalidArgument(f"containers names {len(refs)} containers, at most {limits.MAX_LOG_CONTAINERS}")
        found: dict[str, rt.Container] = {}
        for ref in refs:
            c = await self.find(ref)
            found.setdefault(c.id, c)
        async for batch in self.logs.logs(list(found.values()), request):
            if batch.lines or batch.chunks:
                yield batch

    async def stop(self, cid: str, timeout: int, signal: str = "") -> None:
        """Stops a container (``signal``, else its stop signal, then SIGKILL after ``timeout`` seconds;
        -1: its own)."""
        req = rt.StopContainerRequest(id=cid, timeout_seconds=timeout, signal=signal)
        await idempotent("runtime", lambda: self.b.runtime.StopContainer(req))

    async def kill(self, cid: str, sig: int) -> None:
        """Sends ``sig`` to a running container's main process."""
        await call("runtime", self.b.runtime.KillContainer(rt.KillContainerRequest(id=cid, signal=sig)))

    async def restart(self, cid: str, timeout: int) -> None:
        """Stops, then starts again (an error if it does not come up running)."""
        await self.stop(cid, timeout)
        await self.start(cid, require_running=True, restart=True)

    async def containers(self, all_: bool) -> list[rt.Container]:
        """Running containers, or every container with ``all_``."""
        found = await idempotent("runtime", lambda: self.b.runtime.ListContainers(rt.ListContainersRequest(all=all_)))
        return list(found.containers)

    async def wait_for(self, cid: str, condition: str) -> rt.Container:
        """wait --condition: not-running, next-exit, removed, healthy (Docker's first three, and the
        health Teu checks). The last record seen is returned."""
        if condition == "not-running":
            return await self.wait(cid)
        if condition not in ("next-exit", "removed", "healthy"):
            raise InvalidArgument(f"invalid condition {limits.shown(condition)}: want not-running, next-exit, removed or healthy")
        c = await self.find(cid)
        if condition == "next-exit" and c.state == RUNNING:
            return await self.wait(cid)
        if condition == "removed":
            try:  # its exit first (a created one waits for its run): the answer carries its exit code
                c = await self.wait(cid)
            except NotFound:
                return c
        first_exit = c.finished_at
        while True:
            await asyncio.sleep(WAIT_POLL)
            try:
                c = await self.find(cid)
            except NotFound:
                if condition == "removed":
                    return c
                raise
            if condition == "next-exit" and c.finished_at != first_exit and c.state != RUNNING:
                return c
            if condition == "healthy":
                if c.health.status == "healthy":
                    return c
                if c.state != RUNNING:
                    raise FailedPrecondition(f"container {c.name} stopped before it was healthy (exit code {c.exit_code})")

    async def wait(self, cid: str) -> rt.Container:
        """The container's record once it is not running; survives a runtime service restart."""
        resp: rt.WaitContainerResponse = await retry_unavailable(
            "runtime", lambda: self.b.runtime.WaitContainer(rt.WaitContainerRequest(id=cid))
        )
        return resp.container

    async def remove(self, cid: str, force: bool, volumes: bool = False) -> rt.Container:
        """Deletes a container (runtime), then its snapshot (storage) and log (logs), and with
        ``volumes`` its anonymous volumes no other container uses. ``cid`` is a full id: when the
        runtime no longer knows it (a delete whose answer was lost, repeated), what the other
        services hold of it goes all the same, and NotFound is raised."""
        try:
            c: rt.Container = (
                await call("runtime", self.b.runtime.DeleteContainer(rt.DeleteContainerRequest(id=cid, force=force)))
            ).container
        except NotFound:
            await self._release(cid)
            raise
        await self._release(cid)
        if volumes:
            await self.volumes.release(c)
        return c

    async def resume_auto_removals(self) -> None:
        """After a gateway restart: hands every started ``--rm`` container to the auto-remover again."""
        try:
            listed = await call("runtime", self.b.runtime.ListContainers(rt.ListContainersRequest(all=True)))
        except TeuError as exc:
            log.warning("resume_auto_remove_failed", error=exc.message)
            return
        self.auto_remover.resume(listed.containers)

    async def run(self, config: gw.ContainerConfig, detach: bool) -> AsyncIterator[gw.RunResponse]:
        """create → start → (attached) output until exit → (``--rm``) remove."""
        c = await self.create(config)
        created = gw.RunResponse(created=gw.RunCreated(id=c.id, name=c.name))
        if not detach:
            yield created  # the caller learns the id before any output
        c = await self.start(c.id, hand_over=detach)
        if detach:
            yield created  # only once it runs: a detached caller may hang up right after
            return
        removal: asyncio.Task[None] | None = None
        try:
            # a process may have run its course already (its start was settled after a runtime restart)
            running = c.state == RUNNING
            async for batch in self.logs.follow(c.id, running=running):
                for out in outputs(batch):
                    yield gw.RunResponse(output=gw.RunOutput(stream=out.stream, data=out.data))
            if running:
                c = await self.wait(c.id)
        finally:
            if config.auto_remove:  # the output is streamed, or the client went away: removed once it exits
                removal = self.auto_remover.watch(c.id)
        yield gw.RunResponse(exit=gw.RunExit(exit_code=c.exit_code, oom_killed=c.oom_killed, error=c.error))
        if removal is not None:
            await asyncio.shield(removal)
