"""The ``teu`` command: Docker's verbs and flags over the Python SDK."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Sequence

from teu.cli import build, containers, images, interactive, login, system, volumes
from teu.cli.warm import WarmClient
from teu.client import Client, TlsConfig
from teu.errors import TeuError


def build_parser() -> argparse.ArgumentParser:
    """The whole command line."""
    root = argparse.ArgumentParser(prog="teu", description="Teu: a process manager with superpowers.")
    root.add_argument("-H", "--host", default=None, help="gateway: unix:PATH or tcp://HOST:PORT (default $TEU_HOST, else local)")
    root.add_argument("--tls-ca", metavar="PEM", help="for tcp://: CA of the engine's cert ($TEU_TLS_CA, $TEU_CERT_PATH/ca.pem)")
    root.add_argument("--tls-cert", metavar="PEM", help="for tcp://: client certificate ($TEU_TLS_CERT, $TEU_CERT_PATH/cert.pem)")
    root.add_argument("--tls-key", metavar="PEM", help="for tcp://: client key ($TEU_TLS_KEY, $TEU_CERT_PATH/key.pem)")
    sub = root.add_subparsers(dest="verb", required=True, metavar="COMMAND")
    containers.register(sub)
    images.register(sub)
    build.register(sub)
    login.register(sub)
    system.register(sub)
    volumes.register(sub)
    return root


def main(
    argv: Sequence[str] | None = None, parser: argparse.ArgumentParser | None = None, warm: WarmClient | None = None
) -> None:
    """Runs one command and exits (``parser``: one built already, as the resident client holds;
    ``warm``: a connection its spare made, used if it is to this command's gateway)."""
    parser = parser or build_parser()
    args = parser.parse_args(docker_spellings(list(sys.argv[1:] if argv is None else argv)))
    if args.verb == "exec" and not args.command:
        parser.error("exec needs a container and a command")
    try:
        flags = (args.tls_ca, args.tls_cert, args.tls_key)
        tls = TlsConfig.resolve(*flags) if any(flags) else None
        taken = warm.take(args.host, tls) if warm else None
        with contextlib.nullcontext(taken) if taken else Client(args.host, tls=tls) as client:  # see WarmClient on closing
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
    exit_now(code)


# docker's `container VERB`, the same as `VERB`
CONTAINER_VERBS = frozenset({
    "attach", "commit", "cp", "create", "diff", "exec", "export", "kill", "logs", "pause", "port", "rename", "restart",
    "rm", "run", "start", "stats", "stop", "top", "unpause", "update", "wait",
})  # fmt: skip
_VALUED = frozenset({"-H", "--host", "--tls-ca", "--tls-cert", "--tls-key"})


def docker_spellings(argv: list[str]) -> list[str]:
    """``container VERB ...`` as ``VERB ...``, ``container ls|list|ps`` as ``ps``, ``container inspect``
    as ``inspect --type container`` (docker's management-command spellings; ``container prune`` is
    its own); the engine options before them stay."""
    i = 0
    while i < len(argv) and argv[i].startswith("-"):
        i += 2 if argv[i] in _VALUED else 1
    if i + 1 >= len(argv) or argv[i] != "container":
        return argv
    verb, rest = argv[i + 1], argv[i + 2 :]
    if verb in CONTAINER_VERBS:
        return [*argv[:i], verb, *rest]
    if verb in ("ls", "list", "ps"):
        return [*argv[:i], "ps", *rest]
    if verb == "inspect":
        return [*argv[:i], "inspect", "--type", "container", *rest]
    return argv


def exit_now(code: int) -> None:
    """Flushes and exits without interpreter teardown: gRPC's thread shutdown would add ~10 ms per command."""
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except BrokenPipeError:
        code = 141
    os._exit(code)
