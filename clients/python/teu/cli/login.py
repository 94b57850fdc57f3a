"""``teu login`` and ``teu logout``: registry credentials kept by the CLI (see :mod:`teu.auth`)."""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import Any

from teu import auth
from teu.client import Client
from teu.errors import InvalidArgument

_HUB = "docker.io"


def cmd_login(c: Client, a: argparse.Namespace) -> int:
    """Verifies the credentials against the registry, then stores them (Docker's ``login``)."""
    key = auth.registry_key(a.server or _HUB)
    username, password = _credentials(a)
    from teu._login import verify  # only login pays for the HTTP client

    verify(key, username, password)
    path = auth.save(key, username, password)
    print(f"WARNING! Your password will be stored unencrypted in {path}.", file=sys.stderr)
    print("Login Succeeded")
    return 0


def cmd_logout(c: Client, a: argparse.Namespace) -> int:
    """Removes the registry's entry from teu's file (Docker's ``logout``)."""
    key = auth.registry_key(a.server or _HUB)
    if not auth.remove(key):
        print(f"Not logged in to {key}")
        return 0
    print(f"Removing login credentials for {key}")
    if auth.lookup(key, warn=sys.stderr) is not None:
        print(f"WARNING: credentials for {key} in {auth.docker_config_path()} are still used", file=sys.stderr)
    return 0


def _credentials(a: argparse.Namespace) -> tuple[str, str]:
    """User and password from the flags, stdin (--password-stdin) or prompts on a terminal."""
    username: str = a.username or ""
    if a.password_stdin:
        if not username:
            raise InvalidArgument("must provide --username with --password-stdin")
        password = sys.stdin.read().removesuffix("\n").removesuffix("\r")  # Docker trims one line end
    elif a.password is not None:
        print("WARNING! Using --password via the CLI is insecure. Use --password-stdin.", file=sys.stderr)
        password = a.password
    else:
        if not sys.stdin.isatty():
            raise InvalidArgument("cannot perform an interactive login from a non-TTY device (use -u and --password-stdin)")
        username = username or input("Username: ").strip()
        password = getpass.getpass("Password: ")
    if not username or not password:
        raise InvalidArgument("username and password are required")
    return username, password


def register(sub: Any) -> None:
    """Adds ``login`` and ``logout``."""
    p = sub.add_parser(
        "login",
        help="log in to a registry",
        description="Checks the credentials against the registry (GET /v2/, as docker login does), then stores "
        "them for pull and push in $XDG_CONFIG_HOME/teu/auth.json (default ~/.config/teu/auth.json, mode 0600, "
        "unencrypted). Credentials in Docker's ~/.docker/config.json are used too; teu's win.",
    )
    p.add_argument("-u", "--username", default=None, help="user name")
    secret = p.add_mutually_exclusive_group()
    secret.add_argument("-p", "--password", default=None, help="password (insecure: prefer --password-stdin)")
    secret.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    p.add_argument("server", nargs="?", default=None, metavar="SERVER", help="registry (default: Docker Hub)")
    p.set_defaults(func=cmd_login)
    p = sub.add_parser("logout", help="log out from a registry", description="Removes the registry's credentials "
                       "from teu's file (Docker's ~/.docker/config.json is never changed).")  # fmt: skip
    p.add_argument("server", nargs="?", default=None, metavar="SERVER", help="registry (default: Docker Hub)")
    p.set_defaults(func=cmd_logout)
