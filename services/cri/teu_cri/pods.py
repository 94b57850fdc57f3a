"""Pod sandboxes: an infra container per pod, holding its network and IPC namespaces.

The infra container runs the sandbox image (``TEU_CRI_SANDBOX_IMAGE``, containerd's default
``registry.k8s.io/pause:3.9``), on Teu's default bridge network (an address per pod, Teu's port
publishing for the pod's port mappings, Teu's DNS settings) or on the host's. The pod's containers
join it (cri/containers.py). Its state is the pod's: running is READY, anything else NOTREADY.
"""

from __future__ import annotations

import asyncio
import builtins
import os
from collections.abc import Mapping
from dataclasses import dataclass

import structlog

from teu_api.errors import FailedPrecondition, InvalidArgument, NotFound
from teu_api.gateway.v1 import gateway_pb2 as gw
from teu_api.k8s.cri.v1 import api_pb2 as cri
from teu_api.types.v1 import types_pb2
from teu_common.frontdoor import Gateway, call
from teu_cri import cgroups, meta, seccomp

log = structlog.get_logger()

DEFAULT_SANDBOX_IMAGE = "registry.k8s.io/pause:3.9"
RUNNING = types_pb2.CONTAINER_STATE_RUNNING
#: Seconds the infra process gets to end at StopPodSandbox (the pause process ends at SIGTERM).
INFRA_STOP_TIMEOUT = 2
_PROTOCOLS = {cri.TCP: "tcp", cri.UDP: "udp"}


@dataclass(frozen=True)
class Settings:
    """What the CRI service is told by its environment."""

    sandbox_image: str = DEFAULT_SANDBOX_IMAGE

    @classmethod
    def from_env(cls) -> Settings:
        return cls(sandbox_image=os.environ.get("TEU_CRI_SANDBOX_IMAGE", DEFAULT_SANDBOX_IMAGE))


def infra_config(config: cri.PodSandboxConfig, image: str) -> gw.ContainerConfig:
    """The infra container of the pod ``config`` describes (pure)."""
    ns = config.linux.security_context.namespace_options
    host_network = ns.network == cri.NODE
    ports = []
    for p in config.port_mappings:
        if p.protocol not in _PROTOCOLS:
            raise InvalidArgument(f"port mapping protocol {cri.Protocol.Name(p.protocol)} is not supported")
        if p.host_port > 0 and not host_network:
            ports.append(types_pb2.PortMapping(host_ip=p.host_ip, host_port=p.host_port, container_port=p.container_port,
                                               protocol=_PROTOCOLS[p.protocol]))  # fmt: skip
    dns = config.dns_config
    return gw.ContainerConfig(
        image=image,
        name=meta.sandbox_name(config.metadata),
        hostname="" if host_network else config.hostname,
        labels=meta.sandbox_labels(config),
        network="host" if host_network else "",
        ipc="host" if ns.ipc == cri.NODE else "shareable",
        pid="host" if ns.pid == cri.NODE else "",
        userns="host",
        ports=ports,
        dns=list(dns.servers),
        dns_search=list(dns.searches),
        dns_options=list(dns.options),
        sysctls=dict(config.linux.sysctls),
        security_opt=seccomp.options(config.linux.security_context),  # unset: unconfined, as the CRI says
        cgroup_parent=cgroups.pod_parent(config.linux.cgroup_parent),  # the kubelet's pod cgroup (either driver's)
        stop_timeout=INFRA_STOP_TIMEOUT,
    )


