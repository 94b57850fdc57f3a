"""Runtime and storage records as the public API shows them. Pure."""

from __future__ import annotations

from teu_api.gateway.v1 import gateway_pb2 as gw
from teu_api.runtime.v1 import runtime_pb2 as rt
from teu_api.storage.v1 import storage_pb2 as st
from teu_api.types.v1 import types_pb2 as t
from teu_gateway.mounts import PROPAGATIONS
from teu_gateway.options import CONFIG_KEY


def summary(c: rt.Container) -> gw.ContainerSummary:
    """A container as ``ps`` shows it."""
    return gw.ContainerSummary(
        id=c.id,
        name=c.name,
        image=c.spec.image_ref,
        command=list(c.spec.process.args),
        created_at=c.created_at,
        state=c.state,
        exit_code=c.exit_code,
        started_at=c.started_at,
        finished_at=c.finished_at,
        labels=c.spec.labels,
        ports=c.network.ports,
        mounts=[m.volume or m.mount.source for m in c.spec.mounts],
        network=c.network.network or c.spec.network,
        error=c.error,
        paused=c.paused,
        health=c.health.status,
    )


def details(c: rt.Container, rootfs: list[t.Mount]) -> gw.ContainerDetails:
    """Everything about a container, as ``inspect`` shows it (``rootfs``: its mounts, from storage)."""
    config = gw.ContainerConfig()
    if CONFIG_KEY in c.spec.extensions:
        config.ParseFromString(c.spec.extensions[CONFIG_KEY])
    config.resources.CopyFrom(c.spec.resources)  # as in force now: update changes them
    config.restart.CopyFrom(c.spec.restart_policy)
    return gw.ContainerDetails(
        summary=summary(c),
        config=config,
        process=c.spec.process,
        pid=c.pid,
        oom_killed=c.oom_killed,
        error=c.error,
        image_id=c.spec.image_id,
        log_path=c.spec.log_path,
        monitor_pid=c.monitor_pid,
        restart_count=c.restart_count,
        mounts=rootfs,
        mount_points=mount_points(c.spec),
        network=c.network,
        connected=c.connected,
        paused=c.paused,
        health=c.health,
        oom_kills=c.oom_kills,
        last_oom=c.last_oom if c.HasField("last_oom") else None,
        execs=[
            gw.ExecInfo(id=e.id, cmd=list(e.args), running=e.running, exit_code=e.exit_code, pid=e.pid, tty=e.terminal)
            for e in c.execs
        ],
    )


def mount_points(spec: rt.ContainerSpec) -> list[gw.MountPoint]:
    """What is mounted over the container's root filesystem, as inspect shows it."""
    out = []
    for cm in spec.mounts:
        m = cm.mount
        bind = m.type == "bind"
        out.append(gw.MountPoint(
            type="volume" if cm.volume else m.type, name=cm.volume, source=m.source if bind else "",
            destination=m.destination, rw="ro" not in m.options,
            propagation=next((o for o in m.options if o in PROPAGATIONS), "") if bind and not cm.volume else "",
        ))  # fmt: skip
    return out


def progress(p: st.Progress) -> gw.Progress:
    """Pull/push progress as the public API shows it."""
    return gw.Progress(digest=p.digest, done=p.done, total=p.total, status=p.status)


def image(i: st.Image) -> gw.ImageSummary:
    """An image as ``images`` shows it."""
    return gw.ImageSummary(
        id=i.id,
        repo_tags=list(i.repo_tags),
        created_at=i.created_at,
        size=i.size,
        config=i.config,
        layers=list(i.layers),
        parent=i.parent,
        comment=i.comment,
        platform=i.platform,
    )
