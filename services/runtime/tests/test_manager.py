"""The runtime's container state machine, with fakes at its edges: a fake OCI runtime, a fake conmon
(a real ``sleep`` process stands in for the monitor, so exits are observed through a real pidfd) and
no mounts. Networking is the real code on the "none" network, which touches nothing on the host."""

from __future__ import annotations

import asyncio
import signal
import stat
import subprocess
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from teu_api.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from teu_api.runtime.v1 import runtime_pb2 as rt
from teu_api.types.v1 import types_pb2 as t
from teu_runtime import confine, conmon, mounts, spec
from teu_runtime.bundle import Bundle
from teu_runtime.database import Store
from teu_runtime.manager import CREATED, EXITED, RUNNING, Manager, Settings
from teu_runtime.network.networks import Networks

CID = "c1" * 32
OTHER = "d2" * 32


class FakeMonitor:
    """What stands in for conmon: a process to watch, and the exit file conmon would write."""

    def __init__(self) -> None:
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.fail_with = ""

    async def launch(self, launch: conmon.Launch) -> conmon.Created:
        """conmon.launch: 'creates' the container, whose monitor is a sleeping process."""
        if self.fail_with:
            return conmon.Created(-1, self.fail_with)
        proc = subprocess.Popen(["sleep", "60"])
        self.procs[launch.cid] = proc
        launch.bundle.persist.mkdir(exist_ok=True)
        launch.bundle.conmon_pid.write_text(f"{proc.pid}\n")
        return conmon.Created(proc.pid, "")

    def exit(self, bundle: Bundle, cid: str, code: int) -> None:
        """The container's process ends with ``code``: conmon records it and exits."""
        bundle.exit_file.write_text(str(code))
        proc = self.procs.pop(cid)
        proc.kill()
        proc.wait()


class FakeOci:
    """An OCI runtime that records what it is asked; a kill ends the 'container'."""

    path = "/usr/sbin/fake-runc"
    root = Path("/run/fake")

    def __init__(self, monitor: FakeMonitor, bundles: Path) -> None:
        self.calls: list[tuple[str, str]] = []
        self.monitor, self.bundles = monitor, bundles
        self.known: set[str] = set()  # containers the runtime holds state for
        self.statuses: dict[str, tuple[str, int]] = {}  # their status, "created" unless set

    async def start(self, cid: str) -> None:
        self.calls.append(("start", cid))

    async def kill(self, cid: str, sig: int) -> None:
        self.calls.append(("kill", cid))
        if cid in self.monitor.procs:
            self.monitor.exit(Bundle(self.bundles / cid), cid, 128 + sig)

    async def delete(self, cid: str, force: bool = False) -> None:
        self.calls.append(("delete", cid))
        self.known.discard(cid)

    async def pause(self, cid: str) -> None:
        self.calls.append(("pause", cid))

    async def resume(self, cid: str) -> None:
        self.calls.append(("resume", cid))

    async def processes(self, cid: str) -> list[int]:
        return [4242]

    async def update(self, cid: str, resources: dict[str, object]) -> None:
        self.calls.append(("update", cid))

    def knows(self, cid: str) -> bool:
        return cid in self.known

    async def status(self, cid: str) -> tuple[str, int] | None:
        return self.statuses.get(cid, ("created", 4242)) if cid in self.known else None


@pytest.fixture()
def monitor(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeMonitor]:
    """conmon and the mounts replaced by fakes (mounts: the mount point is made, nothing mounted)."""
    fake = FakeMonitor()
    monkeypatch.setattr(conmon, "launch", fake.launch)
    monkeypatch.setattr(conmon, "is_monitor", lambda pid, cid: True)
    monkeypatch.setattr(mounts, "mount_rootfs", lambda m, target, mapping=None: target.mkdir(exist_ok=True))
    monkeypatch.setattr(mounts, "unmount", lambda target: None)
    yield fake
    for proc in fake.procs.values():
        proc.kill()
        proc.wait()


Body = Callable[[Manager, FakeOci], Awaitable[None]]


@pytest.fixture()
def drive(tmp_path: Path, monitor: FakeMonitor) -> Callable[[Body], None]:
    """Runs a test body against a manager over a fresh database, with the fakes, in its own loop."""

    def go(body: Body) -> None:
        async def main() -> None:
            store = Store(tmp_path / "runtime.db")
            bundles = tmp_path / "containers"
            bundles.mkdir(exist_ok=True)
            oci = FakeOci(monitor, bundles)
            host = spec.Host(limits=confine.host_limits(), held_caps=confine.held_capabilities())
            settings = Settings(bundles=bundles, conmon="conmon", host=host)
            m = Manager(store, oci, settings, Networks(store, owner="test", default="none"))
            try:
                await body(m, oci)
            finally:
                await m.close()
                store.close()

        asyncio.run(main())

    return go


#: The root filesystem storage would hand each start.
ROOTFS = [t.Mount(type="overlay", source="overlay", destination="/", options=["lowerdir=/x"])]


def container_spec(**kw: object) -> rt.ContainerSpec:
    """A spec as the gateway would send it."""
    return rt.ContainerSpec(process=t.Process(args=["sh"]), log_path="/logs/c.log", network="none", **kw)  # type: ignore[arg-type]


def test_create_records_the_container_and_its_private_bundle(drive: Callable[[Body], None]) -> None:
    """A created container is recorded, its bundle is root's alone, its /etc/hostname world-readable."""

    async def body(m: Manager, _: FakeOci) -> None:
        c = await m.create(CID, "web", container_spec(hostname="web"))
        assert (c.state, c.name) == (CREATED, "web")
        bundle = m.bundle(CID)
        assert stat.S_IMODE(bundle.path.stat().st_mode) == 0o700
        assert (bundle.hostname.read_text(), stat.S_IMODE(bundle.hostname.stat().st_mode)) == ("web\n", 0o644)
        with pytest.raises(AlreadyExists):
            await m.create(OTHER, "web", container_spec())

    drive(body)


