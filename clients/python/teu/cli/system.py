"""Engine-wide commands: info, version, system df/prune, and networks."""

from __future__ import annotations

import argparse
import json
import os
import platform
from pathlib import Path
from typing import Any

from teu.cli import format as fmt
from teu.cli import parse, template
from teu.cli.common import add_format, each, inspect_all, verb
from teu.client import Client
from teu.errors import FailedPrecondition, PermissionDenied


def cmd_info(c: Client, a: argparse.Namespace) -> int:
    """Prints engine-wide information (``--format``: json, or a Go template over docker's field names)."""
    i = c.info()
    if a.format:
        return _formatted(a.format, info_json(i))
    print(f"Containers: {i.containers}\n Running: {i.containers_running}\n Created: {i.containers_created}")
    print(f" Exited: {i.containers_exited}\nImages: {i.images}\nStorage Driver: {i.storage_driver}")
    print(f" Root: {i.storage_root}\nCgroup Version: {i.cgroup_version}\nOCI Runtime: {i.oci_runtime}")
    print(f" Version: {i.oci_runtime_version}\n Why: {i.oci_runtime_reason}\nConmon: {i.conmon_version}")
    print("Security Options:" + "".join(f"\n {o}" for o in i.security_options))
    return 0


def cmd_web(c: Client, a: argparse.Namespace) -> int:
    """Prints the address of the engine's web page (with its token when it is served beyond loopback)."""
    run = Path(os.environ.get("TEU_RUN", "/run/teu"))
    try:
        url = (run / "web.url").read_text().strip()
    except FileNotFoundError:
        raise FailedPrecondition("the engine serves no web page (it starts with the engine unless TEU_WEB=0)") from None
    try:
        url += "?token=" + (run / "web.token").read_text().strip()
    except FileNotFoundError:
        pass  # served on loopback: no token
    except PermissionError:
        raise PermissionDenied("the web page's token is root's: run teu web as root") from None
    print(url)
    return 0


def _formatted(form: str, data: dict[str, Any]) -> int:
    print(json.dumps(data) if form.strip() == "json" else template.render(form, data))
    return 0


def docker_info(i: Any) -> dict[str, Any]:
    """The engine's facts that docker info has, under its field names (also the Docker API's /info)."""
    return {
        "Containers": i.containers, "ContainersRunning": i.containers_running, "ContainersStopped": i.containers_exited,
        "Images": i.images, "Driver": i.storage_driver, "DockerRootDir": i.storage_root,
        "CgroupVersion": str(i.cgroup_version), "DefaultRuntime": i.oci_runtime, "SecurityOptions": list(i.security_options),
        "OSType": "linux", "Architecture": platform.machine(), "KernelVersion": platform.release(), "NCPU": os.cpu_count() or 1,
    }  # fmt: skip


def info_json(i: Any) -> dict[str, Any]:
    """``teu info``'s facts under the names of docker info's template fields, and Teu's own."""
    return {**docker_info(i), "ContainersCreated": i.containers_created, "OCIRuntimeVersion": i.oci_runtime_version,
            "ConmonVersion": i.conmon_version}  # fmt: skip


def cmd_version(c: Client, a: argparse.Namespace) -> int:
    """Prints versions (``--format``: json, or a Go template such as '{{.Server.Version}}')."""
    from teu_api import VERSION

    if a.format:
        v = c.version()
        server = {"Version": v.version, "APIVersion": v.api_version, "OCIRuntimeVersion": v.oci_runtime_version}
        return _formatted(a.format, {"Client": {"Version": VERSION}, "Server": server})
    print(f"Client:\n Version: {VERSION}")
    v = c.version()
    print(f"Server:\n Version: {v.version}\n API version: {v.api_version}\n OCI runtime: {v.oci_runtime_version}")
    return 0


def cmd_df(c: Client, a: argparse.Namespace) -> int:
    """Prints disk usage by images, containers, volumes and logs."""
    u = c.disk_usage()
    rows = [["TYPE", "TOTAL", "SIZE"], ["Images", str(u.images), fmt.size(u.images_bytes)],
            ["Containers", str(u.containers), ""], ["Local Volumes", str(u.volumes), fmt.size(u.volumes_bytes)],
            ["Logs", "", fmt.size(u.logs_bytes)]]  # fmt: skip
    print(fmt.table(rows))
    return 0


