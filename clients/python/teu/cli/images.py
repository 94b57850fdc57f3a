"""Image commands: images, import, tag, rmi, history, save, load, pull, push, image prune/inspect."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from typing import Any

from teu import auth
from teu.cli import format as fmt
from teu.cli import parse, template
from teu.cli.common import add_format, each, inspect_all, verb
from teu.cli.progress import CountingReader, Meter
from teu.client import Client
from teu.errors import FailedPrecondition, NotFound, Unimplemented
from teu_api.gateway.v1 import gateway_pb2 as gw

IMAGE_HEADERS = {"Repository": "REPOSITORY", "Tag": "TAG", "ID": "IMAGE ID", "CreatedSince": "CREATED", "CreatedAt": "CREATED AT",
                 "Size": "SIZE", "Digest": "DIGEST"}  # fmt: skip
IMAGE_TABLE = "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"


def image_rows(i: gw.ImageSummary) -> list[dict[str, Any]]:
    """An image as ``images --format`` sees it: a row per tag (one ``<none>`` row without a tag)."""
    rows = []
    for tag in list(i.repo_tags) or ["<none>:<none>"]:
        repo, _, t = tag.rpartition(":")
        rows.append({"Repository": repo, "Tag": t, "ID": i.id.removeprefix("sha256:")[:12], "Digest": "<none>",
                     "CreatedSince": f"{fmt.ago(i.created_at)} ago", "CreatedAt": fmt.local_time(i.created_at),
                     "Size": fmt.size(i.size), "_labels": dict(i.config.labels)})  # fmt: skip
    return rows


def cmd_images(c: Client, a: argparse.Namespace) -> int:
    """Lists images."""
    images = c.list_images(a.filter, all=a.all)
    if a.quiet:
        for i in dict.fromkeys(i.id.removeprefix("sha256:")[:12] for i in images):
            print(i)
        return 0
    for line in template.lines(a.format or IMAGE_TABLE, (r for i in images for r in image_rows(i)), IMAGE_HEADERS):
        print(line)
    return 0


def cmd_import(c: Client, a: argparse.Namespace) -> int:
    """Makes an image from a tarball (a file, or - for stdin)."""
    config = parse.changes(a.change)
    if a.file.startswith(("http://", "https://")):
        image = c.import_image(None, a.reference or "", config, url=a.file)
    else:
        with open(a.file, "rb") if a.file != "-" else open(sys.stdin.fileno(), "rb", closefd=False) as f:
            meter = Meter("import", os.fstat(f.fileno()).st_size if a.file != "-" else 0)
            image = c.import_image(CountingReader(f, meter), a.reference or "", config)  # type: ignore[arg-type]
            meter.finish()
    print(image.id)
    return 0


def _progress(frames: Any, final: str) -> str:
    """Shows pull/push progress, one meter per blob, and returns the final value (image id or digest)."""
    result, meters = "", dict[str, Meter]()
    for frame in frames:
        if frame.WhichOneof("part") != "progress":
            result = getattr(frame, final).id if final == "image" else getattr(frame, final)
            continue
        pr = frame.progress
        meter = meters.setdefault(pr.digest, Meter(pr.digest[7:19] or "image", pr.total))
        meter.add(pr.done - meter.done)
        if pr.status in ("done", "exists"):
            meter.finish(pr.status)
    return result


def cmd_transfer(c: Client, a: argparse.Namespace, fn: str, final: str) -> int:
    """pull or push (``fn``) with the credentials stored for the image's registry, if any."""
    registry = auth.registry_of(a.image)
    creds = auth.lookup(registry)
    try:
        print(_progress(getattr(c, fn)(a.image, insecure=a.tls_verify == "false", auth=creds), final))
    except FailedPrecondition as exc:
        if creds is None and exc.message.startswith("unauthorized"):
            server = "" if auth.registry_key(registry) == auth.HUB_KEY else f" {registry}"
            raise FailedPrecondition(f"{exc.message} (not logged in: teu login{server})") from exc
        raise
    return 0


def ensure_image(c: Client, image: str, policy: str) -> None:
    """``run``/``create --pull missing|always|never``: pulls first when the policy says so (missing,
    Docker's default: only when the image is not here). A loopback registry is spoken to over plain
    HTTP, as Docker treats 127.0.0.0/8 as an insecure registry by default."""
    if policy not in ("missing", "always", "never"):
        raise parse.InvalidArgument(f"invalid pull option {policy!r}: must be missing, always or never")
    if policy == "never":
        return
    if policy == "missing":
        try:
            c.inspect_image(image)
            return
        except NotFound:
            print(f"Unable to find image '{image}' locally", file=sys.stderr)
    with contextlib.redirect_stdout(sys.stderr):
        _progress(c.pull(image, insecure=auth.plain_http(image), auth=auth.lookup(auth.registry_of(image))), "image")


def cmd_save(c: Client, a: argparse.Namespace) -> int:
    """Writes images as an archive to a file or stdout."""
    if a.output is None and sys.stdout.isatty():
        raise parse.InvalidArgument("refusing to write an archive to a terminal: use -o FILE or redirect stdout")
    meter = Meter("save")
    with open(a.output, "wb") if a.output else open(sys.stdout.fileno(), "wb", closefd=False) as f:
        for chunk in c.save(a.images, format=a.format):
            f.write(chunk)
            meter.add(len(chunk))
    meter.finish()
    return 0