class Pods:
    """The pod sandboxes, as infra containers through the gateway."""

    def __init__(self, gateway: Gateway, settings: Settings) -> None:
        self.g, self.settings = gateway, settings

    async def run(self, config: cri.PodSandboxConfig, handler: str) -> str:
        """Creates and starts the pod's infra container; its id is the sandbox's. A failed start
        leaves nothing behind."""
        if handler not in ("", "runc"):
            raise InvalidArgument(f"no runtime handler {handler[:80]!r}: the handlers are '' and 'runc'")
        spec = infra_config(config, self.settings.sandbox_image)
        created = await call(self.g.containers.Create(gw.CreateRequest(config=spec)))
        try:
            await call(self.g.containers.Start(gw.StartRequest(container=created.id)))
        except BaseException:
            await asyncio.shield(self._remove_one(created.id))
            raise
        log.info("pod_started", pod=spec.name, sandbox=created.id[:12])
        return str(created.id)

    async def details(self, sandbox_id: str) -> gw.ContainerDetails:
        """The infra container of pod ``sandbox_id``; NotFound for anything else."""
        return await inspect_kind(self.g, sandbox_id, meta.SANDBOX_KIND, "pod sandbox")

    async def members(self, sandbox_id: str) -> list[gw.ContainerSummary]:
        """The containers of pod ``sandbox_id``."""
        req = gw.ListRequest(all=True, filters=[f"label={meta.SANDBOX}={sandbox_id}"])
        return list((await call(self.g.containers.List(req))).containers)

    async def stop(self, sandbox_id: str) -> None:
        """Stops the pod's containers, then its infra container. Idempotent, as the CRI asks: a pod
        already removed is no error."""
        try:
            d = await self.details(sandbox_id)
        except NotFound:
            return
        for c in await self.members(d.summary.id):
            if c.state == RUNNING:
                await self._stop_one(c.id, 0)
        if d.summary.state == RUNNING:
            await self._stop_one(d.summary.id, INFRA_STOP_TIMEOUT)

    async def remove(self, sandbox_id: str) -> None:
        """Removes the pod's containers and its infra container; a pod already gone is no error."""
        try:
            d = await self.details(sandbox_id)
        except NotFound:
            return
        for c in await self.members(d.summary.id):
            await self._remove_one(c.id, c.labels.get(meta.LOG, ""))
        await self._remove_one(d.summary.id)

    async def _stop_one(self, cid: str, timeout: int) -> None:
        try:
            await call(self.g.containers.Stop(gw.StopRequest(container=cid, timeout_seconds=timeout)))
        except (NotFound, FailedPrecondition):
            pass  # gone, or stopped meanwhile

    async def _remove_one(self, cid: str, log_path: str = "") -> None:
        try:
            await call(self.g.containers.Remove(gw.RemoveRequest(container=cid, force=True)))
        except NotFound:
            pass
        if log_path:
            unlink_log(log_path)

    async def status(self, sandbox_id: str) -> cri.PodSandboxStatus:
        d = await self.details(sandbox_id)
        s = d.summary
        ns = cri.NamespaceOption(
            network=cri.NODE if d.config.network == "host" else cri.POD,
            ipc=cri.NODE if d.config.ipc == "host" else cri.POD,
            pid=cri.NODE if d.config.pid == "host" else cri.CONTAINER,
        )
        ip = d.network.address.split("/")[0] if s.state == RUNNING and d.network.address else ""
        return cri.PodSandboxStatus(
            id=s.id, metadata=meta.sandbox_metadata(s.labels), state=sandbox_state(s), created_at=s.created_at,
            network=cri.PodSandboxNetworkStatus(ip=ip),
            linux=cri.LinuxPodSandboxStatus(namespaces=cri.Namespace(options=ns)),
            labels=meta.user_labels(s.labels), annotations=meta.user_annotations(s.labels), runtime_handler="",
        )  # fmt: skip

    async def summaries(
        self, id_prefix: str, state: cri.PodSandboxState.ValueType | None, selector: Mapping[str, str]
    ) -> builtins.list[gw.ContainerSummary]:
        """The infra containers of the pods whose id starts with ``id_prefix``, in ``state`` (any if
        None), whose labels match ``selector``."""
        req = gw.ListRequest(all=True, filters=[f"label={meta.KIND}={meta.SANDBOX_KIND}"])
        return [
            s
            for s in (await call(self.g.containers.List(req))).containers
            if s.id.startswith(id_prefix) and (state is None or sandbox_state(s) == state) and meta.selected(s.labels, selector)
        ]

    async def select(self, f: cri.PodSandboxFilter) -> builtins.list[cri.PodSandbox]:
        out = []
        for s in await self.summaries(f.id, f.state.state if f.HasField("state") else None, f.label_selector):
            labels, notes = meta.user_labels(s.labels), meta.user_annotations(s.labels)
            out.append(cri.PodSandbox(id=s.id, metadata=meta.sandbox_metadata(s.labels), state=sandbox_state(s),
                                      created_at=s.created_at, labels=labels, annotations=notes))  # fmt: skip
        return out


async def inspect_kind(g: Gateway, ref: str, kind: str, what: str) -> gw.ContainerDetails:
    """The Teu container ``ref`` if the CRI made it as ``kind`` ("sandbox", "container"); NotFound,
    naming it ``what``, for anything else."""
    try:
        d = (await call(g.containers.Inspect(gw.InspectRequest(container=ref)))).container
    except NotFound:
        raise NotFound(f"{what} {ref[:64]} not found") from None
    if meta.kind(d.summary.labels) != kind:
        raise NotFound(f"{what} {ref[:64]} not found")
    return d


def sandbox_state(s: gw.ContainerSummary) -> cri.PodSandboxState.ValueType:
    """READY while the infra container runs."""
    return cri.SANDBOX_READY if s.state == RUNNING else cri.SANDBOX_NOTREADY


def unlink_log(path: str) -> None:
    """Removes the container's log at the kubelet's path (a second name of Teu's file, or a link to it);
    what the kubelet renamed away (rotated logs) is the kubelet's."""
    try:
        if os.path.islink(path) or os.path.isfile(path):
            os.unlink(path)
    except OSError as exc:
        log.warning("log_link_remove_failed", path=path, error=str(exc))
