"""``ps --filter``: Docker's container filters over the runtime's records. Pure.

Values of one key are alternatives, every key must match, and every label filter (Docker's rules). Unknown keys, and values
that cannot match anything by construction (a bad status, a non-number for exited), are
INVALID_ARGUMENT rather than an empty list.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Final

from teu_api.errors import InvalidArgument, NotFound
from teu_api.runtime.v1 import runtime_pb2 as rt
from teu_api.types.v1 import types_pb2
from teu_gateway.limits import shown

STATUSES: Final = {
    "created": types_pb2.CONTAINER_STATE_CREATED,
    "running": types_pb2.CONTAINER_STATE_RUNNING,
    "exited": types_pb2.CONTAINER_STATE_EXITED,
}
#: Docker's other statuses: valid to ask for, never a state of a Teu container (yet).
_NEVER: Final = frozenset({"restarting", "removing", "paused", "dead"})
KEYS: Final = frozenset({"id", "name", "label", "status", "ancestor", "exited", "before", "since", "network", "volume",
                         "publish", "expose"})  # fmt: skip


def parse(filters: Sequence[str]) -> dict[str, list[str]]:
    """``key=value`` strings by key; INVALID_ARGUMENT for an unknown key or a bad value."""
    out: dict[str, list[str]] = {}
    for f in filters:
        key, eq, value = f.partition("=")
        if not eq or key not in KEYS:
            raise InvalidArgument(f"invalid filter {shown(f)}: want one of {', '.join(sorted(KEYS))} as KEY=VALUE")
        if key == "status" and value not in STATUSES and value not in _NEVER:
            raise InvalidArgument(f"invalid filter 'status={shown(value)}': want created, restarting, running, removing, "
                                  "paused, exited or dead")  # fmt: skip
        if key == "exited" and not value.lstrip("-").isdigit():
            raise InvalidArgument(f"invalid filter 'exited={shown(value)}': want an exit code")
        out.setdefault(key, []).append(value)
    return out


def _label(c: rt.Container, want: str) -> bool:
    key, eq, value = want.partition("=")
    return key in c.spec.labels and (not eq or c.spec.labels[key] == value)


def _port(spec: str) -> tuple[int, str]:
    number, _, proto = spec.partition("/")
    if not number.isdigit():
        raise InvalidArgument(f"invalid port filter {shown(spec)}: want PORT[/tcp|udp]")
    return int(number), proto or "tcp"


def _ancestor(c: rt.Container, ref: str) -> bool:
    image = c.spec.image_ref
    bare = ref.removeprefix("sha256:")
    return image in (ref, f"{ref}:latest") or (len(bare) >= 4 and c.spec.image_id.removeprefix("sha256:").startswith(bare))


def select(containers: Sequence[rt.Container], filters: Sequence[str], every: bool, last: int = 0) -> list[rt.Container]:
    """What ``ps`` shows of ``containers`` (every container, newest first): those that pass every
    filter, running ones only unless ``every`` or a filter asks for others, the newest ``last`` only."""
    wanted = parse(filters)
    every = every or last > 0 or "exited" in wanted or any(v != "running" for v in wanted.get("status", []))
    chosen = [c for c in containers if every or c.state == types_pb2.CONTAINER_STATE_RUNNING]
    if wanted:
        chosen = _filtered(containers, chosen, wanted)
    return chosen[:last] if last > 0 else chosen


def _find(containers: Sequence[rt.Container], ref: str) -> rt.Container:
    """The container ``ref`` names (id, name or id prefix) among ``containers``."""
    for c in containers:
        if ref in (c.id, c.name):
            return c
    prefixed = [c for c in containers if c.id.startswith(ref)]
    if len(prefixed) == 1:
        return prefixed[0]
    raise NotFound(ref)


def _filtered(containers: Sequence[rt.Container], chosen: list[rt.Container], wanted: dict[str, list[str]]) -> list[rt.Container]:
    bounds: list[Callable[[rt.Container], bool]] = []
    for key, test in (("before", lambda ref_c, c: c.created_at < ref_c.created_at),
                      ("since", lambda ref_c, c: c.created_at > ref_c.created_at)):  # fmt: skip
        for ref in wanted.get(key, []):
            try:
                anchor = _find(containers, ref)
            except NotFound:
                raise InvalidArgument(f"invalid filter '{key}={shown(ref)}': no such container") from None
            bounds.append(lambda c, a=anchor, t=test: t(a, c))  # type: ignore[misc]

    def passes(c: rt.Container) -> bool:
        checks: dict[str, Callable[[str], bool]] = {
            "id": c.id.startswith,
            "name": lambda v: _pattern(v).search(c.name) is not None,
            "label": lambda v: _label(c, v),
            "status": lambda v: STATUSES.get(v) == c.state,
            "ancestor": lambda v: _ancestor(c, v),
            "exited": lambda v: c.state == types_pb2.CONTAINER_STATE_EXITED and c.exit_code == int(v),
            "network": lambda v: v in (c.spec.network, c.network.network),
            "volume": lambda v: any(v in (m.volume, m.mount.destination, m.mount.source) for m in c.spec.mounts),
            "publish": lambda v: any((p.container_port, p.protocol or "tcp") == _port(v) for p in c.network.ports),
            "expose": lambda v: any((p.container_port, p.protocol or "tcp") == _port(v) for p in c.spec.ports),
        }
        return all((all if k == "label" else any)(checks[k](v) for v in vs) for k, vs in wanted.items() if k in checks) and all(
            b(c) for b in bounds
        )

    return [c for c in chosen if passes(c)]


def _pattern(value: str) -> re.Pattern[str]:
    """Docker matches names by regular expression (a plain word matches as a substring)."""
    try:
        return re.compile(value)
    except re.error:
        raise InvalidArgument(f"invalid filter 'name={shown(value)}': not a regular expression") from None
