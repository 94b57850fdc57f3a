"""The runtime's core: an explicit container state machine over conmon and the OCI runtime.

    created ──start──▶ running ──(process exits)──▶ exited ──start──▶ running ...
       │                  │                            │
       └──────delete──────┴────delete(force)───────────┘

A container is running from a successful ``<runtime> start`` until its conmon reports the exit.
Exits are observed through a pidfd on conmon, so a restarted runtime service picks up where it
left off (``reconcile``): containers never depend on this process staying alive.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import secrets
import shutil
import signal as signals
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from teu_api.errors import FailedPrecondition, Internal, InvalidArgument, NotFound, TeuError
from teu_api.ids import is_full_id
from teu_api.runtime.v1 import runtime_pb2
from teu_api.types.v1 import types_pb2
from teu_common import perms
from teu_common.idmap import IdMap
from teu_common.signals import parse_signal
from teu_runtime import (
    attach,
    cgroups,
    confine,
    conmon,
    copyin,
    events,
    execs,
    health,
    initsignal,
    mounts,
    names,
    oomwatch,
    prober,
    restarts,
    sharing,
    spec,
    usermounts,
    users,
)
from teu_runtime.bundle import Bundle
from teu_runtime.database import Container, Store
from teu_runtime.network.networks import HOST, Networks, Plan
from teu_runtime.ociruntime import OciRuntime

log = structlog.get_logger()
CREATED, RUNNING, EXITED = (
    types_pb2.CONTAINER_STATE_CREATED,
    types_pb2.CONTAINER_STATE_RUNNING,
    types_pb2.CONTAINER_STATE_EXITED,
)
LOST_EXIT = 255
OnCreated = Callable[[Bundle], Awaitable[None]]
DEFAULT_STOP_TIMEOUT = 10


@dataclass(frozen=True)
class Settings:
    """Where and how the manager runs containers."""

    bundles: Path
    conmon: str
    host: spec.Host
    remap: IdMap | None = None
    #: The static init binary for --init (Debian's tini-static), if installed.
    init_path: str = ""
    #: Whether containers get the init unless they say otherwise (TEU_INIT=1).
    init_default: bool = False
    #: The host's static busybox, whose shell runs the healthchecks in containers (prober.py).
    busybox: str = ""
    #: Where containers' cgroups go, relative to this service's own (TEU_CGROUP_PARENT).
    cgroup_parent: str = cgroups.PARENT


def _now() -> int:
    return time.time_ns()


class Manager:
    """Creates, starts, stops and deletes containers, and tracks their exits."""

    def __init__(self, store: Store, oci: OciRuntime, settings: Settings, networks: Networks) -> None:
        self.store = store
        self.oci = oci
        self.settings = settings
        self.networks = networks
        self._locks: dict[str, asyncio.Lock] = {}
        self._sending: dict[str, asyncio.Lock] = {}  # signals being sent (_signal)
        self._exited: dict[str, asyncio.Event] = {}
        self._watchers: set[asyncio.Task[None]] = set()
        self._failures: dict[str, int] = {}  # short runs in a row, for the restart back-off
        self._health: dict[str, types_pb2.Health] = {}  # of the running containers with a healthcheck
        self._checkers: dict[str, asyncio.Task[None]] = {}

    def bundle(self, cid: str) -> Bundle:
        """The container's bundle directory and the paths in it."""
        return Bundle(self.settings.bundles / cid)

    def _lock(self, cid: str) -> asyncio.Lock:
        return self._locks.setdefault(cid, asyncio.Lock())

    def _event(self, cid: str) -> asyncio.Event:
        return self._exited.setdefault(cid, asyncio.Event())

    # -- create ---------------------------------------------------------------------------------

    async def create(self, cid: str, name: str, cspec: runtime_pb2.ContainerSpec) -> Container:
        """Records a container and writes its bundle; nothing runs yet."""
        names.check_id(cid)
        name = names.check_name(name) if name else self._free_name()
        _check_spec(cspec)
        cspec.cgroup_parent = cgroups.check_container_parent(cspec.cgroup_parent)
        restarts.check(cspec.restart_policy, cspec.auto_remove)
        if self._wants_init(cspec) and not self.settings.init_path:
            raise FailedPrecondition("--init needs the static tini (Debian's tini package), which is not installed")
        host = self.settings.host
        confine.check(cspec.security, host.held_caps, host.limits)
        remapped = confine.remapping(cspec.security, self.settings.remap, self.networks.resolve(cspec.network)[0] == HOST)
        sharing.check(cspec, lambda ref: self.store.find(ref).id, remapped is not None)
        await asyncio.to_thread(confine.gather_devices, cspec.security)  # a missing device fails now
        await asyncio.to_thread(usermounts.check, cspec.mounts)  # so does a missing bind source
        self.networks.check(cspec)
        c = Container(id=cid, name=name, spec=cspec, state=CREATED, created_at=_now())
        bundle = self.bundle(cid)
        if bundle.path.exists():
            raise FailedPrecondition(f"bundle for {cid} already exists")
        perms.traversable(bundle.path, self._traverse_gid())
        try:
            hostname = spec.hostname_of(cid, cspec)
            perms.public_file(bundle.hostname, hostname + "\n")  # /etc/hosts is the network's, written at start
            self.store.insert(c, events.container(c, "create"))
        except BaseException:
            shutil.rmtree(bundle.path, ignore_errors=True)
            raise
        self._exited[cid] = asyncio.Event()
        log.info("container_created", container=cid[:12], name=name)
        return c

    def _traverse_gid(self) -> int | None:
        """The group that may traverse bundles (a remapped container's root must reach its rootfs)."""
        return self.settings.remap.gid if self.settings.remap else None

    def _free_name(self) -> str:
        return names.free({c.name for c in self.store.list()})

    # -- start ----------------------------------------------------------------------------------

    async def start(
        self, cid: str, rootfs: Sequence[types_pb2.Mount], on_created: OnCreated | None = None, restart: bool = False
    ) -> Container:
        """Starts a created or exited container on the root filesystem ``rootfs`` (storage's mounts for
        this start); returns it running, or exited if it could not run.

        ``on_created`` runs between the runtime's create and start, with the bundle dir: an attach
        made there sees every byte of output. ``restart``: this start ends a restart (its event says so).
        """
        if not rootfs:
            raise InvalidArgument("a root filesystem mount is required")
        async with self._lock(cid):
            c = self.store.get(cid)
            if c.state == RUNNING:
                raise FailedPrecondition(f"container {c.name} is already running")
            await self._forget_runtime_state(cid)
            try:
                # address and host ports first: a refusal (port in use) must leave nothing behind
                plan = await self.networks.prepare(c)
            except TeuError as exc:
                c.error = exc.message
                self.store.update(c)
                raise
            try:
                return await self._start_planned(c, rootfs, plan, on_created, restart)
            except BaseException:
                await self.networks.release(cid)
                raise

    async def _start_planned(
        self, c: Container, rootfs: Sequence[types_pb2.Mount], plan: Plan, on_created: OnCreated | None, restart: bool
    ) -> Container:
        """The start proper, once the network plan is recorded (the caller releases it on failure)."""
        cid = c.id
        bundle = self.bundle(cid)
        remap = confine.remapping(c.spec.security, self.settings.remap, plan.kind == HOST)
        perms.traversable(bundle.path, remap.gid if remap else None)
        await asyncio.to_thread(mounts.mount_rootfs, rootfs, bundle.rootfs, remap)
        try:
            created = await self._launch(c, bundle, plan, remap)
        except BaseException as exc:
            raise await self._abort_start(c, exc, runtime_created=False) from exc
        if created.pid <= 0:
            return await self._fail_start(c, created.error)
        try:
            # the namespaces exist, the process has not started: it finds its network ready, and an
            # attach made now sees every byte of output
            await self.networks.attach(cid, created.pid, plan)
            for endpoint in c.spec.endpoints:  # network connect's, kept in the spec
                await self.networks.connect(c, created.pid, endpoint)
            if on_created is not None:
                await on_created(bundle)
        except BaseException as exc:
            raise await self._abort_start(c, exc, runtime_created=True) from exc
        started_at = _now()
        try:
            await self.oci.start(cid)
        except TeuError as exc:
            await self.oci.delete(cid, force=True)
            return await self._fail_start(c, exc.message)
        first = c.started_at == 0
        c.state, c.pid, c.monitor_pid = RUNNING, created.pid, conmon.monitor_pid(bundle)
        c.started_at, c.finished_at, c.exit_code, c.oom_killed, c.error = started_at, 0, 0, False, ""
        c.restart_count += 0 if first else 1
        c.stopped_by_user = False
        told = [*events.volumes(c, "mount"), events.container(c, "start"), *([events.container(c, "restart")] if restart else [])]
        self.store.update(c, *told)
        self.store.set_rootfs(cid, rootfs)
        if self._event(cid).is_set():  # a waiter from before this start keeps its event: it wakes at this exit
            self._exited[cid] = asyncio.Event()
        self._watch(cid, c.monitor_pid)
        self._check_health(c)
        log.info("container_started", container=cid[:12], pid=c.pid, monitor=c.monitor_pid)
        return c

    async def _launch(self, c: Container, bundle: Bundle, plan: Plan, remap: IdMap | None) -> conmon.Created:
        user = await asyncio.to_thread(users.resolve_in_rootfs, c.spec.process.user, bundle.rootfs, c.spec.group_add)
        await asyncio.to_thread(usermounts.prepare, c.spec.mounts)
        donors = self._donors(c.spec)
        if c.spec.ipc == "shareable":
            await asyncio.to_thread(mounts.mount_shm, bundle.shm, c.spec.shm_size or spec.SHM_SIZE)
        shm = sharing.shm_source(c.spec, bundle.shm, {cid: self.bundle(cid).shm for cid in donors})
        shared = spec.Shared(sharing.namespaces(c.spec, donors, plan.kind == HOST), shm)
        if donor := donors.get(sharing.joined(c.spec.network)):
            binds, shared = self._donor_files(donor.id), dataclasses.replace(shared, hostname=self._hostname(donor.id))
        else:
            binds = self.networks.write_files(plan, c, bundle)
        devices = await asyncio.to_thread(confine.gather_devices, c.spec.security)
        init = self.settings.init_path if self._wants_init(c.spec) else ""
        probed = self.settings.busybox if c.spec.healthcheck.test else ""
        cgroups_path = cgroups.container_path(self.settings.cgroup_parent, c.spec.cgroup_parent, c.id)
        doc = spec.build(c.id, c.spec, user, self.settings.host, binds, cgroups_path=cgroups_path,
                         shared=shared, devices=devices, remap=remap, init=init, prober=probed)  # fmt: skip
        bundle.config.write_text(json.dumps(doc))
        return await conmon.launch(self._monitor(c, bundle, c.spec.process))

    def _wants_init(self, cspec: runtime_pb2.ContainerSpec) -> bool:
        """--init, or the engine's default when the container does not say."""
        return cspec.init if cspec.HasField("init") else self.settings.init_default

    def _donors(self, cspec: runtime_pb2.ContainerSpec) -> dict[str, sharing.Donor]:
        """The running containers whose namespaces ``cspec`` joins, by id (one not running is left
        out: sharing.namespaces then refuses the start)."""
        out = {}
        for mode in (cspec.network, cspec.ipc, cspec.pid):
            cid = sharing.joined(mode)
            if not cid:
                continue
            try:
                d = self.store.get(cid)
            except NotFound:
                continue
            if d.state == RUNNING and d.pid > 0:
                out[cid] = sharing.Donor(d.id, d.name, d.pid, d.spec.ipc)
        return out

    def _donor_files(self, cid: str) -> dict[str, str]:
        """The hostname, hosts and resolv.conf files of a container whose network another joins."""
        b = self.bundle(cid)
        files = {"/etc/hostname": b.hostname, "/etc/hosts": b.hosts, "/etc/resolv.conf": b.resolv_conf}
        return {dst: str(src) for dst, src in files.items() if src.exists()}

    def _hostname(self, cid: str) -> str:
        return spec.hostname_of(cid, self.store.get(cid).spec)

    def _monitor(self, c: Container, bundle: Bundle, proc: types_pb2.Process) -> conmon.Launch:
        """What conmon needs to run ``proc`` of container ``c`` (its main process or an exec)."""
        return conmon.Launch(conmon=self.settings.conmon, runtime=self.oci.path, runtime_root=self.oci.root, cid=c.id,
                             name=c.name, bundle=bundle, log_path=c.spec.log_path, terminal=proc.terminal,
                             stdin=proc.open_stdin, log_size_max=c.spec.log_size_max)  # fmt: skip

    async def _abort_start(self, c: Container, exc: BaseException, runtime_created: bool) -> BaseException:
        """Undoes a start that failed after the mount (runtime state, mount), records why, and returns
        the error to raise: Teu errors as they are, anything else as Internal with its message."""
        if runtime_created:
            await self.oci.delete(c.id, force=True)
        await asyncio.to_thread(self.bundle(c.id).unmount_all)
        err: BaseException
        if isinstance(exc, TeuError):
            c.error, err = exc.message, exc
        elif isinstance(exc, Exception):
            c.error = f"starting the container failed: {exc}"
            err = Internal(c.error)
        else:
            c.error, err = "the start was cancelled", exc
        self.store.update(c)
        log.warning("start_aborted", container=c.id[:12], error=c.error)
        return err

    async def _fail_start(self, c: Container, error: str) -> Container:
        await asyncio.to_thread(self.bundle(c.id).unmount_all)
        await self.networks.release(c.id)
        c.state, c.exit_code, c.error, c.finished_at, c.pid = EXITED, spec.exit_code_for_start_error(error), error, _now(), 0
        self.store.update(c, *events.died(c))
        self._event(c.id).set()
        log.info("container_start_failed", container=c.id[:12], error=error, exit_code=c.exit_code)
        return c

    async def _forget_runtime_state(self, cid: str) -> None:
        """``<runtime> delete`` if the runtime still knows ``cid`` (normally already done at exit),
        then the cgroups a create cut short left where the runtime cannot see them."""
        if self.oci.knows(cid):
            await self.oci.delete(cid, force=True)
        try:
            own = self.store.get(cid).spec.cgroup_parent
            left = await asyncio.to_thread(cgroups.remove_leftovers, cid, self.settings.cgroup_parent, own)
        except OSError as exc:
            raise Internal(f"cannot remove the cgroups of container {cid[:12]}: {exc}") from exc
        if left:
            raise Internal(f"cannot remove the cgroups of container {cid[:12]}: {', '.join(map(str, left))} stay busy")

    # -- exec -----------------------------------------------------------------------------------

    async def exec(self, cid: str, proc: types_pb2.Process, size: tuple[int, int] | None) -> execs.Session:
        """Starts an exec session in a running container, connected before its process runs."""
        c = self.store.get(cid)
        if c.state != RUNNING:
            raise FailedPrecondition(f"container {c.name} is not running")
        if not proc.args:
            raise InvalidArgument("no command specified")
        bundle = self.bundle(cid)
        user = await asyncio.to_thread(users.resolve_in_rootfs, proc.user or c.spec.process.user, bundle.rootfs, c.spec.group_add)
        sid = secrets.token_hex(32)
        doc = spec.exec_process(cid, c.spec, proc, user, self.settings.host)
        edir = bundle.session(sid)
        session = await execs.launch(execs.argv(self._monitor(c, bundle, proc), sid, edir), edir, doc, sid, size)
        record = runtime_pb2.ExecSession(id=sid, args=list(proc.args), running=session.pid > 0, pid=max(session.pid, 0),
                                         terminal=proc.terminal)  # fmt: skip
        told = [events.container(c, events.exec_action(kind, proc.args), execID=sid) for kind in ("exec_create", "exec_start")]
        if session.error:
            record.exit_code = spec.exit_code_for_start_error(session.error)
            told.append(events.container(c, "exec_die", execID=sid, exitCode=str(record.exit_code)))
        self.store.save_exec(cid, record, *told)
        log.info("exec_started", container=cid[:12], exec_id=sid[:12], pid=session.pid, error=session.error)
        return session

    async def copy_to(self, cid: str, path: str, chunks: AsyncIterator[bytes]) -> int:
        """Extracts a tar stream into directory ``path`` of a running container (chrooted into its
        root filesystem, see :mod:`teu_runtime.copyin`); returns the members extracted."""
        c = self.store.get(cid)
        if c.state != RUNNING:
            raise FailedPrecondition(f"container {c.name} is not running")
        if c.spec.security.read_only:
            raise FailedPrecondition(f"container {c.name}'s root filesystem is marked read-only")
        mapping = await asyncio.to_thread(copyin.id_mapping, c.pid)
        files = await copyin.copy_into(self.bundle(cid).rootfs, path, chunks, mapping)
        log.info("copied_into_container", container=cid[:12], path=path, files=files)
        return files

    def reopen_log(self, cid: str) -> bool:
        """Asks the container's conmon to reopen its log file; False when no conmon listens."""
        self.store.get(cid)  # NotFound for an unknown container
        reopened = attach.reopen_log(self.bundle(cid).ctl)
        log.info("log_reopen_asked", container=cid[:12], reopened=reopened)
        return reopened

    def exec_ended(self, cid: str, sid: str, exit_code: int) -> None:
        """Records the end of an exec session."""
        for record in self.store.execs_of(cid):
            if record.id == sid and record.running:
                record.running, record.exit_code, record.pid = False, exit_code, 0
                told = events.container(self.store.get(cid), "exec_die", execID=sid, exitCode=str(exit_code))
                self.store.save_exec(cid, record, told)

    def describe(self, c: Container, execs: list[runtime_pb2.ExecSession] | None = None) -> Container:
        """The container record with its exec sessions (``execs`` when the caller loaded them already)
        and network attachment."""
        c.execs.extend(self.store.execs_of(c.id) if execs is None else execs)
        if c.state == RUNNING and (attachment := self.networks.attachment(c)) is not None:
            c.network.CopyFrom(attachment)
            c.connected.extend(self.networks.connected(c))
            if (h := self._health.get(c.id)) is not None:
                c.health.CopyFrom(h)
        if c.state != RUNNING:
            c.ClearField("health")  # kept for the next start of this service, shown only while it runs
            c.connected.extend(self.networks.endpoints(c))
        return c

    # -- network connect / disconnect -----------------------------------------------------------

    async def connect(self, ref: str, network: str, ip: str, aliases: Sequence[str]) -> types_pb2.NetworkAttachment:
        """Connects container ``ref`` to one more network: at once if it runs, and at each of its
        starts until it is disconnected (Docker keeps a container's endpoints)."""
        cid = self.store.find(ref).id
        async with self._lock(cid):
            c = self.store.get(cid)
            endpoint = self.networks.endpoint(c, network, ip, aliases)
            if c.state == RUNNING:
                view = await self.networks.connect(c, c.pid, endpoint)
            else:
                view = types_pb2.NetworkAttachment(network=self.networks.resolve(network)[0], aliases=aliases)
            c.spec.endpoints.append(endpoint)
            self.store.update_spec(cid, c.spec)
            return view

    async def disconnect(self, ref: str, network: str, force: bool) -> None:
        """Disconnects container ``ref`` from a network it was connected to (now, if it runs, and
        for its next starts)."""
        cid = self.store.find(ref).id
        async with self._lock(cid):
            c = self.store.get(cid)
            name, record = self.networks.resolve(network)
            kept = [e for e in c.spec.endpoints if record is None or e.network != record.id]
            configured = len(kept) != len(c.spec.endpoints)
            if c.state == RUNNING:
                await self.networks.disconnect(c, network, force or configured)
            elif not configured and not force:
                if record is not None and self.networks.resolve(c.spec.network)[0] == record.name:
                    raise FailedPrecondition(
                        f"container {c.name} is created on network {name}: it cannot be disconnected from it"
                    )
                raise NotFound(f"container {c.name} is not connected to network {name}")
            if configured:
                del c.spec.endpoints[:]
                c.spec.endpoints.extend(kept)
                self.store.update_spec(cid, c.spec)

    # -- exits ----------------------------------------------------------------------------------

    def _watch(self, cid: str, pid: int) -> None:
        self.background(self._wait_exit(cid, pid))

    def background(self, work: Coroutine[Any, Any, Any]) -> None:
        """Runs ``work`` in the background, kept alive until it ends (cancelled by close)."""
        task = asyncio.create_task(work)
        self._watchers.add(task)
        task.add_done_callback(self._watchers.discard)

    async def _wait_exit(self, cid: str, pid: int) -> None:
        try:
            await _pid_exit(pid)
            await self._finish(cid)
        except Exception:
            log.exception("exit_watch_failed", container=cid[:12])

    async def _finish(self, cid: str) -> None:
        """Records the exit reported by conmon, wakes the waiters, then releases the runtime state and
        mounts (still under the lock, so a start or delete that follows finds them released; should this
        process die in between, start and delete release them too)."""
        async with self._lock(cid):
            try:
                c = self.store.get(cid)
            except NotFound:
                return
            if c.state != RUNNING:
                return
            bundle = self.bundle(cid)
            status = conmon.exit_status(bundle)
            if status is None:
                c.exit_code, c.oom_killed, c.error = LOST_EXIT, False, "exit status lost: the container's monitor was killed"
            else:
                c.exit_code, c.oom_killed = status
            exit_file = bundle.exit_file
            # the file's mtime says when it exited even if we learn it late (after a restart); the
            # kernel stamps files with a coarse clock, so never let it precede the start
            c.finished_at = max(exit_file.stat().st_mtime_ns if exit_file.exists() else _now(), c.started_at)
            c.state, c.pid, c.monitor_pid, c.paused = EXITED, 0, 0, False
            async with self._signalling(cid):  # a kill being told is told first, as Docker orders them
                pass
            self.store.update(c, *events.died(c, await self._oom_told(c)), *events.volumes(c, "unmount"))
            self._forget_health(cid)
            # before waking the waiters: a stop or run --rm that returns has its ports free again
            await self._release_network(cid)
            self._event(cid).set()
            log.info("container_exited", container=cid[:12], exit_code=c.exit_code, oom=c.oom_killed)
            # side by side: the runtime's delete leaves the root filesystem alone, and the unmount is
            # lazy (a process the delete has yet to kill, in a shared PID namespace, keeps its view)
            await asyncio.gather(self.oci.delete(cid, force=True), asyncio.to_thread(bundle.unmount_all))
        self._plan_restart(c)

    async def _oom_told(self, c: Container) -> bool:
        """Whether the kernel's report of an OOM kill in this run of ``c`` was recorded (by the OOM
        watcher, which reads the kernel's log: the report precedes the kill, but the watcher may not
        have had its turn yet)."""
        if not c.oom_killed:
            return False
        for _ in range(10):
            if self.store.get(c.id).last_oom.time_unix_nano >= c.started_at:
                return True
            await asyncio.sleep(0.01)
        return False

    async def oom_killed(self, kill: oomwatch.Kill, mark: tuple[str, str]) -> None:
        """Records the kernel's report of an OOM kill (oomwatch.py) of a process of one of this
        runtime's containers, with ``mark``, how far the kernel's log was read."""
        try:
            c = self.store.get(kill.container)
        except NotFound:
            return  # another engine's container
        self.store.record_oom(c.id, kill.report, mark, events.oom(c, kill.report))
        r = kill.report
        log.warning("oom_kill", container=c.id[:12], limit=r.limit, pid=r.pid, command=r.command, usage=r.usage_bytes)

    # -- healthchecks ---------------------------------------------------------------------------

    def _check_health(self, c: Container, resume: bool = False) -> None:
        """Starts the healthchecks of a running container that has one (health.py): from "starting"
        at its start; with ``resume`` (this service started again while it runs), from the health the
        store kept, as Docker keeps it across a restart of dockerd."""
        if not c.spec.healthcheck.test or c.id in self._checkers:
            return
        if resume and c.health.status:
            self._health[c.id] = types_pb2.Health()
            self._health[c.id].CopyFrom(c.health)
        else:
            self._health[c.id] = types_pb2.Health(status=health.STARTING)
            self.store.record_health(c.id, self._health[c.id])
        self._checkers[c.id] = asyncio.create_task(self._health_loop(c.id, c.started_at))

    def _forget_health(self, cid: str) -> None:
        if (task := self._checkers.pop(cid, None)) is not None:
            task.cancel()
        self._health.pop(cid, None)

    async def _health_loop(self, cid: str, started_ns: int) -> None:
        """Checks, at the intervals health.py says, until the container stops running. A check reads
        only the container's state from the store: the whole record is read when the prober starts
        and when the status changes."""
        probe: prober.Prober | None = None
        try:
            await asyncio.to_thread(prober.end_leftovers, self.bundle(cid))
            cfg = self.store.get(cid).spec.healthcheck
            while (h := self._health.get(cid)) is not None:
                await asyncio.sleep(health.next_check_ns(h, cfg, started_ns, _now()) / 1e9)
                state, paused = self.store.state(cid)
                if state != RUNNING or cid not in self._health:
                    return
                if paused:
                    continue
                probe, result = await self._health_check(cid, cfg, probe)
                if result is None:
                    return
                before = h.status
                health.record(h, result, cfg, started_ns)
                if h.status != before:
                    c = self.store.get(cid)
                    self.store.record_health(cid, h, events.container(c, f"health_status: {h.status}"))
                    log.info("health_status", container=cid[:12], status=h.status, exit_code=result.exit_code)
                    if h.status == health.UNHEALTHY and c.spec.health_on_failure == "restart":
                        log.warning("unhealthy_killed", container=cid[:12], policy=c.spec.restart_policy.name or "no")
                        await self._signal(c, signals.SIGKILL)  # the restart policy decides
        except NotFound:
            return
        except Exception:
            log.exception("health_check_failed", container=cid[:12])
        finally:
            if probe is not None:
                await probe.close()
            if self._checkers.get(cid) is asyncio.current_task():
                del self._checkers[cid]

    async def _health_check(
        self, cid: str, cfg: types_pb2.HealthConfig, probe: prober.Prober | None
    ) -> tuple[prober.Prober | None, types_pb2.HealthResult | None]:
        """One check of container ``cid`` through its prober, started first if it has none. A prober
        that cannot start or fails is closed (the next check starts another) and the check fails,
        saying why; no result if that is because the container's process is gone (it is stopping)."""
        start = _now()
        try:
            if probe is None:
                if not self.settings.busybox:
                    raise prober.ProberGone("healthchecks need a static busybox on the host (Debian's busybox-static)")
                c, bundle = self.store.get(cid), self.bundle(cid)
                user = await asyncio.to_thread(users.resolve_in_rootfs, c.spec.process.user, bundle.rootfs, c.spec.group_add)
                doc = spec.exec_process(cid, c.spec, types_pb2.Process(args=["sh"]), user, self.settings.host)
                launch = self._monitor(c, bundle, types_pb2.Process(open_stdin=True))
                probe = await prober.Prober.start(launch, bundle, doc, health.argv(cfg))
            return probe, await probe.check(cfg.timeout_ns or health.DEFAULT_TIMEOUT)
        except (prober.ProberGone, TimeoutError, OSError, Internal) as exc:
            if probe is not None:
                await probe.close()
            if not _alive(self.store.get(cid).pid):
                return None, None
            log.warning("prober_failed", container=cid[:12], error=str(exc))
            said = f"the healthcheck did not run: {exc}"
            return None, types_pb2.HealthResult(start=start, end=_now(), exit_code=-1, output=said)

    # -- restart policies -----------------------------------------------------------------------

    def _plan_restart(self, c: Container, engine_start: bool = False) -> None:
        """Starts ``c`` again after the back-off if its restart policy says so (restarts.py)."""
        if not restarts.wanted(c.spec.restart_policy, c.exit_code, c.restart_count, c.stopped_by_user, engine_start):
            self._failures.pop(c.id, None)
            return
        if c.started_at and c.finished_at - c.started_at >= restarts.STEADY * 1e9:
            self._failures[c.id] = 0  # it ran long enough: the back-off starts over
        failures = self._failures.get(c.id, 0)
        self._failures[c.id] = failures + 1
        delay = 0.0 if engine_start else restarts.delay(failures)
        log.info("restart_planned", container=c.id[:12], policy=c.spec.restart_policy.name, delay=delay, restarts=c.restart_count)
        self.background(self._restart_later(c.id, delay, engine_start, c.finished_at))

    async def _restart_later(self, cid: str, delay: float, engine_start: bool, finished_ns: int) -> None:
        """The restart itself, once the back-off counted from the exit (``finished_ns``: the release
        of the runtime state and mounts after it is part of the wait) is over, if it is still wanted
        then (no stop, no start, no removal meanwhile)."""
        await asyncio.sleep(max(0.0, delay - (_now() - finished_ns) / 1e9))
        try:
            c = self.store.get(cid)
        except NotFound:
            return
        still = restarts.wanted(c.spec.restart_policy, c.exit_code, c.restart_count, c.stopped_by_user, engine_start)
        if c.state != EXITED or not c.last_rootfs or not still:
            return
        try:
            started = await self.start(cid, list(c.last_rootfs))
        except TeuError as exc:
            log.warning("restart_failed", container=cid[:12], error=exc.message)
            started = self.store.get(cid)
        except NotFound:
            return
        if started.state != RUNNING:  # its process could not run: the policy decides again
            self._plan_restart(started)

    async def wait(self, cid: str) -> Container:
        """Blocks until the container is not running (created containers wait for a run)."""
        c = self.store.get(cid)
        if c.state == EXITED:
            return c
        await self._event(cid).wait()
        return self.store.get(cid)

    # -- signals --------------------------------------------------------------------------------

    async def kill(self, cid: str, sig: int) -> Container:
        """Sends ``sig`` to the container's main process."""
        if not 1 <= sig <= 64:
            raise InvalidArgument(f"invalid signal {sig}")
        c = self.store.get(cid)
        if c.state != RUNNING:
            raise FailedPrecondition(f"container {c.name} is not running")
        if c.paused and sig != signals.SIGKILL:  # SIGKILL reaches a frozen process; others would wait for the thaw
            await self._thaw(c)
        await self.oci.kill(cid, sig)
        self.store.record(events.container(c, "kill", signal=str(sig)))
        return c

    async def stop(self, cid: str, timeout: int, signal_name: str = "") -> Container:
        """Sends the stop signal, waits up to ``timeout`` seconds, then SIGKILL. A stop is the user's:
        the restart policy does not bring the container back (see restarts.py), nor does a pending restart."""
        c = self.store.get(cid)
        if not c.stopped_by_user:
            c.stopped_by_user = True
            self.store.update(c)
        if c.state != RUNNING:
            return c
        if timeout < 0:
            timeout = c.spec.stop_timeout if c.spec.stop_timeout > 0 else DEFAULT_STOP_TIMEOUT
        sig = parse_signal(signal_name or c.spec.stop_signal or "SIGTERM")
        if c.paused:
            await self._thaw(c)
        event = self._event(cid)
        await self._signal(c, sig)
        try:
            await asyncio.wait_for(event.wait(), timeout)
        except TimeoutError:
            log.info("stop_timeout_kill", container=cid[:12], timeout=timeout)
            await self._signal(c, signals.SIGKILL)
            await event.wait()
        stopped = self.store.get(cid)
        self.store.record(events.container(stopped, "stop"))
        return stopped

    async def _signal(self, c: Container, sig: int) -> None:
        """Sends ``sig`` to a container that may have exited meanwhile; the kill event if it was sent
        (before the die event the signal may cause: the exit's record waits for it, see _finish)."""
        async with self._signalling(c.id):
            try:
                if not initsignal.send(c.pid, c.id, sig):
                    await self.oci.kill(c.id, sig)
            except (FailedPrecondition, ProcessLookupError):
                return
            self.store.record(events.container(c, "kill", signal=str(sig)))

    def _signalling(self, cid: str) -> asyncio.Lock:
        """Held while a signal is sent to ``cid`` and its kill event recorded."""
        return self._sending.setdefault(cid, asyncio.Lock())

    # -- pause, rename, processes ----------------------------------------------------------------

    async def pause(self, cid: str) -> Container:
        """Freezes the container's processes; FailedPrecondition unless it runs and is not paused."""
        async with self._lock(cid):
            c = self.store.get(cid)
            if c.state != RUNNING:
                raise FailedPrecondition(f"container {c.name} is not running")
            if c.paused:
                raise FailedPrecondition(f"container {c.name} is already paused")
            await self.oci.pause(cid)
            c.paused = True
            self.store.update(c, events.container(c, "pause"))
            log.info("container_paused", container=cid[:12])
            return c

    async def unpause(self, cid: str) -> Container:
        """Thaws a paused container; FailedPrecondition if it is not paused."""
        async with self._lock(cid):
            c = self.store.get(cid)
            if c.state != RUNNING or not c.paused:
                raise FailedPrecondition(f"container {c.name} is not paused")
            await self._thaw(c)
            return c

    async def _thaw(self, c: Container) -> None:
        """Resumes a paused container and records it (before a signal, which a frozen process would not act on)."""
        await self.oci.resume(c.id)
        c.paused = False
        self.store.update(c, events.container(c, "unpause"))
        log.info("container_unpaused", container=c.id[:12])

    async def update(self, cid: str, resources: types_pb2.Resources, policy: types_pb2.RestartPolicy | None) -> Container:
        """Sets the limits to ``resources`` (the whole set, as the gateway merged and checked it), live
        when the container runs, and the restart policy."""
        async with self._lock(cid):
            c = self.store.get(cid)
            if policy is not None:
                restarts.check(policy, c.spec.auto_remove)
                c.spec.restart_policy.CopyFrom(policy)
            if c.state == RUNNING and resources != c.spec.resources:
                lift = bool(c.spec.resources.pids_limit) and not resources.pids_limit
                await self.oci.update(cid, spec.resources_section(resources, self.settings.host.swap_limit, lift_pids=lift))
            c.spec.resources.CopyFrom(resources)
            self.store.update_spec(cid, c.spec, events.container(c, "update"))
            log.info("container_updated", container=cid[:12])
            return c

    async def rename(self, cid: str, name: str) -> Container:
        """Gives the container another name (Docker's rules for names); AlreadyExists if taken."""
        checked = names.check_name(name)
        async with self._lock(cid):
            c = self.store.get(cid)
            renamed = Container(id=c.id, name=checked, spec=c.spec)
            self.store.rename(cid, checked, events.container(renamed, "rename", oldName=c.name))
            log.info("container_renamed", container=cid[:12], old=c.name, new=checked)
            return self.store.get(cid)

    async def processes(self, cid: str) -> list[int]:
        """Host pids of a running container's processes."""
        c = self.store.get(cid)
        if c.state != RUNNING:
            raise FailedPrecondition(f"container {c.name} is not running")
        return await self.oci.processes(cid)

    # -- delete ---------------------------------------------------------------------------------

    async def delete(self, cid: str, force: bool) -> Container:
        """Forgets a container, killing it first when ``force``; removes its bundle."""
        c = self.store.get(cid)
        if c.state == RUNNING:
            if not force:
                raise FailedPrecondition(f"cannot remove container {c.name}: container is running: stop it first or force remove")
            c.stopped_by_user = True  # no restart between this kill and the removal
            self.store.update(c)
            await self._signal(c, signals.SIGKILL)
            await self._event(cid).wait()
        async with self._lock(cid):
            c = self.store.get(cid)
            bundle = self.bundle(cid)
            await self._forget_runtime_state(cid)
            await self._release_network(cid)
            await asyncio.to_thread(bundle.unmount_all)
            await asyncio.to_thread(shutil.rmtree, bundle.path, True)
            self.store.delete(cid, events.container(c, "destroy"))
        self._locks.pop(cid, None)
        self._sending.pop(cid, None)
        self._event(cid).set()
        self._exited.pop(cid, None)
        self.store.delete_execs(cid)
        log.info("container_deleted", container=cid[:12])
        return c

    # -- restart of this service ----------------------------------------------------------------

    async def reconcile(self, engine_start: bool = False) -> None:
        """Brings the records in line with reality after this service (re)starts, then starts again
        the containers whose restart policy says so (more of them when the engine itself starts:
        an ``always`` container a user stopped comes back then, Docker's rule)."""
        for c in self.store.list():
            event = self._event(c.id)
            if c.state != RUNNING:
                await self._settle_half_start(c)
            if c.state == EXITED:
                event.set()
            elif c.state == RUNNING:
                if c.monitor_pid and conmon.is_monitor(c.monitor_pid, c.id):
                    self._watch(c.id, c.monitor_pid)
                    self._check_health(c, resume=True)
                elif c.pid and _alive(c.pid):
                    log.warning("monitor_lost", container=c.id[:12])
                    self._watch(c.id, c.pid)
                else:
                    await self._finish(c.id)
            self._reconcile_execs(c)
        await self._remove_orphan_bundles()
        for c in self.store.list():
            if c.state == EXITED:
                self._plan_restart(c, engine_start)
        running = {c.id for c in self.store.list() if c.state == RUNNING}
        try:
            await self.networks.reconcile(running)
        except Exception:  # containers run on regardless; the next restart audits again
            log.exception("network_reconcile_failed")
        log.info("reconciled", containers=len(self._exited))

    async def _settle_half_start(self, c: Container) -> None:
        """Settles a start this service died in, for a record that does not say running: if the OCI
        runtime started the process, the record is brought up to date (it runs, or it ran and its exit
        is recorded below), so it is never started a second time; if it did not, what the start left
        (the runtime's state and ``init`` process, the root filesystem mount; conmon then exits too)
        is undone and the record stays created, saying why. The network reconcile frees its network."""
        bundle = self.bundle(c.id)
        if not self.oci.knows(c.id) and not await asyncio.to_thread(mounts.is_mounted, bundle.rootfs):
            return
        found = await self.oci.status(c.id) if self.oci.knows(c.id) else None
        if found is not None and (found[0] == "running" or (found[0] == "stopped" and not self._recorded_exit(c))):
            log.warning("start_completed_after_restart", container=c.id[:12], status=found[0])
            c.state, c.pid, c.monitor_pid = RUNNING, found[1], conmon.monitor_pid(bundle)
            c.started_at, c.finished_at, c.exit_code, c.error = _now(), 0, 0, ""
            self.store.update(c, *events.volumes(c, "mount"), events.container(c, "start"))
            return
        log.warning("start_undone", container=c.id[:12], state=c.state)
        try:
            await self._forget_runtime_state(c.id)
            await asyncio.to_thread(bundle.unmount_all)
        except TeuError as exc:  # the next start or delete tries again
            log.warning("start_undo_failed", container=c.id[:12], error=exc.message)
            return
        if c.state == CREATED and not c.error:
            c.error = "the start was cut short: the runtime service stopped during it"
            self.store.update(c)

    async def _remove_orphan_bundles(self) -> None:
        """Removes bundles with no record: a create cut short between writing the bundle and recording
        the container (nothing of it ever ran, and a repeated create would find the bundle in its way)."""
        known = {c.id for c in self.store.list()}
        try:
            entries = list(os.scandir(self.settings.bundles))
        except FileNotFoundError:
            return
        for entry in entries:
            if entry.is_dir() and is_full_id(entry.name) and entry.name not in known and not self.oci.knows(entry.name):
                bundle = self.bundle(entry.name)
                if not await asyncio.to_thread(mounts.is_mounted, bundle.rootfs):
                    log.warning("orphan_bundle_removed", container=entry.name[:12])
                    await asyncio.to_thread(shutil.rmtree, bundle.path, True)

    def _recorded_exit(self, c: Container) -> bool:
        """Whether an exited record already tells the end of the run the OCI runtime knows (its exit
        was recorded and only the release of the runtime state was cut short), rather than a later
        start cut short: conmon's pidfile, written by each launch, is older than the recorded exit."""
        if c.state != EXITED:
            return False
        try:
            return self.bundle(c.id).conmon_pid.stat().st_mtime_ns <= c.finished_at
        except FileNotFoundError:
            return True

    def _reconcile_execs(self, c: Container) -> None:
        """Exec sessions that ended while this service was down get their exit code from conmon's exit
        file; those still running are watched again."""
        for record in self.store.execs_of(c.id):
            if not record.running:
                continue
            exits = self.bundle(c.id).session(record.id).exit_file(c.id)
            if record.pid and _alive(record.pid):
                self.background(self._exec_exit_later(c.id, record.id, record.pid, exits))
            else:
                self.exec_ended(c.id, record.id, _read_exit(exits))

    async def _exec_exit_later(self, cid: str, sid: str, pid: int, exit_file: Path) -> None:
        await _pid_exit(pid)
        for _ in range(20):  # conmon writes the file just after the process is reaped
            if exit_file.exists():
                break
            await asyncio.sleep(0.1)
        self.exec_ended(cid, sid, _read_exit(exit_file))

    async def _release_network(self, cid: str) -> None:
        """Frees the container's address, ports, veth and rules; a failure is logged, not raised
        (the exit is recorded already, and the next reconcile retries)."""
        try:
            await self.networks.release(cid)
        except Exception:
            log.exception("network_release_failed", container=cid[:12])

    async def close(self) -> None:
        """Stops watching exits and answering DNS (containers keep running)."""
        for task in list(self._watchers):
            task.cancel()
        await self.networks.close()


def _check_spec(s: runtime_pb2.ContainerSpec) -> None:
    if not s.process.args:
        raise InvalidArgument("no command specified")
    if not s.log_path.startswith("/"):
        raise InvalidArgument("log_path must be absolute")
    r = s.resources
    if r.memory_bytes < 0 or r.nano_cpus < 0 or r.pids_limit < 0:
        raise InvalidArgument("resource limits must not be negative")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def _pid_exit(pid: int) -> None:
    """Returns once process ``pid`` (not necessarily a child) has exited."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    try:
        await conmon.wait_readable(fd)
    finally:
        os.close(fd)


def _read_exit(path: Path) -> int:
    """An exit file's code; -1 when it is missing (the code is lost)."""
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return -1
