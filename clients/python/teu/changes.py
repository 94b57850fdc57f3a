"""Dockerfile-style instructions (``CMD ["sh"]``, ``ENV K=V``...) as an image config, for import and commit."""

from __future__ import annotations

import json

from teu.errors import InvalidArgument
from teu_api.times import duration_ns
from teu_api.types.v1 import types_pb2

__all__ = ["changes", "fields"]
_FIELDS = {"CMD": "cmd", "ENTRYPOINT": "entrypoint", "ENV": "env", "WORKDIR": "working_dir", "USER": "user",
           "LABEL": "labels", "STOPSIGNAL": "stop_signal", "VOLUME": "volumes", "EXPOSE": "exposed_ports",
           "HEALTHCHECK": "healthcheck"}  # fmt: skip


def fields(instructions: list[str]) -> list[str]:
    """The config fields the instructions set (``CMD ...`` sets ``cmd``)."""
    return sorted({_FIELDS.get(i.strip().split(" ", 1)[0].upper(), i) for i in instructions})


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
    """``--change`` instructions (CMD, ENTRYPOINT, ENV, WORKDIR, USER, LABEL, STOPSIGNAL, VOLUME, EXPOSE,
    HEALTHCHECK) as a config."""
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
        elif word == "VOLUME":
            paths = _argv(rest) if rest.strip().startswith("[") else rest.split()
            if not paths or not all(p.startswith("/") for p in paths):
                raise InvalidArgument(f"VOLUME needs absolute paths: {rest.strip()!r}")
            config.volumes.extend(p for p in paths if p not in config.volumes)
        elif word == "HEALTHCHECK":
            config.healthcheck.CopyFrom(healthcheck(rest))
        elif word == "EXPOSE":
            for port in rest.split():
                number, _, proto = port.partition("/")
                if not number.isdigit() or not 1 <= int(number) <= 65535 or proto not in ("", "tcp", "udp"):
                    raise InvalidArgument(f"invalid EXPOSE port {port!r}")
                config.exposed_ports.append(f"{int(number)}/{proto or 'tcp'}")
        else:
            raise InvalidArgument(f"unsupported --change instruction: {word}")
    return config


_HEALTH_OPTIONS = {"--interval": "interval_ns", "--timeout": "timeout_ns", "--start-period": "start_period_ns",
                   "--start-interval": "start_interval_ns", "--retries": "retries"}  # fmt: skip


def healthcheck(rest: str) -> types_pb2.HealthConfig:
    """``HEALTHCHECK [--interval=30s ...] CMD command`` or ``HEALTHCHECK NONE``, as a Dockerfile writes it."""
    words = rest.strip().split(" ")
    out = types_pb2.HealthConfig()
    while words and words[0].startswith("--"):
        flag, _, value = words.pop(0).partition("=")
        if flag not in _HEALTH_OPTIONS:
            raise InvalidArgument(f"unknown HEALTHCHECK option {flag!r}")
        setattr(out, _HEALTH_OPTIONS[flag], int(value) if flag == "--retries" else duration_ns(value))
    kind, _, command = " ".join(words).partition(" ")
    if kind.upper() == "NONE":
        out.test[:] = ["NONE"]
    elif kind.upper() == "CMD" and command.strip():
        cmd = command.strip()
        out.test[:] = ["CMD", *_argv(cmd)] if cmd.startswith("[") else ["CMD-SHELL", cmd]
    else:
        raise InvalidArgument(f"invalid HEALTHCHECK {rest.strip()[:60]!r}: want CMD command or NONE")
    return out
