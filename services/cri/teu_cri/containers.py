"""A pod's containers: Teu containers that join their pod's infra container's namespaces.

The kubelet reads a container's log at the path it chose (the pod's log directory + the container's
log path). conmon writes Teu's log in the CRI's own format already (k8s-file); the kubelet's path is
a symbolic link to it, made at create and removed with the container.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import time
from collections.abc import Mapping

from teu_api.errors import DeadlineExceeded, FailedPrecondition, InvalidArgument, NotFound, TeuError
from teu_api.gateway.v1 import gateway_pb2 as gw
from teu_api.k8s.cri.v1 import api_pb2 as cri
from teu_api.types.v1 import types_pb2
from teu_common.frontdoor import Gateway, call
from teu_common.gatewaystreams import Frames, exec_requests, output_frames
from teu_cri import meta, seccomp
from teu_cri.pods import RUNNING, Pods, inspect_kind, unlink_log

_PROPAGATION = {cri.PROPAGATION_PRIVATE: "rprivate", cri.PROPAGATION_HOST_TO_CONTAINER: "rslave",
                cri.PROPAGATION_BIDIRECTIONAL: "rshared"}  # fmt: skip
_CRI_PROPAGATION = {teu: kind for kind, teu in _PROPAGATION.items()}
#: Most output ExecSync keeps of each stream (the kubelet's probes read a little).
MAX_EXEC_OUTPUT = 16 << 20
#: Teu's rotation size for the logs a kubelet rotates itself (Teu's largest: its rotation never comes first).
KUBELET_ROTATES = "1024g"
#: Seconds a start waits for conmon's log file to appear.
LOG_FILE_WAIT = 2.0
#: Seconds an ExecSync past its timeout waits for its killed process's exit.
KILL_WAIT = 5
#: Largest seccomp profile file read.


def _namespace(mode: cri.NamespaceMode.ValueType, sandbox_id: str, target: str, what: str) -> str:
    if mode == cri.NODE:
        return "host"
    if mode == cri.POD:
        return f"container:{sandbox_id}"
    if mode == cri.TARGET:
        if not target:
            raise InvalidArgument(f"the {what} namespace mode TARGET needs a target id")
        return f"container:{target}"
    return ""


def _user(sc: cri.LinuxContainerSecurityContext) -> str:
    user = str(sc.run_as_user.value) if sc.HasField("run_as_user") else sc.run_as_username
    if sc.HasField("run_as_group"):
        if not user:
            raise InvalidArgument("run_as_group needs run_as_user or run_as_username")
        return f"{user}:{sc.run_as_group.value}"
    return user


def _resources(r: cri.LinuxContainerResources) -> types_pb2.Resources:
    return types_pb2.Resources(memory_bytes=r.memory_limit_in_bytes, cpu_shares=r.cpu_shares, cpu_period=r.cpu_period,
                               cpu_quota=r.cpu_quota, cpuset_cpus=r.cpuset_cpus,
                               memory_swap=r.memory_swap_limit_in_bytes)  # fmt: skip


def container_config(sandbox: gw.ContainerDetails, config: cri.ContainerConfig, log_path: str) -> gw.ContainerConfig:
    """The Teu container of ``config`` in the pod whose infra container is ``sandbox`` (pure)."""
    if not config.image.image:
        raise InvalidArgument("the container's image is required")
    sid = sandbox.summary.id
    sc = config.linux.security_context
    ns = sc.namespace_options
    security = []
    if sc.no_new_privs:
        security.append("no-new-privileges")
    if not sc.privileged:
        security.extend(seccomp.options(sc))
    mounts = []
    for m in config.mounts:
        if not m.container_path or not m.host_path:
            raise InvalidArgument("a mount needs a container path and a host path")
        mounts.append(gw.MountSpec(type="bind", source=m.host_path, target=m.container_path, read_only=m.readonly,
                                   propagation=_PROPAGATION.get(m.propagation, "rprivate"), create_host_path=True))  # fmt: skip
    out = gw.ContainerConfig(
        image=config.image.image,
        name=meta.container_name(config.metadata, sid),
        cmd=list(config.args),
        env=[f"{kv.key}={kv.value}" for kv in config.envs],
        working_dir=config.working_dir,
        user=_user(sc),
        labels=meta.container_labels(sid, config, log_path),
        tty=config.tty,
        open_stdin=config.stdin,
        network="host" if sandbox.config.network == "host" else f"container:{sid}",
        ipc="host" if sandbox.config.ipc == "host" else f"container:{sid}",
        pid=_namespace(ns.pid, sid, ns.target_id, "PID"),
        userns="host",
        cgroup_parent=sandbox.config.cgroup_parent,  # the pod's, as containerd puts them
        mounts=mounts,
        privileged=sc.privileged,
        read_only=sc.readonly_rootfs,
        cap_add=list(sc.capabilities.add_capabilities),
        cap_drop=list(sc.capabilities.drop_capabilities),
        group_add=[str(g) for g in sc.supplemental_groups],
        security_opt=security,
        resources=_resources(config.linux.resources),
        # the kubelet rotates a CRI container's log (ReopenContainerLog): Teu's own rotation would take
        # the file from under its name
        log_opts={"max-size": KUBELET_ROTATES} if log_path else {},
        oom_score_adj=int(config.linux.resources.oom_score_adj),
    )
    if config.command:
        out.entrypoint.values.extend(config.command)
        out.entrypoint.SetInParent()
    if sc.masked_paths:  # the kubelet sends the defaults it wants (none when unset: the engine's apply)
        out.masked_paths.values.extend(sc.masked_paths)
    if sc.readonly_paths:
        out.readonly_paths.values.extend(sc.readonly_paths)
    return out


class Containers:
    """The pods' containers, through the gateway."""

    def __init__(self, gateway: Gateway, pods: Pods) -> None:
        self.g, self.pods = gateway, pods

    async def create(self, sandbox_id: str, config: cri.ContainerConfig) -> str:
        sandbox = await self.pods.details(sandbox_id)
        if sandbox.summary.state != RUNNING:
            raise FailedPrecondition(f"pod sandbox {sandbox_id[:12]} is not ready")
        log_dir = sandbox.summary.labels.get(meta.LOG, "")
        log_path = os.path.join(log_dir, config.log_path) if log_dir and config.log_path else ""
        created = await call(self.g.containers.Create(gw.CreateRequest(config=container_config(sandbox, config, log_path))))
        return str(created.id)

    async def details(self, cid: str) -> gw.ContainerDetails:
        """The pod container ``cid``; NotFound for anything else."""
        return await inspect_kind(self.g, cid, meta.CONTAINER_KIND, "container")

    async def running(self, cid: str) -> str:
        """The full id of pod container ``cid``; FailedPrecondition unless it runs."""
        d = await self.details(cid)
        if d.summary.state != RUNNING:
            raise FailedPrecondition(f"container {cid[:12]} is not running")
        return str(d.summary.id)

    async def update_resources(self, cid: str, resources: cri.LinuxContainerResources) -> None:
        """The container's limits as the kubelet now wants them (in place, through the gateway's update);
        a value left 0 keeps the one in force."""
        d = await self.details(cid)
        await call(self.g.containers.Update(gw.UpdateRequest(container=d.summary.id, resources=_resources(resources))))

    async def start(self, cid: str) -> None:
        """Starts the container; its log is at the kubelet's path when this returns."""
        d = await self.details(cid)
        await call(self.g.containers.Start(gw.StartRequest(container=d.summary.id)))
        if path := d.summary.labels.get(meta.LOG, ""):
            await asyncio.to_thread(link_log, path, d.log_path)

    async def reopen_log(self, cid: str) -> None:
        """The kubelet renamed the container's log away: a new file at its path, the old one left as it is
        (the container writes only the new one from now on)."""
        d = await self.details(cid)
        if d.summary.state != RUNNING:
            raise FailedPrecondition(f"container {cid[:12]} is not running")
        path = d.summary.labels.get(meta.LOG, "")
        if not path:
            raise FailedPrecondition(f"container {cid[:12]} was created without a log path")
        rotated = await call(self.g.containers.RotateLog(gw.RotateLogRequest(container=d.summary.id)))
        await asyncio.to_thread(link_log, path, rotated.path)

    async def stop(self, cid: str, timeout: int) -> None:
        """Stops the container: its stop signal, SIGKILL after ``timeout`` seconds (at once for 0)."""
        d = await self.details(cid)
        if d.summary.state != RUNNING:
            return
        cid = d.summary.id
        with contextlib.suppress(FailedPrecondition):  # it stopped meanwhile
            if timeout > 0:
                await call(self.g.containers.Stop(gw.StopRequest(container=cid, timeout_seconds=timeout)))
                return
            # no time given: SIGKILL at once (containerd's reading), then its exit
            await call(self.g.containers.Kill(gw.KillRequest(container=cid, signal="KILL")))
        await call(self.g.containers.Wait(gw.WaitRequest(container=cid, condition="not-running")))

    async def remove(self, cid: str) -> None:
        """Removes the container (running or not) and the kubelet's link to its log; one already
        gone is no error."""
        try:
            d = await self.details(cid)
        except NotFound:
            return
        with contextlib.suppress(NotFound):
            await call(self.g.containers.Remove(gw.RemoveRequest(container=d.summary.id, force=True)))
        if path := d.summary.labels.get(meta.LOG, ""):
            unlink_log(path)

    async def status(self, cid: str) -> cri.ContainerStatus:
        d = await self.details(cid)
        s = d.summary
        state = meta.container_state(s.state)
        reason = ""
        if state == cri.CONTAINER_EXITED:
            reason = "OOMKilled" if d.oom_killed else ("Completed" if s.exit_code == 0 else "Error")
        mounts = [
            cri.Mount(
                container_path=m.target,
                host_path=m.source,
                readonly=m.read_only,
                propagation=_CRI_PROPAGATION.get(m.propagation, cri.PROPAGATION_PRIVATE),
            )
            for m in d.config.mounts
        ]
        return cri.ContainerStatus(
            id=s.id, metadata=meta.container_metadata(s.labels), state=state, created_at=s.created_at,
            started_at=s.started_at if state != cri.CONTAINER_CREATED else 0,
            finished_at=s.finished_at if state == cri.CONTAINER_EXITED else 0,
            exit_code=s.exit_code if state == cri.CONTAINER_EXITED else 0,
            image=cri.ImageSpec(image=s.labels.get(meta.IMAGE, s.image)), image_ref=d.image_id,
            reason=reason, message=d.error, labels=meta.user_labels(s.labels), annotations=meta.user_annotations(s.labels),
            mounts=mounts, log_path=s.labels.get(meta.LOG, ""),
        )  # fmt: skip

    async def summaries(
        self, id_prefix: str, sandbox_ref: str, selector: Mapping[str, str], state: cri.ContainerState.ValueType | None = None
    ) -> list[gw.ContainerSummary]:
        """The pods' containers whose id starts with ``id_prefix``, in pod ``sandbox_ref`` (any if
        empty) and ``state`` (any if None), whose labels match ``selector``."""
        filters = [f"label={meta.KIND}={meta.CONTAINER_KIND}"]
        if sandbox_ref:
            sandbox = await self._sandbox_id(sandbox_ref)
            if not sandbox:
                return []
            filters.append(f"label={meta.SANDBOX}={sandbox}")
        listed = (await call(self.g.containers.List(gw.ListRequest(all=True, filters=filters)))).containers
        return [
            s
            for s in listed
            if s.id.startswith(id_prefix)
            and (state is None or meta.container_state(s.state) == state)
            and meta.selected(s.labels, selector)
        ]

    async def select(self, f: cri.ContainerFilter) -> list[cri.Container]:
        state = f.state.state if f.HasField("state") else None
        return [
            cri.Container(
                id=s.id,
                pod_sandbox_id=s.labels.get(meta.SANDBOX, ""),
                metadata=meta.container_metadata(s.labels),
                image=cri.ImageSpec(image=s.labels.get(meta.IMAGE, s.image)),
                image_ref=s.image,
                state=meta.container_state(s.state),
                created_at=s.created_at,
                labels=meta.user_labels(s.labels),
                annotations=meta.user_annotations(s.labels),
            )
            for s in await self.summaries(f.id, f.pod_sandbox_id, f.label_selector, state)
        ]

    async def _sandbox_id(self, ref: str) -> str:
        try:
            return str((await self.pods.details(ref)).summary.id)
        except NotFound:
            return ""

    async def exec_sync(self, cid: str, cmd: list[str], timeout: int) -> cri.ExecSyncResponse:
        """Runs ``cmd`` in the container, its output kept; past ``timeout`` seconds (0: none) the
        process is killed and the answer is DEADLINE_EXCEEDED."""
        if not cmd:
            raise InvalidArgument("a command is required")
        full = await self.running(cid)
        frames: Frames = asyncio.Queue()
        frames.put_nowait(types_pb2.StdinFrame(close_stdin=True))  # no input; the output is wanted whole
        run = asyncio.ensure_future(self._exec(gw.ExecStart(container=full, cmd=cmd), frames))
        try:
            done, _ = await asyncio.wait({run}, timeout=timeout or None)
            if run in done:
                return run.result()
            frames.put_nowait(types_pb2.StdinFrame(signal="KILL"))
            with contextlib.suppress(TimeoutError, TeuError):
                await asyncio.wait_for(asyncio.shield(run), KILL_WAIT)  # its exit, so that nothing of it is left
            raise DeadlineExceeded(f"command {cmd[0][:80]!r} timed out after {timeout}s: it was killed")
        finally:
            frames.put_nowait(None)
            if not run.done():
                run.cancel()
            with contextlib.suppress(asyncio.CancelledError, TeuError):
                await run

    async def _exec(self, start: gw.ExecStart, frames: Frames) -> cri.ExecSyncResponse:
        out = {types_pb2.STREAM_STDOUT: bytearray(), types_pb2.STREAM_STDERR: bytearray()}
        async for frame in output_frames(self.g.containers.Exec(exec_requests(start, frames))):
            if frame.WhichOneof("frame") == "output":
                buf = out.get(frame.output.stream)
                if buf is not None and len(buf) < MAX_EXEC_OUTPUT:
                    buf.extend(frame.output.data[: MAX_EXEC_OUTPUT - len(buf)])
            elif frame.WhichOneof("frame") == "exit":
                stdout, stderr = bytes(out[types_pb2.STREAM_STDOUT]), bytes(out[types_pb2.STREAM_STDERR])
                return cri.ExecSyncResponse(stdout=stdout, stderr=stderr, exit_code=frame.exit.exit_code)
        raise FailedPrecondition(f"the exec in container {start.container[:12]} ended without an exit status")


def link_log(path: str, target: str) -> None:
    """The kubelet's log path as a second name of Teu's current log file (its directory made if missing):
    the kubelet may rename it away and ask for a reopen, and the old file stays whole under its new
    name. On another filesystem, a symbolic link (which follows Teu's current file instead)."""
    os.makedirs(os.path.dirname(path) or "/", exist_ok=True)
    deadline = time.monotonic() + LOG_FILE_WAIT
    while not os.path.exists(target) and time.monotonic() < deadline:  # conmon makes it as it starts
        time.sleep(0.01)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    try:
        os.link(target, path)
    except OSError as exc:
        if exc.errno not in (errno.EXDEV, errno.EPERM):
            raise
        os.symlink(target, path)
