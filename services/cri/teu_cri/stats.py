"""Container and pod stats for a kubelet: the gateway's readings of cgroups, in the CRI's shape.

One reading (the gateway's one-shot) per call: the CRI's cumulative CPU time, memory and working set
need no second one. ``usage_nano_cores`` is left unset (the kubelet derives it from two calls).
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from teu_api.gateway.v1 import gateway_pb2 as gw
from teu_api.k8s.cri.v1 import api_pb2 as cri
from teu_api.types.v1 import types_pb2
from teu_common.frontdoor import Gateway, stream
from teu_cri import meta
from teu_cri.containers import Containers
from teu_cri.pods import Pods


def cpu(s: types_pb2.ContainerStats, at: int) -> cri.CpuUsage:
    out = cri.CpuUsage(timestamp=at)
    out.usage_core_nano_seconds.value = s.cpu_ns
    return out


def memory(s: types_pb2.ContainerStats, at: int) -> cri.MemoryUsage:
    out = cri.MemoryUsage(timestamp=at)
    out.working_set_bytes.value = s.memory_working_set
    out.usage_bytes.value = s.memory_usage
    if s.memory_limit:
        out.available_bytes.value = max(s.memory_limit - s.memory_working_set, 0)
    return out


def container_stats(summary: gw.ContainerSummary, s: types_pb2.ContainerStats | None, at: int) -> cri.ContainerStats:
    """One container's stats (zero readings for one that does not run)."""
    reading = s if s is not None else types_pb2.ContainerStats()
    labels, notes = meta.user_labels(summary.labels), meta.user_annotations(summary.labels)
    attributes = cri.ContainerAttributes(id=summary.id, metadata=meta.container_metadata(summary.labels), labels=labels,
                                         annotations=notes)  # fmt: skip
    return cri.ContainerStats(attributes=attributes, cpu=cpu(reading, at), memory=memory(reading, at))


def pod_stats(infra: gw.ContainerSummary, readings: dict[str, types_pb2.ContainerStats], members: Iterable[gw.ContainerSummary],
              at: int) -> cri.PodSandboxStats:  # fmt: skip
    """A pod's stats: its containers' summed, the network of its infra container (which holds the pod's)."""
    mine = [m for m in members if m.id in readings]
    total = types_pb2.ContainerStats(
        cpu_ns=sum(readings[m.id].cpu_ns for m in mine), memory_usage=sum(readings[m.id].memory_usage for m in mine),
        memory_working_set=sum(readings[m.id].memory_working_set for m in mine),
    )  # fmt: skip
    network = cri.NetworkUsage(timestamp=at)
    for i in readings[infra.id].networks if infra.id in readings else []:
        usage = cri.NetworkInterfaceUsage(name=i.name)
        usage.rx_bytes.value, usage.tx_bytes.value = i.rx_bytes, i.tx_bytes
        network.interfaces.append(usage)
    if network.interfaces:
        network.default_interface.CopyFrom(next((i for i in network.interfaces if i.name == "eth0"), network.interfaces[0]))
    process = cri.ProcessUsage(timestamp=at)
    process.process_count.value = sum(readings[m.id].pids for m in mine)
    labels, notes = meta.user_labels(infra.labels), meta.user_annotations(infra.labels)
    attributes = cri.PodSandboxAttributes(id=infra.id, metadata=meta.sandbox_metadata(infra.labels), labels=labels,
                                          annotations=notes)  # fmt: skip
    linux = cri.LinuxPodSandboxStats(cpu=cpu(total, at), memory=memory(total, at), network=network, process=process,
                                     containers=[container_stats(m, readings.get(m.id), at) for m in members])  # fmt: skip
    return cri.PodSandboxStats(attributes=attributes, linux=linux)


class Stats:
    """Readings through the gateway."""

    def __init__(self, gateway: Gateway, pods: Pods, containers: Containers) -> None:
        self.g, self.pods, self.containers = gateway, pods, containers

    async def _readings(self) -> dict[str, types_pb2.ContainerStats]:
        """One reading of every running container."""
        out: dict[str, types_pb2.ContainerStats] = {}
        async for resp in stream(self.g.containers.Stats(gw.StatsRequest(one_shot=True))):
            out.update((u.stats.id, u.stats) for u in resp.containers)
        return out

    async def container(self, cid: str) -> cri.ContainerStats:
        d = await self.containers.details(cid)
        return container_stats(d.summary, (await self._readings()).get(d.summary.id), time.time_ns())

    async def containers_matching(self, f: cri.ContainerStatsFilter) -> list[cri.ContainerStats]:
        listed = await self.containers.summaries(f.id, f.pod_sandbox_id, f.label_selector)
        readings, at = await self._readings(), time.time_ns()
        return [container_stats(s, readings.get(s.id), at) for s in listed]

    async def pod(self, sandbox_id: str) -> cri.PodSandboxStats:
        d = await self.pods.details(sandbox_id)
        members = await self.pods.members(d.summary.id)
        return pod_stats(d.summary, await self._readings(), members, time.time_ns())

    async def pods_matching(self, f: cri.PodSandboxStatsFilter) -> list[cri.PodSandboxStats]:
        readings, at = await self._readings(), time.time_ns()
        out = []
        for infra in await self.pods.summaries(f.id, None, f.label_selector):
            out.append(pod_stats(infra, readings, await self.pods.members(infra.id), at))
        return out
