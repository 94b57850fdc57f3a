"""Parsing of Docker-style option values: sizes, CPUs, env, image changes. Pure."""

from __future__ import annotations

import json
import os
import re

from teu.errors import InvalidArgument
from teu.types.v1 import types_pb2

_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def memory(value: str) -> int:
    """Bytes for "16m", "1g", "512k", "100" (units of 1024, as Docker)."""
    m = re.fullmatch(r"\s*(-?\d+(?:\.\d+)?)\s*([bkmgt]?)b?\s*", value.lower())
    if not m:
        raise InvalidArgument(f"invalid size: {value!r}")
    return int(float(m.group(1)) * _UNITS[m.group(2)])


def nano_cpus(value: str) -> int:
    """Billionths of a CPU for "0.5", "2"."""
    try:
        return round(float(value) * 1_000_000_000)
    except ValueError:
        raise InvalidArgument(f"invalid cpus value: {value!r}") from None


def env(items: list[str]) -> list[str]:
    """``-e`` values: "K=V" as is; a bare "K" takes the caller's value, or is dropped if unset."""
    out = []
    for item in items:
        if "=" in item:
            out.append(item)
        elif item in os.environ:
            out.append(f"{item}={os.environ[item]}")
    return out


def labels(items: list[str]) -> dict[str, str]:
    """``-l K=V`` values as a dict."""
    return {key: value for key, _, value in (item.partition("=") for item in items)}


def _argv(text: str) -> list[str]:
    text = text.strip()
    if text.startswith("["):
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            raise InvalidArgument(f"invalid JSON array: {text}") from None
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise InvalidArgument(f"expected a JSON array of strings: {text}")
        return value
    return ["/bin/sh", "-c", text]


def changes(items: list[str]) -> types_pb2.ImageConfig:
    """``--change`` instructions (CMD, ENTRYPOINT, ENV, WORKDIR, USER, LABEL, STOPSIGNAL) as a config."""
    config = types_pb2.ImageConfig()
    for item in items:
        word, _, rest = item.strip().partition(" ")
        word = word.upper()
        if word == "CMD":
            config.cmd[:] = _argv(rest)
        elif word == "ENTRYPOINT":
            config.entrypoint[:] = _argv(rest)
        elif word == "ENV":
            key, sep, value = rest.strip().partition("=")
            if not sep:
                key, _, value = rest.strip().partition(" ")
            config.env.append(f"{key}={value.strip()}")
        elif word == "WORKDIR":
            config.working_dir = rest.strip()
        elif word == "USER":
            config.user = rest.strip()
        elif word == "LABEL":
            key, _, value = rest.strip().partition("=")
            config.labels[key] = value.strip('"')
        elif word == "STOPSIGNAL":
            config.stop_signal = rest.strip()
        else:
            raise InvalidArgument(f"unsupported --change instruction: {word}")
    return config
