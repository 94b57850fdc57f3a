"""The gateway's flows over fake back ends: in-memory runtime, storage and logs services with the
stubs' method names, at the one seam the gateway has (:class:`teu_gateway.backends.Backends`)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, cast

import pytest

from teu_api.errors import FailedPrecondition, InvalidArgument, NotFound, TeuError
from teu_api.gateway.v1 import gateway_pb2 as gw
from teu_api.logs.v1 import logs_pb2 as lg
from teu_api.runtime.v1 import runtime_pb2 as rt
from teu_api.storage.v1 import storage_pb2 as st
from teu_api.types.v1 import types_pb2 as t
from teu_gateway.backends import Backends
from teu_gateway.flows import Flows

CREATED, RUNNING, EXITED = t.CONTAINER_STATE_CREATED, t.CONTAINER_STATE_RUNNING, t.CONTAINER_STATE_EXITED
ROOTFS = t.Mount(type="overlay", source="overlay", destination="/", options=["upperdir=/u"])


class FakeRuntime:
    """Containers with the runtime's state machine; ``exit`` ends one as its process would."""

    def __init__(self) -> None:
        self.containers: dict[str, rt.Container] = {}
        self.exited: dict[str, asyncio.Event] = {}
        self.started_with: list[list[t.Mount]] = []
        self.fail_create: TeuError | None = None
        self.fail_start: TeuError | None = None

    def exit(self, cid: str, code: int) -> None:
        c = self.containers[cid]
        c.state, c.exit_code = EXITED, code
        self.exited[cid].set()

    async def CreateContainer(self, req: rt.CreateContainerRequest) -> rt.CreateContainerResponse:
        if self.fail_create:
            raise self.fail_create
        c = rt.Container(id=req.id, name=req.name or req.id[:12], state=CREATED, spec=req.spec)
        self.containers[req.id] = c
        self.exited[req.id] = asyncio.Event()
        return rt.CreateContainerResponse(container=c)

    async def StartContainer(self, req: rt.StartContainerRequest) -> rt.StartContainerResponse:
        c = self._get(req.id)
        if self.fail_start:
            raise self.fail_start
        self.started_with.append(list(req.rootfs))
        c.state, c.started_at = RUNNING, c.started_at + 1
        self.exited[req.id].clear()
        return rt.StartContainerResponse(container=c)

    async def WaitContainer(self, req: rt.WaitContainerRequest) -> rt.WaitContainerResponse:
        c = self._get(req.id)
        if c.state == RUNNING:
            await self.exited[req.id].wait()
        return rt.WaitContainerResponse(container=c)

    async def DeleteContainer(self, req: rt.DeleteContainerRequest) -> rt.DeleteContainerResponse:
        c = self._get(req.id)
        if c.state == RUNNING and not req.force:
            raise FailedPrecondition(f"container {c.name} is running")
        del self.containers[req.id]
        return rt.DeleteContainerResponse(container=c)

    async def GetContainer(self, req: rt.GetContainerRequest) -> rt.GetContainerResponse:
        return rt.GetContainerResponse(container=self._get(req.ref))

    async def ListContainers(self, req: rt.ListContainersRequest) -> rt.ListContainersResponse:
        return rt.ListContainersResponse(containers=list(self.containers.values()))

    def _get(self, ref: str) -> rt.Container:
        for c in self.containers.values():
            if ref in (c.id, c.name):
                return c
        raise NotFound(f"no such container: {ref}")


class FakeStorage:
    """One image, ``busybox``, and the snapshots prepared from it."""

    def __init__(self) -> None:
        self.snapshots: set[str] = set()

    async def GetImage(self, req: st.GetImageRequest) -> st.GetImageResponse:
        if req.ref != "busybox":
            raise NotFound(f"no such image: {req.ref}")
        return st.GetImageResponse(image=st.Image(id="sha256:" + "b" * 64, config=t.ImageConfig(cmd=["sh"])))

    async def PrepareSnapshot(self, req: st.PrepareSnapshotRequest) -> st.PrepareSnapshotResponse:
        self.snapshots.add(req.key)
        return st.PrepareSnapshotResponse(mounts=[ROOTFS])

    async def GetSnapshotMounts(self, req: st.GetSnapshotMountsRequest) -> st.GetSnapshotMountsResponse:
        if req.key not in self.snapshots:
            raise NotFound(f"no snapshot {req.key}")
        return st.GetSnapshotMountsResponse(mounts=[ROOTFS])

    async def RemoveSnapshot(self, req: st.RemoveSnapshotRequest) -> st.RemoveSnapshotResponse:
        self.snapshots.discard(req.key)
        return st.RemoveSnapshotResponse()


