"""The ``teu`` command: Docker's verbs and flags over the Python SDK."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from typing import Any, BinaryIO

from teu.cli import format as fmt
from teu.cli import interactive, parse
from teu.client import Client, ContainerOptions
from teu.errors import TeuError
from teu.gateway.v1 import gateway_pb2 as gw
from teu.types.v1 import types_pb2

ENGINE_ERROR = 125
Handler = Callable[[Client, argparse.Namespace], int]


def _container_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--name", default="", help="assign a name to the container")
    p.add_argument("-e", "--env", action="append", default=[], help="set environment variables")
    p.add_argument("-w", "--workdir", default="", help="working directory inside the container")
    p.add_argument("-u", "--user", default="", help="user[:group] to run as")
    p.add_argument("--hostname", default="", help="container hostname")
    p.add_argument("-m", "--memory", default="0", help="memory limit (e.g. 64m)")
    p.add_argument("--cpus", default="0", help="number of CPUs (e.g. 0.5)")
    p.add_argument("--pids-limit", type=int, default=0, help="maximum number of processes (-1: unlimited)")
    p.add_argument("--entrypoint", default=None, help="overwrite the image's entrypoint")
    p.add_argument("--rm", action="store_true", help="remove the container when it exits")
    p.add_argument("-i", "--interactive", action="store_true", help="keep stdin open")
    p.add_argument("-t", "--tty", action="store_true", help="allocate a pseudo-TTY")
    p.add_argument("-l", "--label", action="append", default=[], help="set metadata")
    p.add_argument("--stop-timeout", type=int, default=0, help="seconds to wait before killing on stop")
    p.add_argument("image", help="image to run")
    p.add_argument("command", nargs=argparse.REMAINDER, help="command and arguments")


def _options(a: argparse.Namespace) -> ContainerOptions:
    return ContainerOptions(
        image=a.image,
        cmd=list(a.command),
        name=a.name,
        entrypoint=None if a.entrypoint is None else ([a.entrypoint] if a.entrypoint else []),
        env=parse.env(a.env),
        workdir=a.workdir,
        user=a.user,
        hostname=a.hostname,
        memory=parse.memory(a.memory),
        nano_cpus=parse.nano_cpus(a.cpus),
        pids_limit=a.pids_limit,
        remove=a.rm,
        tty=a.tty,
        interactive=a.interactive,
        labels=parse.labels(a.label),
        stop_timeout=a.stop_timeout,
    )


def cmd_run(c: Client, a: argparse.Namespace) -> int:
    """Runs a command in a new container; exits with its exit code."""
    if a.detach:
        print(c.run_detached(_options(a)))
        return 0
    if a.interactive or a.tty:
        return interactive.run_attached(c, a, _options(a))
    out, err = sys.stdout.buffer, sys.stderr.buffer
    code = ENGINE_ERROR
    with interactive.SignalProxy(c) if a.sig_proxy else nullcontext() as proxy:
        for frame in c.run_stream(_options(a)):
            code = _run_frame(frame, out, err, code)
            if proxy is not None and frame.WhichOneof("event") == "created":
                proxy.target(frame.created.id)
    return code


def _run_frame(frame: gw.RunResponse, out: BinaryIO, err: BinaryIO, code: int) -> int:
    """Shows one frame of an attached run; returns the exit code known so far."""
    kind = frame.WhichOneof("event")
    if kind == "output":
        target = err if frame.output.stream == types_pb2.STREAM_STDERR else out
        target.write(frame.output.data)
        target.flush()
    elif kind == "exit":
        code = frame.exit.exit_code
        if frame.exit.error:
            print(f"Error: {frame.exit.error}", file=sys.stderr)
    return code


def cmd_create(c: Client, a: argparse.Namespace) -> int:
    """Creates a container without starting it; prints its id."""
    print(c.create(_options(a)).id)
    return 0


def _each(names: Sequence[str], action: Callable[[str], Any], show: Callable[[str, Any], str | None]) -> int:
    """Applies ``action`` to every name (as Docker does), reporting errors one line each."""
    failed = 0
    for name in names:
        try:
            line = show(name, action(name))
        except TeuError as exc:
            print(f"Error: {exc.message}", file=sys.stderr)
            failed = 1
            continue
        if line is not None:
            print(line)
    return failed


def cmd_ps(c: Client, a: argparse.Namespace) -> int:
    """Lists containers."""
    found = c.list(all=a.all)
    if a.quiet:
        for s in found:
            print(s.id if a.no_trunc else s.id[:12])
        return 0
    rows = [["CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "NAMES"]]
    for s in found:
        command = " ".join(s.command)
        rows.append([
            s.id if a.no_trunc else s.id[:12],
            s.image,
            f'"{command if a.no_trunc else fmt.truncate(command, 20)}"',
            f"{fmt.ago(s.created_at)} ago",
            fmt.status(s),
            s.name,
        ])  # fmt: skip
    print(fmt.table(rows))
    return 0


def cmd_logs(c: Client, a: argparse.Namespace) -> int:
    """Prints a container's output."""
    out, err = sys.stdout.buffer, sys.stderr.buffer
    for line in c.logs(a.container, tail=a.tail, follow=a.follow):
        target = err if line.stream == types_pb2.STREAM_STDERR else out
        if a.timestamps:
            target.write(fmt.rfc3339(line.timestamp).encode() + b" ")
        target.write(line.data)
        if a.follow:
            target.flush()
    return 0


