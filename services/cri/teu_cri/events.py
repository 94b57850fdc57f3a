"""GetContainerEvents: the kubelet's evented PLEG, from Teu's own event stream.

The gateway's Events, narrowed to the containers this service made (their ``io.teu.cri.kind``
label), become the CRI's four kinds: create, start, die and destroy are CREATED, STARTED, STOPPED
and DELETED. As containerd does, each event carries its pod's status and the statuses of the pod's
containers as they are when it is sent (a pod or container gone by then is left out).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator

from teu_api.errors import NotFound
from teu_api.gateway.v1 import gateway_pb2 as gw
from teu_api.k8s.cri.v1 import api_pb2 as cri
from teu_common.frontdoor import Gateway, stream
from teu_cri import meta
from teu_cri.containers import Containers
from teu_cri.pods import Pods

__all__ = ["container_events"]

KINDS = {
    "create": cri.CONTAINER_CREATED_EVENT,
    "start": cri.CONTAINER_STARTED_EVENT,
    "die": cri.CONTAINER_STOPPED_EVENT,
    "destroy": cri.CONTAINER_DELETED_EVENT,
}


async def container_events(g: Gateway, pods: Pods, containers: Containers) -> AsyncIterator[cri.ContainerEventResponse]:
    """The events from now on, until the kubelet goes away."""
    filters = ["type=container", f"label={meta.KIND}", *(f"event={action}" for action in KINDS)]
    req = gw.EventsRequest(since_unix_nano=time.time_ns(), filters=filters)
    async for r in stream(g.system.Events(req)):
        if not r.HasField("event") or r.event.action not in KINDS:
            continue
        e = r.event
        sandbox = e.actor_id if e.attributes.get(meta.KIND) == meta.SANDBOX_KIND else e.attributes.get(meta.SANDBOX, "")
        out = cri.ContainerEventResponse(
            container_id=e.actor_id, container_event_type=KINDS[e.action], created_at=e.time_unix_nano
        )
        if sandbox:
            with contextlib.suppress(NotFound):
                out.pod_sandbox_status.CopyFrom(await pods.status(sandbox))
            for s in await containers.summaries("", sandbox, {}):
                with contextlib.suppress(NotFound):
                    out.containers_statuses.append(await containers.status(s.id))
        yield out
