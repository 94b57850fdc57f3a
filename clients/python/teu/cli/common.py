"""Pieces every group of CLI commands uses: applying a verb to many names, JSON inspect, one-line errors."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from typing import Any

from teu.cli import template
from teu.client import Client
from teu.errors import TeuError

ENGINE_ERROR = 125
Handler = Callable[[Client, argparse.Namespace], int]


def each(names: Sequence[str], action: Callable[[str], Any], show: Callable[[str, Any], str | None]) -> int:
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


def inspect_all(names: Sequence[str], get: Callable[[str], Any], shape: Callable[[Any], dict[str, Any]], fmt: str = "") -> int:
    """Prints a JSON array of what ``get`` finds for each name, or with ``fmt`` (``-f``) that
    template evaluated on each; errors one line each."""
    found, failed = [], 0
    for name in names:
        try:
            found.append(shape(get(name)))
        except TeuError as exc:
            print(f"Error: {exc.message}", file=sys.stderr)
            failed = 1
    if fmt:
        for item in found:
            print(template.render(fmt, item))
    else:
        print(json.dumps(found, indent=4))
    return failed


def add_format(p: argparse.ArgumentParser) -> None:
    """``-f/--format`` of the inspect verbs."""
    p.add_argument("-f", "--format", default="", help="a Go template, e.g. '{{.State.Status}}' or '{{json .Config}}'")


def verb(
    sub: Any, name: str, help_: str, extra: Callable[[argparse.ArgumentParser], Any] | None = None, metavar: str = "CONTAINER"
) -> argparse.ArgumentParser:
    """A sub-command taking one or more names."""
    p: argparse.ArgumentParser = sub.add_parser(name, help=help_, description=help_)
    if extra:
        extra(p)
    p.add_argument("names", nargs="+", metavar=metavar)
    return p