def cmd_images(c: Client, a: argparse.Namespace) -> int:
    """Lists images."""
    images = c.list_images()
    if a.quiet:
        for i in images:
            print(i.id.removeprefix("sha256:")[:12])
        return 0
    rows = [["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"]]
    for i in images:
        for tag in list(i.repo_tags) or ["<none>:<none>"]:
            repo, _, t = tag.rpartition(":")
            rows.append([repo, t, i.id.removeprefix("sha256:")[:12], f"{fmt.ago(i.created_at)} ago", fmt.size(i.size)])
    print(fmt.table(rows))
    return 0


def cmd_import(c: Client, a: argparse.Namespace) -> int:
    """Makes an image from a tarball (a file, or - for stdin)."""
    config = parse.changes(a.change)
    if a.file == "-":
        image = c.import_image(sys.stdin.buffer, a.reference or "", config)
    else:
        with open(a.file, "rb") as f:
            image = c.import_image(f, a.reference or "", config)
    print(image.id)
    return 0


def cmd_info(c: Client, a: argparse.Namespace) -> int:
    """Prints engine-wide information."""
    i = c.info()
    print(f"Containers: {i.containers}\n Running: {i.containers_running}\n Created: {i.containers_created}")
    print(f" Exited: {i.containers_exited}\nImages: {i.images}\nStorage Driver: {i.storage_driver}")
    print(f" Root: {i.storage_root}\nCgroup Version: {i.cgroup_version}\nOCI Runtime: {i.oci_runtime}")
    print(f" Version: {i.oci_runtime_version}\n Why: {i.oci_runtime_reason}\nConmon: {i.conmon_version}")
    return 0


def cmd_version(c: Client, a: argparse.Namespace) -> int:
    """Prints versions."""
    from teu.cli import VERSION

    print(f"Client:\n Version: {VERSION}")
    v = c.version()
    print(f"Server:\n Version: {v.version}\n API version: {v.api_version}\n OCI runtime: {v.oci_runtime_version}")
    return 0


def _simple(
    sub: Any, name: str, help_: str, extra: Callable[[argparse.ArgumentParser], Any] | None = None
) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = sub.add_parser(name, help=help_, description=help_)
    if extra:
        extra(p)
    p.add_argument("containers", nargs="+", metavar="CONTAINER")
    return p


