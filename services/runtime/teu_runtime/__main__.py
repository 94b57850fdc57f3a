"""Entry point: ``python -m teu_runtime [--root R] [--run-dir D]``."""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from collections.abc import Awaitable

import structlog
from prometheus_client import REGISTRY

from teu_api.errors import Unavailable
from teu_api.runtime.v1 import runtime_pb2, runtime_pb2_grpc
from teu_common import idmap, perms
from teu_common.config import Config
from teu_common.journal import Retention
from teu_common.server import Lifecycle, Service, main
from teu_runtime import cgroups, confine, ociruntime, oomwatch, prober
from teu_runtime.database import Store
from teu_runtime.manager import Manager, Settings
from teu_runtime.metrics import ContainerCollector
from teu_runtime.network import dns, netconf
from teu_runtime.network.addressing import DEFAULT_SUBNET
from teu_runtime.network.networks import Networks, owner_of
from teu_runtime.service import RuntimeServicer
from teu_runtime.spec import Host

log = structlog.get_logger()
KMSG_MARK = "kmsg"  # boot id and sequence number of the last kernel log record recorded


async def build(cfg: Config) -> Lifecycle:
    """Probes the host, opens the database, reconciles, and returns the service to serve."""
    state = cfg.state_dir("runtime")
    layout = cgroups.detect()
    cgroup_parent = cgroups.parent_from_env()
    cgroups.open_parents(cgroup_parent)
    choice = ociruntime.choose(layout, os.environ.get("TEU_OCI_RUNTIME") or None)
    conmon_path = shutil.which("conmon")
    if not conmon_path:
        raise Unavailable("conmon is not installed")
    runtime_root = cfg.run_dir / choice.name
    runtime_root.mkdir(parents=True, exist_ok=True)
    runtime = ociruntime.CliRuntime(choice.name, choice.path, runtime_root)
    host = Host(limits=confine.host_limits(), held_caps=confine.held_capabilities(), cgroup_v2=layout.version == 2,
                swap_limit=cgroups.swap_limit(layout), unserved_abis=confine.unserved_abis())  # fmt: skip
    store = Store(state / "runtime.db", Retention.from_env())
    # The engine-wide default network: Docker's, "bridge" (a bridge, NAT rules and IPv4 forwarding in
    # the namespace this service runs in, made with the first container that uses it).
    # TEU_DEFAULT_NETWORK=none keeps containers on loopback unless they ask for a network.
    networks = Networks(
        store,
        owner=owner_of(cfg.root),
        default=os.environ.get("TEU_DEFAULT_NETWORK") or "bridge",
        subnet=os.environ.get("TEU_BRIDGE_SUBNET") or DEFAULT_SUBNET,
        firewall_backend=os.environ.get("TEU_FIREWALL") or None,
        upstreams=dns.parse_upstreams(os.environ.get("TEU_DNS_UPSTREAM"), netconf.read_host_file()),
    )
    await networks.setup()
    remap = idmap.configured()
    gid = remap.gid if remap else None
    perms.traversable(state, gid)
    bundles = perms.traversable(state / "containers", gid)
    conmon_version = await ociruntime.version_line(conmon_path)
    init_path = shutil.which("tini-static") or ""
    settings = Settings(bundles=bundles, conmon=conmon_path, host=host, remap=remap, init_path=init_path,
                        init_default=os.environ.get("TEU_INIT") == "1", cgroup_parent=cgroup_parent,
                        busybox=prober.static_busybox())  # fmt: skip
    manager = Manager(store, runtime, settings, networks)
    # the supervisor says whether the engine itself is starting, or only this service again
    await manager.reconcile(engine_start=os.environ.get("TEU_ENGINE_START") == "1")
    info = runtime_pb2.GetRuntimeInfoResponse(
        oci_runtime=choice.name,
        oci_runtime_version=await ociruntime.version_line(choice.path),
        oci_runtime_reason=choice.reason,
        cgroup_version=layout.version,
        conmon_version=conmon_version,
        security_options=[
            "name=seccomp,profile=builtin",
            *(["name=cgroupns"] if host.cgroup_v2 else []),
            *([remap.describe()] if remap else []),
        ],
    )

    async def stop() -> None:
        await manager.close()
        store.close()
        cgroups.remove_parents(cgroup_parent)

    boot = oomwatch.boot_id()
    read_boot, _, read_seq = store.mark(KMSG_MARK).partition(":")
    after = int(read_seq) if read_boot == boot and read_seq.isdigit() else 0

    def on_kill(kill: oomwatch.Kill) -> Awaitable[None]:
        return manager.oom_killed(kill, (KMSG_MARK, f"{boot}:{kill.seq}"))

    manager.background(oomwatch.watch(after, on_kill, time.time_ns))
    REGISTRY.register(ContainerCollector(store, asyncio.get_running_loop()))
    servicer = RuntimeServicer(manager, info)
    return Lifecycle(
        services=[Service(runtime_pb2_grpc.add_RuntimeServiceServicer_to_server, servicer, "teu.runtime.v1.RuntimeService")],
        on_stop=stop,
    )


if __name__ == "__main__":
    main("runtime", build)
