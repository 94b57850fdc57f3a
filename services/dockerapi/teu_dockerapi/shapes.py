"""Docker's JSON, to and from the gateway's messages. Pure.

Inspect shapes (containers, images) are the CLI's own (``teu.cli.format``): one place says what
Docker's JSON looks like.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from teu import mounts, policies
from teu.cli import format as fmt
from teu_api.errors import InvalidArgument
from teu_api.gateway.v1 import gateway_pb2 as gw
from teu_api.types.v1 import types_pb2

STATES = {types_pb2.CONTAINER_STATE_CREATED: "created", types_pb2.CONTAINER_STATE_RUNNING: "running",
          types_pb2.CONTAINER_STATE_EXITED: "exited"}  # fmt: skip
RUNNING_STATE, CREATED_STATE = types_pb2.CONTAINER_STATE_RUNNING, types_pb2.CONTAINER_STATE_CREATED


def strings(body: Mapping[str, Any], key: str) -> list[str]:
    """A list of strings (a lone string as one), InvalidArgument for anything else."""
    value = body.get(key)
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidArgument(f"{key} must be a list of strings")
    return list(value)


def _map(body: Mapping[str, Any], key: str) -> dict[str, str]:
    value = body.get(key) or {}
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise InvalidArgument(f"{key} must be an object of strings")
    return dict(value)


def _int(body: Mapping[str, Any], key: str) -> int:
    value = body.get(key) or 0
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidArgument(f"{key} must be an integer")
    return value


def _ports(bindings: Any) -> list[types_pb2.PortMapping]:
    """HostConfig.PortBindings: {"80/tcp": [{"HostIp": "", "HostPort": "8080"}]}."""
    if not bindings:
        return []
    if not isinstance(bindings, dict):
        raise InvalidArgument("PortBindings must be an object")
    out = []
    for key, hosts in bindings.items():
        port, _, proto = str(key).partition("/")
        if not port.isdigit():
            raise InvalidArgument(f"invalid port {key!r} in PortBindings")
        for h in hosts or [{}]:
            host_port = str((h or {}).get("HostPort") or "0")
            if not host_port.isdigit():
                raise InvalidArgument(f"invalid HostPort {host_port!r} for {key}")
            out.append(types_pb2.PortMapping(host_ip=(h or {}).get("HostIp") or "", host_port=int(host_port),
                                             container_port=int(port), protocol=proto or "tcp"))  # fmt: skip
    return out


def _mounts(body: Mapping[str, Any], host: Mapping[str, Any]) -> list[gw.MountSpec]:
    """HostConfig's Binds and Mounts, then an anonymous volume for each path of Config's Volumes
    that neither mounts (what the docker CLI sends for ``-v /path``, compose for ``- /path``)."""
    explicit = [*(mounts.volume(b) for b in strings(host, "Binds")), *(_mount(m) for m in host.get("Mounts") or [])]
    wanted = body.get("Volumes") or {}
    if not isinstance(wanted, dict) or not all(isinstance(p, str) for p in wanted):
        raise InvalidArgument("Volumes must be an object whose keys are paths")
    taken = {m.target.rstrip("/") or "/" for m in explicit}
    return explicit + [gw.MountSpec(type="volume", target=p) for p in wanted if (p.rstrip("/") or "/") not in taken]


def _mount(m: Any) -> gw.MountSpec:
    """One of HostConfig.Mounts (Type, Source, Target, ReadOnly, BindOptions, VolumeOptions, TmpfsOptions)."""
    if not isinstance(m, dict):
        raise InvalidArgument("each of Mounts must be an object")
    spec = gw.MountSpec(type=m.get("Type") or "volume", source=m.get("Source") or "", target=m.get("Target") or "",
                        read_only=bool(m.get("ReadOnly")))  # fmt: skip
    spec.propagation = (m.get("BindOptions") or {}).get("Propagation") or ""
    volume = m.get("VolumeOptions") or {}
    spec.no_copy = bool(volume.get("NoCopy"))
    spec.volume_labels.update(volume.get("Labels") or {})
    tmpfs = m.get("TmpfsOptions") or {}
    spec.tmpfs_size, spec.tmpfs_mode = int(tmpfs.get("SizeBytes") or 0), int(tmpfs.get("Mode") or 0)
    return spec


def create_config(body: Any, name: str) -> gw.ContainerConfig:
    """POST /containers/create's body (Config with HostConfig inside) as the API's ContainerConfig."""
    if not isinstance(body, dict):
        raise InvalidArgument("the body must be a JSON object")
    image = body.get("Image")
    if not isinstance(image, str) or not image:
        raise InvalidArgument("Image is required")
    host = body.get("HostConfig")
    host = {} if host is None else host
    if not isinstance(host, dict):
        raise InvalidArgument("HostConfig must be an object")
    log_config = host.get("LogConfig") or {}
    network, aliases = _endpoint(host.get("NetworkMode"), body.get("NetworkingConfig"))
    config = gw.ContainerConfig(
        image=image,
        name=name,
        cmd=strings(body, "Cmd"),
        env=strings(body, "Env"),
        working_dir=body.get("WorkingDir") or "",
        user=body.get("User") or "",
        hostname=body.get("Hostname") or "",
        tty=bool(body.get("Tty")),
        open_stdin=bool(body.get("OpenStdin")),
        labels=_map(body, "Labels"),
        stop_signal=body.get("StopSignal") or "",
        stop_timeout=_int(body, "StopTimeout"),
        expose=list((body.get("ExposedPorts") or {}).keys()),
        auto_remove=bool(host.get("AutoRemove")),
        network=network,
        network_aliases=aliases,
        ports=_ports(host.get("PortBindings")),
        publish_all=bool(host.get("PublishAllPorts")),
        privileged=bool(host.get("Privileged")),
        read_only=bool(host.get("ReadonlyRootfs")),
        cap_add=strings(host, "CapAdd"),
        cap_drop=strings(host, "CapDrop"),
        security_opt=strings(host, "SecurityOpt"),
        extra_hosts=strings(host, "ExtraHosts"),
        dns=strings(host, "Dns"),
        dns_search=strings(host, "DnsSearch"),
        dns_options=strings(host, "DnsOptions"),
        volumes_from=strings(host, "VolumesFrom"),
        group_add=strings(host, "GroupAdd"),
        sysctls=_map(host, "Sysctls"),
        shm_size=_int(host, "ShmSize"),
        oom_score_adj=_int(host, "OomScoreAdj"),
        cgroup_parent=str(host.get("CgroupParent") or ""),
        ipc=host.get("IpcMode") or "",
        pid=host.get("PidMode") or "",
        uts=host.get("UTSMode") or "",
        log_opts=_map(log_config, "Config"),
        restart=restart_policy(host),
        mounts=_mounts(body, host),
        resources=resources(host),
    )
    if body.get("Entrypoint") is not None:
        config.entrypoint.values.extend(strings(body, "Entrypoint"))
    if host.get("Init") is not None:
        config.init = bool(host["Init"])
    for field, key in ((config.masked_paths, "MaskedPaths"), (config.readonly_paths, "ReadonlyPaths")):
        if host.get(key) is not None:  # null: the defaults; [] none
            field.values.extend(strings(host, key))
            field.SetInParent()
    return config


def resources(host: Mapping[str, Any]) -> types_pb2.Resources:
    """The resource fields of a HostConfig (or of an update's body)."""
    return types_pb2.Resources(
        memory_bytes=_int(host, "Memory"),
        memory_swap=_int(host, "MemorySwap"),
        memory_reservation=_int(host, "MemoryReservation"),
        nano_cpus=_int(host, "NanoCpus"),
        cpu_shares=_int(host, "CpuShares"),
        cpu_period=_int(host, "CpuPeriod"),
        cpu_quota=_int(host, "CpuQuota"),
        cpuset_cpus=host.get("CpusetCpus") or "",
        pids_limit=_int(host, "PidsLimit"),
        oom_kill_disable=bool(host.get("OomKillDisable")),
    )


def restart_policy(host: Mapping[str, Any]) -> types_pb2.RestartPolicy | None:
    """HostConfig.RestartPolicy ({"Name", "MaximumRetryCount"}); None when absent."""
    restart = host.get("RestartPolicy")
    if not restart:
        return None
    if not isinstance(restart, dict):
        raise InvalidArgument("RestartPolicy must be an object")
    policy = str(restart.get("Name") or "")
    if restart.get("MaximumRetryCount"):
        policy += f":{restart['MaximumRetryCount']}"
    return policies.restart_policy(policy)


def _network(mode: Any) -> str:
    """HostConfig.NetworkMode: "default" is the engine's default network."""
    return "" if mode in (None, "", "default") else str(mode)


def _endpoint(mode: Any, networking: Any) -> tuple[str, list[str]]:
    """The network (HostConfig.NetworkMode, else the one network of NetworkingConfig) and the
    container's aliases on it (its endpoint's ``Aliases``, as docker-compose gives the service name)."""
    endpoints = networking.get("EndpointsConfig") if isinstance(networking, dict) else None
    endpoints = endpoints or {}
    if not isinstance(endpoints, dict):
        raise InvalidArgument("NetworkingConfig.EndpointsConfig must be an object")
    network = _network(mode)
    if not network and len(endpoints) == 1:
        network = _network(next(iter(endpoints)))
    endpoint = endpoints.get(network)
    aliases = (endpoint.get("Aliases") if isinstance(endpoint, dict) else None) or []
    if not isinstance(aliases, list) or not all(isinstance(a, str) for a in aliases):
        raise InvalidArgument("Aliases must be a list of strings")
    return network, aliases


def summary(c: gw.ContainerSummary) -> dict[str, Any]:
    """One container of GET /containers/json."""
    return {
        "Id": c.id, "Names": ["/" + c.name], "Image": c.image, "ImageID": "", "Command": " ".join(c.command),
        "Created": c.created_at // 10**9, "State": "paused" if c.paused else STATES.get(c.state, "unknown"),
        "Status": fmt.status(c), "Labels": dict(c.labels), "SizeRw": c.size_rw or None, "SizeRootFs": c.size_root_fs or None,
        "Ports": [{"IP": p.host_ip or "0.0.0.0", "PrivatePort": p.container_port, "PublicPort": p.host_port, "Type": p.protocol}
                  for p in c.ports],
        "HostConfig": {"NetworkMode": c.network or "default"}, "NetworkSettings": {"Networks": {}},
        "Mounts": [{"Destination": m} for m in c.mounts],
    }  # fmt: skip


def image_summary(i: gw.ImageSummary) -> dict[str, Any]:
    """One image of GET /images/json."""
    return {"Id": i.id, "ParentId": "", "RepoTags": list(i.repo_tags) or ["<none>:<none>"], "RepoDigests": [],
            "Created": i.created_at // 10**9, "Size": i.size, "VirtualSize": i.size, "SharedSize": -1,
            "Labels": dict(i.config.labels), "Containers": -1}  # fmt: skip