def test_start_runs_and_an_exit_is_recorded(drive: Callable[[Body], None], monitor: FakeMonitor) -> None:
    """start writes the spec, starts through the OCI runtime and watches the monitor; its exit is
    recorded with the exit file's code, and the runtime state is deleted."""

    async def body(m: Manager, oci: FakeOci) -> None:
        await m.create(CID, "web", container_spec())
        c = await m.start(CID, ROOTFS)
        assert c.state == RUNNING and c.pid > 0 and ("start", CID) in oci.calls
        assert "seccomp" in m.bundle(CID).config.read_text()
        with pytest.raises(FailedPrecondition, match="already running"):
            await m.start(CID, ROOTFS)
        monitor.exit(m.bundle(CID), CID, 3)
        done = await asyncio.wait_for(m.wait(CID), 10)
        assert (done.state, done.exit_code, done.pid) == (EXITED, 3, 0)
        assert ("delete", CID) in oci.calls

    drive(body)


def test_stop_and_kill(drive: Callable[[Body], None]) -> None:
    """stop signals and waits for the exit; kill of a container that is not running is refused;
    stop of one that is not running is a no-op."""

    async def body(m: Manager, _: FakeOci) -> None:
        await m.create(CID, "web", container_spec())
        with pytest.raises(FailedPrecondition, match="not running"):
            await m.kill(CID, signal.SIGTERM)
        assert (await m.stop(CID, 5)).state == CREATED
        await m.start(CID, ROOTFS)
        stopped = await asyncio.wait_for(m.stop(CID, 5), 10)
        assert (stopped.state, stopped.exit_code) == (EXITED, 128 + signal.SIGTERM)

    drive(body)


def test_a_start_needs_the_root_filesystem(drive: Callable[[Body], None]) -> None:
    """A start without root filesystem mounts is refused and leaves the container created."""

    async def body(m: Manager, _: FakeOci) -> None:
        await m.create(CID, "web", container_spec())
        with pytest.raises(InvalidArgument, match="root filesystem"):
            await m.start(CID, [])
        assert m.store.get(CID).state == CREATED

    drive(body)


def test_a_start_the_runtime_refuses_ends_exited_with_dockers_code(drive: Callable[[Body], None], monitor: FakeMonitor) -> None:
    """A command the OCI runtime cannot find leaves the container exited with 127 and the error."""

    async def body(m: Manager, _: FakeOci) -> None:
        await m.create(CID, "web", container_spec())
        monitor.fail_with = 'exec: "nope": executable file not found in $PATH'
        c = await m.start(CID, ROOTFS)
        assert (c.state, c.exit_code) == (EXITED, 127) and "nope" in c.error

    drive(body)


def test_delete_refuses_a_running_container_unless_forced(drive: Callable[[Body], None]) -> None:
    """rm of a running container is refused; forced, it is killed and forgotten, bundle and all."""

    async def body(m: Manager, _: FakeOci) -> None:
        await m.create(CID, "web", container_spec())
        await m.start(CID, ROOTFS)
        with pytest.raises(FailedPrecondition, match="running"):
            await m.delete(CID, force=False)
        await asyncio.wait_for(m.delete(CID, force=True), 10)
        with pytest.raises(NotFound):
            m.store.get(CID)
        assert not m.bundle(CID).path.exists()

    drive(body)


def test_reconcile_undoes_a_start_the_service_died_in(drive: Callable[[Body], None], monkeypatch: pytest.MonkeyPatch) -> None:
    """A container left created with the runtime's state and its root filesystem mounted (the service
    was killed between the runtime's create and start) has both undone when the service comes back,
    and says why; a container with nothing left behind is not touched."""
    unmounted: list[Path] = []
    monkeypatch.setattr(mounts, "unmount", unmounted.append)
    monkeypatch.setattr(mounts, "is_mounted", lambda target: target.parent.name == CID and target.name == "rootfs")

    async def body(m: Manager, oci: FakeOci) -> None:
        await m.create(CID, "cut-short", container_spec())
        await m.create(OTHER, "untouched", container_spec())
        oci.known.add(CID)
        await m.reconcile()
        assert ("delete", CID) in oci.calls and ("delete", OTHER) not in oci.calls
        assert unmounted == [m.bundle(CID).shm, m.bundle(CID).rootfs]  # each unmounted if mounted
        c = m.store.get(CID)
        assert c.state == CREATED and "cut short" in c.error
        assert m.store.get(OTHER).error == ""

    drive(body)


def test_reconcile_records_a_start_that_happened_before_the_service_died(
    drive: Callable[[Body], None], monitor: FakeMonitor, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A container the OCI runtime started and that already exited, though the record still says
    created (the service died right after the runtime's start), gets its exit recorded: it is never
    started a second time."""
    monkeypatch.setattr(mounts, "is_mounted", lambda target: False)

    async def body(m: Manager, oci: FakeOci) -> None:
        await m.create(CID, "ran", container_spec())
        bundle = m.bundle(CID)
        bundle.persist.mkdir(exist_ok=True)
        bundle.exit_file.write_text("0")
        oci.known.add(CID)
        oci.statuses[CID] = ("stopped", 0)
        monkeypatch.setattr(conmon, "is_monitor", lambda pid, cid: False)
        await m.reconcile()
        c = await asyncio.wait_for(m.wait(CID), 10)
        assert (c.state, c.exit_code, c.error) == (EXITED, 0, "") and c.started_at > 0
        assert ("start", CID) not in oci.calls

    drive(body)
