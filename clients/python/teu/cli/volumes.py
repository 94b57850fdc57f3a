"""``teu volume``: create, ls, inspect, rm, prune (Docker's spelling and output)."""

from __future__ import annotations

import argparse
from typing import Any

from teu.cli import format as fmt
from teu.cli import parse, template
from teu.cli.common import add_format, each, inspect_all, verb
from teu.client import Client
from teu.errors import InvalidArgument
from teu_api.gateway.v1 import gateway_pb2 as gw

VOLUME_HEADERS = {"Name": "VOLUME NAME", "Driver": "DRIVER", "Scope": "SCOPE", "Mountpoint": "MOUNTPOINT", "Labels": "LABELS"}


def volume_json(v: gw.Volume) -> dict[str, Any]:
    """A volume as ``docker volume inspect`` shapes it."""
    return {
        "CreatedAt": fmt.rfc3339(v.created_at),
        "Driver": v.driver,
        "Labels": dict(v.labels) or None,
        "Mountpoint": v.mountpoint,
        "Name": v.name,
        "Options": dict(v.options) or None,
        "Scope": "local",
        "UsageData": {"Size": v.size, "RefCount": len(v.used_by)},
    }


def volume_row(v: gw.Volume) -> dict[str, Any]:
    """A volume as ``volume ls --format`` sees it."""
    labels = ",".join(f"{k}={x}" for k, x in sorted(v.labels.items()))
    return {"Name": v.name, "Driver": v.driver, "Scope": "local", "Mountpoint": v.mountpoint, "Labels": labels,
            "_labels": dict(v.labels)}  # fmt: skip


def cmd_create(c: Client, a: argparse.Namespace) -> int:
    """Creates a volume; prints its name."""
    if a.driver != "local":
        raise InvalidArgument(f"volume driver {a.driver!r} is not available: only local")
    print(c.create_volume(a.name or "", parse.labels(a.label), parse.labels(a.opt)).name)
    return 0


def cmd_ls(c: Client, a: argparse.Namespace) -> int:
    """Lists volumes."""
    found = c.list_volumes(a.filter)
    if a.quiet:
        for v in found:
            print(v.name)
        return 0
    rows = (volume_row(v) for v in found)
    for line in template.lines(a.format or "table {{.Driver}}\t{{.Name}}", rows, VOLUME_HEADERS):
        print(line)
    return 0


def cmd_prune(c: Client, a: argparse.Namespace) -> int:
    """Removes unused volumes."""
    r = c.prune_volumes(all=a.all, filters=a.filter)
    if r.deleted:
        print("Deleted Volumes:\n" + "\n".join(r.deleted) + "\n")
    print(f"Total reclaimed space: {fmt.size(r.reclaimed)}")
    return 0


def register(sub: Any) -> None:
    """Adds ``volume`` and its verbs."""
    p = sub.add_parser("volume", help="manage volumes")
    vsub = p.add_subparsers(dest="volume_verb", required=True, metavar="COMMAND")
    vp = vsub.add_parser("create", help="create a volume")
    vp.add_argument("-d", "--driver", default="local", help="volume driver (local)")
    vp.add_argument("--label", action="append", default=[], help="set metadata")
    vp.add_argument("-o", "--opt", action="append", default=[], help="driver option: type=tmpfs, device=..., o=...")
    vp.add_argument("name", nargs="?", help="name (default: a random one)")
    vp.set_defaults(func=cmd_create)
    vp = vsub.add_parser("ls", help="list volumes")
    vp.add_argument("-q", "--quiet", action="store_true", help="only names")
    vp.add_argument("-f", "--filter", action="append", default=[], help="name=, label=KEY[=VALUE], dangling=true|false")
    vp.add_argument("--format", default="", help="table, json, or a Go template: '{{.Name}}'")
    vp.set_defaults(func=cmd_ls)
    vp = verb(vsub, "inspect", "show details of volumes as JSON", add_format, metavar="VOLUME")
    vp.set_defaults(func=lambda c, a: inspect_all(a.names, c.inspect_volume, volume_json, a.format))
    vp = verb(vsub, "rm", "remove volumes", lambda p: p.add_argument("-f", "--force", action="store_true",
              help="no error for a volume that does not exist"), metavar="VOLUME")  # fmt: skip
    vp.set_defaults(func=lambda c, a: each(a.names, lambda n: c.remove_volume(n, force=a.force), lambda n, _r: n))
    vp = vsub.add_parser("prune", help="remove unused anonymous volumes (all unused with -a)")
    vp.add_argument("-a", "--all", action="store_true", help="also unused named volumes")
    vp.add_argument("--filter", action="append", default=[], help="label=KEY[=VALUE]")
    vp.add_argument("-f", "--force", action="store_true", help="do not ask (Teu never asks)")
    vp.set_defaults(func=cmd_prune)
