"""``teu build``: an image from a Dockerfile and a context folder (or a tar or a Dockerfile on stdin)."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from typing import Any, BinaryIO

from teu import auth
from teu._images import chunks_of
from teu.build import context_tar, dockerfile_tar, is_archive
from teu.cli import parse
from teu.client import Client
from teu.errors import InvalidArgument
from teu_api.gateway.v1 import gateway_pb2 as gw


def _context(a: argparse.Namespace) -> tuple[BinaryIO, str]:
    """The context to send and the Dockerfile's name in it ("" for the default)."""
    given = None
    if a.file == "-":
        if a.context == "-":
            raise InvalidArgument("invalid argument: can't use stdin for both build context and dockerfile")
        given = sys.stdin.buffer.read()
    if a.context == "-":
        data = sys.stdin.buffer.read()
        if is_archive(data[:512]):
            f = tempfile.TemporaryFile()  # noqa: SIM115 - the caller closes it
            f.write(data)
            f.seek(0)
            return f, a.file or ""
        return dockerfile_tar(data), ""
    if a.file and given is None:
        path = os.path.abspath(a.file)
        root = os.path.abspath(a.context)
        if os.path.commonpath([path, root]) == root:
            rel = os.path.relpath(path, root)
            return context_tar(a.context, dockerfile_path=rel)[0], rel
        with open(a.file, "rb") as df:
            given = df.read()
    return context_tar(a.context, given)


def _build_args(values: list[str]) -> dict[str, str]:
    out = {}
    for v in values:
        key, eq, value = v.partition("=")
        if not eq:
            if key not in os.environ:
                continue  # Docker drops a bare --build-arg whose variable is unset
            value = os.environ[key]
        out[key] = value
    return out


def cmd_build(c: Client, a: argparse.Namespace) -> int:
    """Builds, showing each step and its output; -q prints only the image id."""
    context, dockerfile = _context(a)
    options = gw.BuildOptions(
        tags=a.tag,
        dockerfile=dockerfile,
        build_args=_build_args(a.build_arg),
        target=a.target,
        no_cache=a.no_cache,
        pull=a.pull,
        labels=parse.labels(a.label),
        network=a.network,
        insecure=True,  # to registries on this machine only, as Docker treats them
        auth=auth.stored(),
    )
    out = sys.stdout.buffer
    image = ""
    with context:
        for frame in c.build(chunks_of(context), options):
            part = frame.WhichOneof("part")
            if part == "result":
                image = frame.result.image_id
            elif a.quiet:
                continue
            elif part == "status":
                out.write(frame.status.encode() + b"\n")
            else:
                out.write(frame.output)
            out.flush()
    if a.quiet:
        print(image)
    return 0


def register(sub: Any) -> None:
    """Adds ``build``."""
    p = sub.add_parser("build", help="build an image from a Dockerfile", description="Build an image from a Dockerfile")
    p.add_argument("-t", "--tag", action="append", default=[], help="name:tag (repeatable)")
    p.add_argument("-f", "--file", default="", help="the Dockerfile (default CONTEXT/Dockerfile; - for stdin)")
    p.add_argument("--build-arg", action="append", default=[], help="KEY=VALUE for an ARG (KEY alone: from the environment)")
    p.add_argument("--target", default="", help="the stage to build")
    p.add_argument("--no-cache", action="store_true", help="use no cached step")
    p.add_argument("--pull", action="store_true", help="pull the FROM images even if present")
    p.add_argument("--label", action="append", default=[], help="KEY=VALUE label of the image")
    p.add_argument("-q", "--quiet", action="store_true", help="print only the image id")
    p.add_argument("--network", default="", help="network of RUN steps: default, bridge, host or none")
    p.add_argument("--progress", default="auto", choices=["auto", "plain", "tty"], help="output style (all plain)")
    p.add_argument("--rm", action="store_true", default=True, help="remove intermediate containers (always)")
    p.add_argument("--force-rm", action="store_true", help="remove intermediate containers even on failure (always)")
    p.add_argument("context", metavar="PATH", help="the context folder, or - for a tar or a Dockerfile on stdin")
    p.set_defaults(func=cmd_build)