def build_parser() -> argparse.ArgumentParser:
    """The whole command line."""
    root = argparse.ArgumentParser(prog="teu", description="Teu: a process manager with superpowers.")
    root.add_argument("-H", "--host", default=None, help="gateway address (default $TEU_HOST or unix:/run/teu/gateway.sock)")
    sub = root.add_subparsers(dest="verb", required=True, metavar="COMMAND")
    p = sub.add_parser("run", help="run a command in a new container")
    p.add_argument("-d", "--detach", action="store_true", help="run in the background and print the id")
    interactive.add_attach_flags(p)
    _container_flags(p)
    p.set_defaults(func=cmd_run, engine_error=ENGINE_ERROR)
    p = sub.add_parser("attach", help="attach to a running container's input and output")
    p.add_argument("--no-stdin", action="store_true", help="do not attach stdin")
    interactive.add_attach_flags(p)
    p.add_argument("container")
    p.set_defaults(func=interactive.cmd_attach)
    p = sub.add_parser("exec", help="run a command in a running container")
    p.add_argument("-d", "--detach", action="store_true", help="run the command in the background")
    p.add_argument("-i", "--interactive", action="store_true", help="keep stdin open")
    p.add_argument("-t", "--tty", action="store_true", help="allocate a pseudo-TTY")
    p.add_argument("-e", "--env", action="append", default=[], help="set environment variables")
    p.add_argument("-u", "--user", default="", help="user[:group] to run as")
    p.add_argument("-w", "--workdir", default="", help="working directory inside the container")
    interactive.add_attach_flags(p, sig_proxy=False)
    p.add_argument("container")
    p.add_argument("command", nargs=argparse.REMAINDER, help="command and arguments")
    p.set_defaults(func=interactive.cmd_exec, engine_error=ENGINE_ERROR)
    p = sub.add_parser("create", help="create a new container")
    _container_flags(p)
    p.set_defaults(func=cmd_create, engine_error=ENGINE_ERROR)
    p = _simple(sub, "start", "start stopped containers")
    p.set_defaults(func=lambda c, a: _each(a.containers, c.start, lambda n, _r: n))
    p = _simple(sub, "stop", "stop running containers", lambda p: p.add_argument("-t", "--time", type=int, default=None))
    p.set_defaults(func=lambda c, a: _each(a.containers, lambda n: c.stop(n, a.time), lambda n, _r: n))
    p = _simple(sub, "restart", "restart containers", lambda p: p.add_argument("-t", "--time", type=int, default=None))
    p.set_defaults(func=lambda c, a: _each(a.containers, lambda n: c.restart(n, a.time), lambda n, _r: n))
    p = _simple(sub, "kill", "send a signal to containers", lambda p: p.add_argument("-s", "--signal", default="KILL"))
    p.set_defaults(func=lambda c, a: _each(a.containers, lambda n: c.kill(n, a.signal), lambda n, _r: n))
    p = _simple(sub, "wait", "block until containers stop, then print their exit codes")
    p.set_defaults(func=lambda c, a: _each(a.containers, c.wait, lambda _n, r: str(r.exit_code)))
    p = _simple(sub, "rm", "remove containers", lambda p: p.add_argument("-f", "--force", action="store_true"))
    p.set_defaults(func=lambda c, a: _each(a.containers, lambda n: c.remove(n, a.force), lambda n, _r: n))
    p = _simple(sub, "inspect", "show details of containers as JSON")
    p.set_defaults(func=lambda c, a: _inspect(a.containers, c.inspect, fmt.inspect_json))
    p = sub.add_parser("ps", help="list containers")
    p.add_argument("-a", "--all", action="store_true", help="show all containers (default: running)")
    p.add_argument("-q", "--quiet", action="store_true", help="only ids")
    p.add_argument("--no-trunc", action="store_true", help="do not truncate output")
    p.set_defaults(func=cmd_ps)
    p = sub.add_parser("logs", help="fetch a container's logs")
    p.add_argument("-f", "--follow", action="store_true", help="follow output until the container exits")
    p.add_argument("-n", "--tail", type=int, default=0, help="only the last N lines")
    p.add_argument("-t", "--timestamps", action="store_true", help="show timestamps")
    p.add_argument("container")
    p.set_defaults(func=cmd_logs)
    p = sub.add_parser("images", help="list images")
    p.add_argument("-q", "--quiet", action="store_true", help="only ids")
    p.set_defaults(func=cmd_images)
    p = sub.add_parser("import", help="import a tarball as an image")
    p.add_argument("-c", "--change", action="append", default=[], help="Dockerfile instruction (CMD, ENV...)")
    p.add_argument("file", help="tar file, or - for stdin")
    p.add_argument("reference", nargs="?", help="REPOSITORY[:TAG]")
    p.set_defaults(func=cmd_import)
    p = sub.add_parser("image", help="manage images")
    isub = p.add_subparsers(dest="image_verb", required=True, metavar="COMMAND")
    ip = isub.add_parser("inspect", help="show details of images as JSON")
    ip.add_argument("containers", nargs="+", metavar="IMAGE")
    ip.set_defaults(func=lambda c, a: _inspect(a.containers, c.inspect_image, fmt.image_json))
    ip = isub.add_parser("ls", help="list images")
    ip.add_argument("-q", "--quiet", action="store_true", help="only ids")
    ip.set_defaults(func=cmd_images)
    sub.add_parser("info", help="engine-wide information").set_defaults(func=cmd_info)
    sub.add_parser("version", help="versions").set_defaults(func=cmd_version)
    return root


def _inspect(names: Sequence[str], get: Callable[[str], Any], shape: Callable[[Any], dict[str, Any]]) -> int:
    found, failed = [], 0
    for name in names:
        try:
            found.append(shape(get(name)))
        except TeuError as exc:
            print(f"Error: {exc.message}", file=sys.stderr)
            failed = 1
    print(json.dumps(found, indent=4))
    return failed


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of ``teu``."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.verb == "exec" and not args.command:
        parser.error("exec needs a container and a command")
    try:
        with Client(args.host) as client:
            code = args.func(client, args)
    except TeuError as exc:
        print(f"Error: {exc.message}", file=sys.stderr)
        code = getattr(args, "engine_error", 1)
    except interactive.DetachKeysError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        code = 1
    except KeyboardInterrupt:
        code = 130
    except BrokenPipeError:
        code = 141
    _exit_now(code)


def _exit_now(code: int) -> None:
    """Flushes and exits without interpreter teardown: gRPC's thread shutdown would add ~10 ms per command."""
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except BrokenPipeError:
        code = 141
    os._exit(code)