class FakeLogs:
    """Each container's log as a list of lines; a following read waits for lines that come later."""

    def __init__(self) -> None:
        self.lines: dict[str, list[bytes]] = {}
        self.grew = asyncio.Condition()

    async def write(self, cid: str, *lines: bytes) -> None:
        async with self.grew:
            self.lines[cid].extend(lines)
            self.grew.notify_all()

    async def PrepareLog(self, req: lg.PrepareLogRequest) -> lg.PrepareLogResponse:
        self.lines[req.container_id] = []
        return lg.PrepareLogResponse(path=f"/logs/{req.container_id}/ctr.log")

    async def ConfigureLog(self, req: lg.ConfigureLogRequest) -> lg.ConfigureLogResponse:
        return lg.ConfigureLogResponse(max_size=req.max_size or 20 << 20, max_files=req.max_files or 5)

    async def RemoveLog(self, req: lg.RemoveLogRequest) -> lg.RemoveLogResponse:
        self.lines.pop(req.container_id, None)
        return lg.RemoveLogResponse()

    async def ReadLog(self, req: lg.ReadLogRequest) -> AsyncIterator[lg.ReadLogResponse]:
        """Offsets count lines; a follow yields each line as it comes, forever."""
        offset = req.offset
        while True:
            async with self.grew:
                lines = self.lines.get(req.container_id)
                if lines is None:
                    raise NotFound(f"no log for {req.container_id}")
                if offset < len(lines):
                    chunk = lines[offset:]
                    offset = len(lines)
                    yield lg.ReadLogResponse(chunks=[lg.LogChunk(stream=t.STREAM_STDOUT, data=b"".join(chunk))], offset=offset)
                elif not req.follow:
                    return
                else:
                    await self.grew.wait()


class Fakes:
    """The three fakes and the Backends that serve them."""

    def __init__(self) -> None:
        self.runtime, self.storage, self.logs = FakeRuntime(), FakeStorage(), FakeLogs()
        self.backends = Backends(
            runtime=cast(Any, self.runtime), storage=cast(Any, self.storage), logs=cast(Any, self.logs),
            logs_health=cast(Any, None), channels=(),
        )  # fmt: skip


def drive(body: Callable[[Flows, Fakes], Awaitable[None]]) -> None:
    """Runs ``body`` with Flows over fresh fakes, in a loop of its own, with a time limit."""

    async def main() -> None:
        fakes = Fakes()
        await asyncio.wait_for(body(Flows(fakes.backends), fakes), 10)

    asyncio.run(main())


async def collect(responses: AsyncIterator[gw.RunResponse]) -> list[gw.RunResponse]:
    return [r async for r in responses]


def test_a_failed_create_leaves_no_snapshot_and_no_log() -> None:
    """When the runtime refuses a container, its snapshot and log are removed again."""

    async def body(f: Flows, fakes: Fakes) -> None:
        fakes.runtime.fail_create = InvalidArgument("bad name")
        with pytest.raises(InvalidArgument):
            await f.create(gw.ContainerConfig(image="busybox", cmd=["true"]))
        assert (fakes.storage.snapshots, fakes.logs.lines, fakes.runtime.containers) == (set(), {}, {})

    drive(body)


def test_start_asks_storage_for_the_mounts_each_time() -> None:
    """Each start hands the runtime the mounts storage gives at that moment; the record keeps none."""

    async def body(f: Flows, fakes: Fakes) -> None:
        c = await f.create(gw.ContainerConfig(image="busybox", cmd=["true"]))
        for _ in range(2):
            await f.start(c.id)
            fakes.runtime.exit(c.id, 0)
        assert fakes.runtime.started_with == [[ROOTFS], [ROOTFS]]
        assert list((await f.inspect(c.id)).mounts) == [ROOTFS]

    drive(body)


def test_run_streams_output_then_the_exit_then_removes_an_rm_container() -> None:
    """An attached ``run --rm`` yields created, every line (also those written as it exits), the exit
    code, and ends only once the container, its snapshot and its log are gone."""

    async def body(f: Flows, fakes: Fakes) -> None:
        responses = f.run(gw.ContainerConfig(image="busybox", cmd=["true"], auto_remove=True), detach=False)
        created = await anext(responses)
        cid = created.created.id
        rest = asyncio.create_task(collect(responses))
        await fakes.logs.write(cid, b"one\n")
        await asyncio.sleep(0.05)
        fakes.logs.lines[cid].append(b"two\n")  # the last words, read only after the exit
        fakes.runtime.exit(cid, 3)
        out = await rest
        assert b"".join(r.output.data for r in out if r.HasField("output")) == b"one\ntwo\n"
        assert out[-1].exit.exit_code == 3
        assert (fakes.runtime.containers, fakes.storage.snapshots, fakes.logs.lines) == ({}, set(), {})

    drive(body)