def cmd_prune(c: Client, a: argparse.Namespace) -> int:
    """Removes stopped containers and unused images."""
    r = c.prune(all=a.all)
    for cid in r.containers:
        print(f"Deleted container: {cid}")
    for iid in r.images:
        print(f"Deleted image: {iid}")
    print(f"Total reclaimed space: {fmt.size(r.reclaimed)}")
    return 0


def event_json(r: Any) -> dict[str, Any]:
    """An event as ``docker events --format '{{json .}}'`` shapes it, with Teu's cursor."""
    e = r.event
    attrs = dict(e.attributes)
    legacy = {"status": e.action, "id": e.actor_id, "from": attrs.get("image", "")} if e.type == "container" else {}
    return {**legacy, "Type": e.type, "Action": e.action, "Actor": {"ID": e.actor_id, "Attributes": attrs}, "scope": "local",
            "time": e.time_unix_nano // 10**9, "timeNano": e.time_unix_nano, "cursor": r.cursor}  # fmt: skip


def cmd_events(c: Client, a: argparse.Namespace) -> int:
    """Prints events as they happen (those recorded since a time or cursor first), until --until or Ctrl-C."""
    for r in c.events(since_ns=parse.when(a.since), until_ns=parse.when(a.until), filters=a.filter, cursor=a.cursor):
        e = r.event
        if a.format == "json":
            line = json.dumps(event_json(r))
        elif a.format:
            line = template.render(a.format, event_json(r))
        else:
            attrs = ", ".join(f"{k}={v}" for k, v in sorted(e.attributes.items()))
            line = f"{fmt.rfc3339(e.time_unix_nano)} {e.type} {e.action} {e.actor_id}" + (f" ({attrs})" if attrs else "")
        print(line, flush=True)
    return 0


def network_json(n: Any) -> dict[str, Any]:
    """A network as ``docker network inspect`` shapes it."""
    ipam = {"Subnet": n.subnet, "Gateway": n.gateway, **({"IPRange": n.ip_range} if n.ip_range else {})}
    return {
        "Name": n.name, "Id": n.id, "Created": fmt.rfc3339(n.created_at), "Scope": "local", "Driver": n.driver,
        "Internal": n.internal, "IPAM": {"Driver": "default", "Config": [ipam]}, "Options": {"bridge": n.bridge},
        "Containers": {cid: {"IPv4Address": addr} for cid, addr in n.containers.items()}, "DNS": n.dns,
        "Labels": dict(n.labels),
    }  # fmt: skip


NETWORK_HEADERS = {"ID": "NETWORK ID", "Name": "NAME", "Driver": "DRIVER", "Scope": "SCOPE", "Subnet": "SUBNET",
                   "CreatedAt": "CREATED AT"}  # fmt: skip


def cmd_network_ls(c: Client, a: argparse.Namespace) -> int:
    """Lists networks."""
    found = c.list_networks(a.filter)
    if a.quiet:
        for n in found:
            print(n.id[:12])
        return 0
    rows = ({"ID": n.id[:12], "Name": n.name, "Driver": n.driver, "Scope": "local", "Subnet": n.subnet,
             "CreatedAt": fmt.local_time(n.created_at)} for n in found)  # fmt: skip
    for line in template.lines(a.format or "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Subnet}}", rows, NETWORK_HEADERS):
        print(line)
    return 0


def cmd_network_prune(c: Client, a: argparse.Namespace) -> int:
    """Removes unused user networks."""
    deleted = c.prune_networks(a.filter)
    if deleted:
        print("Deleted Networks:\n" + "\n".join(deleted))
    return 0


def register(sub: Any) -> None:
    """Adds info, version, system and network commands."""
    info_format = "json, or a Go template over docker info's fields, such as '{{.Images}}'"
    p = sub.add_parser("info", help="engine-wide information")
    p.add_argument("-f", "--format", default="", help=info_format)
    p.set_defaults(func=cmd_info)
    p = sub.add_parser("version", help="versions")
    p.add_argument("-f", "--format", default="", help="json, or a Go template such as '{{.Server.Version}}'")
    p.set_defaults(func=cmd_version)
    sub.add_parser("web", help="the address of the engine's web page").set_defaults(func=cmd_web)
    p = sub.add_parser("events", help="stream what happens to containers, images, networks and volumes")
    p.add_argument("--since", default="", help="first the events since a time (RFC 3339, Unix seconds) or a duration ago (10m)")
    p.add_argument("--until", default="", help="stop at this time (a past one: after the recorded events)")
    p.add_argument("-f", "--filter", action="append", default=[],
                   help="type=, event=, container=, image=, label=K[=V], network=, volume= (repeatable)")  # fmt: skip
    p.add_argument("--format", default="", help="json, or a Go template such as '{{.Type}} {{.Action}} {{.Actor.ID}}'")
    p.add_argument("--cursor", default="", help="resume right after the event that carried this cursor (in --format json)")
    p.set_defaults(func=cmd_events)
    p = sub.add_parser("system", help="manage the engine")
    ssub = p.add_subparsers(dest="system_verb", required=True, metavar="COMMAND")
    ssub.add_parser("df", help="disk usage").set_defaults(func=cmd_df)
    sp = ssub.add_parser("info", help="engine-wide information")
    sp.add_argument("-f", "--format", default="", help=info_format)
    sp.set_defaults(func=cmd_info)
    sp = ssub.add_parser("prune", help="remove stopped containers and unused images")
    sp.add_argument("-a", "--all", action="store_true", help="also unused tagged images")
    sp.add_argument("-f", "--force", action="store_true", help="do not ask (Teu never asks)")
    sp.set_defaults(func=cmd_prune)
    p = sub.add_parser("network", help="manage networks")
    nsub = p.add_subparsers(dest="network_verb", required=True, metavar="COMMAND")
    np = nsub.add_parser("create", help="create a bridge network")
    np.add_argument("--subnet", default="", help="IPv4 subnet in CIDR (default: a free /24)")
    np.add_argument("--gateway", default="", help="the bridge's address in the subnet")
    np.add_argument("--ip-range", default="", help="give container addresses from this part of the subnet (CIDR)")
    np.add_argument("--internal", action="store_true", help="nothing leaves the network")
    np.add_argument("--label", action="append", default=[], help="set metadata")
    np.add_argument("-d", "--driver", default="bridge", choices=["bridge"], help="network driver (bridge)")
    np.add_argument("name")
    np.set_defaults(func=lambda c, a: print(c.create_network(a.name, a.subnet, a.gateway, a.ip_range, a.internal,
                                                             parse.labels(a.label)).id) or 0)  # fmt: skip
    np = nsub.add_parser("ls", help="list networks")
    np.add_argument("-q", "--quiet", action="store_true", help="only ids")
    np.add_argument("-f", "--filter", action="append", default=[], help="name=, id=, driver=, type=custom|builtin, dangling=")
    np.add_argument("--format", default="", help="table, json, or a Go template: '{{.Name}}'")
    np.set_defaults(func=cmd_network_ls)
    np = nsub.add_parser("connect", help="connect a container to a network (now if it runs, and at its starts)")
    np.add_argument("--alias", action="append", default=[], help="another DNS name on that network")
    np.add_argument("--ip", default="", help="the IPv4 address to take")
    np.add_argument("network")
    np.add_argument("container")
    np.set_defaults(func=lambda c, a: c.connect_network(a.network, a.container, a.ip, a.alias) and 0)
    np = nsub.add_parser("disconnect", help="disconnect a container from a network it was connected to")
    np.add_argument("-f", "--force", action="store_true", help="no error if it is not connected")
    np.add_argument("network")
    np.add_argument("container")
    np.set_defaults(func=lambda c, a: c.disconnect_network(a.network, a.container, a.force) or 0)
    np = nsub.add_parser("prune", help="remove the user networks no container is on")
    np.add_argument("--filter", action="append", default=[], help="until=TIME|DURATION, label=K[=V], label!=K[=V]")
    np.add_argument("-f", "--force", action="store_true", help="do not ask (Teu never asks)")
    np.set_defaults(func=cmd_network_prune)
    np = verb(nsub, "inspect", "show details of networks as JSON", add_format, metavar="NETWORK")
    np.set_defaults(func=lambda c, a: inspect_all(a.names, c.inspect_network, network_json, a.format))
    np = verb(nsub, "rm", "remove networks", metavar="NETWORK")
    np.set_defaults(func=lambda c, a: each(a.names, c.remove_network, lambda n, _r: n))