def cmd_load(c: Client, a: argparse.Namespace) -> int:
    """Loads images from an archive file or stdin."""
    with open(a.input, "rb") if a.input else open(sys.stdin.fileno(), "rb", closefd=False) as f:
        meter = Meter("load", os.fstat(f.fileno()).st_size if a.input else 0)
        loaded = c.load(CountingReader(f, meter))  # type: ignore[arg-type]
        meter.finish()
    for image in loaded:
        print(f"Loaded image: {', '.join(image.repo_tags) or image.id}")
    return 0


def cmd_history(c: Client, a: argparse.Namespace) -> int:
    """Prints an image's history."""
    rows = [["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"]]
    for e in c.history(a.image):
        rows.append([e.id.removeprefix("sha256:")[:12] or "<missing>", f"{fmt.ago(e.created_at)} ago",
                     fmt.truncate(e.created_by, 45), fmt.size(e.size), e.comment])  # fmt: skip
    print(fmt.table(rows))
    return 0


def cmd_rmi(c: Client, a: argparse.Namespace) -> int:
    """Removes images."""

    def show(_name: str, r: Any) -> str:
        return "\n".join([*(f"Untagged: {t}" for t in r.untagged), *(f"Deleted: {d}" for d in r.deleted)])

    return each(a.names, lambda n: c.remove_image(n, a.force), show)


def cmd_image_prune(c: Client, a: argparse.Namespace) -> int:
    """Removes unused images."""
    r = c.prune_images(all=a.all, filters=a.filter)
    for d in r.deleted:
        print(f"Deleted: {d}")
    print(f"Total reclaimed space: {fmt.size(r.reclaimed)}")
    return 0


def _image_commands(sub: Any, prefix: str = "") -> None:
    """Commands that exist both as ``teu X`` and ``teu image X``."""
    p = verb(sub, prefix or "rmi", "remove images", lambda p: p.add_argument("-f", "--force", action="store_true"), "IMAGE")
    p.set_defaults(func=cmd_rmi)
    p = sub.add_parser("history", help="show an image's history")
    p.add_argument("image")
    p.set_defaults(func=cmd_history)
    p = sub.add_parser("tag", help="add a name to an image")
    p.add_argument("source")
    p.add_argument("target")
    p.set_defaults(func=lambda c, a: 0 if c.tag(a.source, a.target) else 1)
    p = sub.add_parser("save", help="save images to an archive")
    p.add_argument("-o", "--output", default=None, help="write to a file instead of stdout")
    p.add_argument("--format", default="docker-archive", choices=["docker-archive", "oci-archive"])
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.set_defaults(func=cmd_save)
    p = sub.add_parser("load", help="load images from an archive")
    p.add_argument("-i", "--input", default=None, help="read from a file instead of stdin")
    p.set_defaults(func=cmd_load)
    for name, final in (("pull", "image"), ("push", "digest")):
        p = sub.add_parser(name, help=f"{name} an image (registry/name[:tag]) with `teu login`'s credentials")
        p.add_argument("--tls-verify", default="true", help="false: plain HTTP (loopback registries)")
        p.add_argument("image")
        p.set_defaults(func=lambda c, a, fn=name, final=final: cmd_transfer(c, a, fn, final))


def _list_flags(p: argparse.ArgumentParser) -> None:
    """``images`` and ``image ls``."""
    p.add_argument("-q", "--quiet", action="store_true", help="only ids")
    p.add_argument("-a", "--all", action="store_true", help="also the intermediate images of builds")
    p.add_argument("-f", "--filter", action="append", default=[], help="dangling=, reference=, label=, before=, since=")
    p.add_argument("--format", default="", help="table, json, or a Go template: '{{.Repository}}:{{.Tag}}'")
    p.set_defaults(func=cmd_images)


def cmd_search(c: Client, a: argparse.Namespace) -> int:
    """docker search: not served (Teu keeps no index of a registry's images), said clearly."""
    raise Unimplemented("searching a registry is not served: Teu pulls only the names it is given (teu pull REGISTRY/NAME:TAG)")


def register(sub: Any) -> None:
    """Adds the image commands."""
    p = sub.add_parser("images", help="list images")
    _list_flags(p)
    p = sub.add_parser("search", help="not served: Teu pulls only the names it is given")
    p.add_argument("term")
    p.set_defaults(func=cmd_search)
    p = sub.add_parser("import", help="import a tarball (file, - for stdin, or http(s) URL) as an image")
    p.add_argument("-c", "--change", action="append", default=[], help="Dockerfile instruction (CMD, ENV...)")
    p.add_argument("file", help="tar file, - for stdin, or an http(s) URL")
    p.add_argument("reference", nargs="?", help="REPOSITORY[:TAG]")
    p.set_defaults(func=cmd_import)
    _image_commands(sub)
    p = sub.add_parser("image", help="manage images")
    isub = p.add_subparsers(dest="image_verb", required=True, metavar="COMMAND")
    ip = verb(isub, "inspect", "show details of images as JSON", add_format, metavar="IMAGE")
    ip.set_defaults(func=lambda c, a: inspect_all(a.names, c.inspect_image, fmt.image_json, a.format))
    _list_flags(isub.add_parser("ls", help="list images"))
    ip = isub.add_parser("prune", help="remove unused images")
    ip.add_argument("-a", "--all", action="store_true", help="all unused images, not only untagged ones")
    ip.add_argument("--filter", action="append", default=[], help="until=TIME|DURATION, label=K[=V], label!=K[=V]")
    ip.add_argument("-f", "--force", action="store_true", help="do not ask (Teu never asks)")
    ip.set_defaults(func=cmd_image_prune)
    _image_commands(isub, "rm")