def test_a_failed_start_of_an_rm_container_removes_it_before_the_error() -> None:
    """``run --rm`` whose start is refused reports the error once the container is gone."""

    async def body(f: Flows, fakes: Fakes) -> None:
        fakes.runtime.fail_start = FailedPrecondition("port 80 is in use")
        with pytest.raises(FailedPrecondition, match="port 80"):
            await collect(f.run(gw.ContainerConfig(image="busybox", cmd=["true"], auto_remove=True), detach=True))
        assert (fakes.runtime.containers, fakes.storage.snapshots) == ({}, set())

    drive(body)


def test_a_detached_rm_container_is_removed_when_it_exits_and_not_before() -> None:
    """``run -d --rm``: the container runs until its process ends, then is removed."""

    async def body(f: Flows, fakes: Fakes) -> None:
        (created,) = await collect(f.run(gw.ContainerConfig(image="busybox", cmd=["true"], auto_remove=True), detach=True))
        cid = created.created.id
        await asyncio.sleep(0.05)
        assert fakes.runtime.containers[cid].state == RUNNING
        fakes.runtime.exit(cid, 0)
        await f.auto_remover.removed(cid)
        assert fakes.runtime.containers == {}

    drive(body)


def test_an_rm_container_started_again_is_removed_after_its_second_run() -> None:
    """If a handed-over container is started again before its removal, it is removed when that run ends."""

    async def body(f: Flows, fakes: Fakes) -> None:
        c = await f.create(gw.ContainerConfig(image="busybox", cmd=["true"], auto_remove=True))
        await f.start(c.id, hand_over=False)
        fakes.runtime.exit(c.id, 0)
        real_delete = fakes.runtime.DeleteContainer

        async def restart_first(req: rt.DeleteContainerRequest) -> rt.DeleteContainerResponse:
            fakes.runtime.DeleteContainer = real_delete  # type: ignore[method-assign]
            await fakes.runtime.StartContainer(rt.StartContainerRequest(id=req.id))
            return await real_delete(req)

        fakes.runtime.DeleteContainer = restart_first  # type: ignore[method-assign]
        removal = f.auto_remover.watch(c.id)
        await asyncio.sleep(0.05)
        assert fakes.runtime.containers[c.id].state == RUNNING and not removal.done()
        fakes.runtime.exit(c.id, 0)
        await removal
        assert fakes.runtime.containers == {}

    drive(body)


def test_after_a_gateway_restart_started_rm_containers_are_watched_again() -> None:
    """resume_auto_removals watches every started ``--rm`` container, and leaves the others alone."""

    async def body(f: Flows, fakes: Fakes) -> None:
        rm = await f.create(gw.ContainerConfig(image="busybox", cmd=["true"], auto_remove=True))
        keep = await f.create(gw.ContainerConfig(image="busybox", cmd=["true"]))
        for c in (rm, keep):
            await f.start(c.id, hand_over=False)
        restarted = Flows(fakes.backends)  # a new gateway process: nothing in memory
        await restarted.resume_auto_removals()
        fakes.runtime.exit(rm.id, 0)
        fakes.runtime.exit(keep.id, 0)
        await restarted.auto_remover.removed(rm.id)
        assert list(fakes.runtime.containers) == [keep.id]

    drive(body)


def test_create_bounds_conmons_log_above_the_rotation_size_in_force() -> None:
    """The runtime gets the log file's backstop: 4x the rotation size the logs service put in force, at least 64 MiB."""

    async def body(f: Flows, fakes: Fakes) -> None:
        big = await f.create(gw.ContainerConfig(image="busybox", cmd=["true"], log_opts={"max-size": "30m"}))
        default = await f.create(gw.ContainerConfig(image="busybox", cmd=["true"]))
        small = await f.create(gw.ContainerConfig(image="busybox", cmd=["true"], log_opts={"max-size": "1m"}))
        assert [c.spec.log_size_max for c in (big, default, small)] == [120 << 20, 80 << 20, 64 << 20]

    drive(body)
