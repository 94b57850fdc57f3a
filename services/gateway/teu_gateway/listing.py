"""``ps --filter``: Docker's container filters over the runtime's records. Pure.

Values of one key are alternatives, every key must match, and every label filter (Docker's rules). Unknown keys, and values
that cannot match anything by construction (a bad status, a non-number for exited), are
INVALID_ARGUMENT rather than an empty list.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Sequence
from typing import Final

from teu_api.errors import InvalidArgument, NotFound
from teu_api.prunefilter import labelled, prune_filter
from teu_api.runtime.v1 import runtime_pb2 as rt
from teu_api.storage.v1 import storage_pb2 as st
from teu_api.types.v1 import types_pb2
from teu_gateway.limits import shown

STATUSES: Final = {
    "created": types_pb2.CONTAINER_STATE_CREATED,
    "running": types_pb2.CONTAINER_STATE_RUNNING,
    "exited": types_pb2.CONTAINER_STATE_EXITED,
}
#: Docker's other statuses: valid to ask for, never a state of a Teu container (yet).
_NEVER: Final = frozenset({"restarting", "removing", "dead"})
KEYS: Final = frozenset({"id", "name", "label", "status", "ancestor", "exited", "before", "since", "network", "volume",
                         "publish", "expose"})  # fmt: skip


def parse(filters: Sequence[str]) -> dict[str, list[str]]:
    """``key=value`` strings by key; INVALID_ARGUMENT for an unknown key or a bad value."""
    out: dict[str, list[str]] = {}
    for f in filters:
        key, eq, value = f.partition("=")
        if not eq or key not in KEYS:
            raise InvalidArgument(f"invalid filter {shown(f)}: want one of {', '.join(sorted(KEYS))} as KEY=VALUE")
        if key == "status" and value not in STATUSES and value not in _NEVER and value != "paused":
            raise InvalidArgument(f"invalid filter 'status={shown(value)}': want created, restarting, running, removing, "
                                  "paused, exited or dead")  # fmt: skip
        if key == "exited" and not value.lstrip("-").isdigit():
            raise InvalidArgument(f"invalid filter 'exited={shown(value)}': want an exit code")
        out.setdefault(key, []).append(value)
    return out


def _label(c: rt.Container, want: str) -> bool:
    return labelled(c.spec.labels, want)


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
            "status": lambda v: c.paused if v == "paused" else STATUSES.get(v) == c.state and not c.paused,
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


IMAGE_KEYS: Final = frozenset({"dangling", "reference", "label", "before", "since"})


def without_intermediate(images: Sequence[st.Image]) -> list[st.Image]:
    """Images without the untagged ones another image was made from (a build's intermediate steps),
    as Docker's ``images`` leaves them out without ``-a``."""
    parents = {i.parent for i in images if i.parent}
    return [i for i in images if i.repo_tags or i.id not in parents]


def select_images(images: Sequence[st.Image], filters: Sequence[str]) -> list[st.Image]:
    """``images --filter``: dangling (untagged), reference (a glob on name[:tag], as Docker's),
    label (every one must match), before/since (an image named by name or id)."""
    wanted: dict[str, list[str]] = {}
    for f in filters:
        key, eq, value = f.partition("=")
        if not eq or key not in IMAGE_KEYS:
            raise InvalidArgument(f"invalid filter {shown(f)}: want one of {', '.join(sorted(IMAGE_KEYS))} as KEY=VALUE")
        if key == "dangling" and value.lower() not in ("true", "false", "1", "0"):
            raise InvalidArgument(f"invalid filter 'dangling={shown(value)}': want true or false")
        wanted.setdefault(key, []).append(value)

    def anchor(ref: str) -> st.Image:
        bare = ref.removeprefix("sha256:")
        for i in images:
            if (
                ref in i.repo_tags
                or f"{ref}:latest" in i.repo_tags
                or (len(bare) >= 4 and i.id.removeprefix("sha256:").startswith(bare))
            ):
                return i
        raise InvalidArgument(f"invalid filter: no such image {shown(ref)}")

    bounds = [(anchor(r).created_at, -1) for r in wanted.get("before", [])] + [
        (anchor(r).created_at, 1) for r in wanted.get("since", [])
    ]

    def passes(i: st.Image) -> bool:
        if "dangling" in wanted and not any((d.lower() in ("true", "1")) == (not i.repo_tags) for d in wanted["dangling"]):
            return False
        if "reference" in wanted and not any(_reference(i, r) for r in wanted["reference"]):
            return False
        labels = i.config.labels
        for f in wanted.get("label", []):
            key, eq, value = f.partition("=")
            if key not in labels or (eq and labels[key] != value):
                return False
        return all((i.created_at - at) * sign > 0 for at, sign in bounds)

    chosen = [i for i in images if passes(i)]
    if "reference" not in wanted:
        return chosen
    out = []
    for i in chosen:  # as Docker, only the names that match are shown
        narrowed = st.Image()
        narrowed.CopyFrom(i)
        narrowed.repo_tags[:] = [t for t in i.repo_tags if any(_tag_matches(t, r) for r in wanted["reference"])]
        out.append(narrowed)
    return out


def _reference(i: st.Image, pattern: str) -> bool:
    """Docker's reference filter: a glob on one of the names (name:tag, or the name alone)."""
    return any(_tag_matches(tag, pattern) for tag in i.repo_tags)


def _tag_matches(tag: str, pattern: str) -> bool:
    name = tag.rpartition(":")[0] if ":" in tag.rpartition("/")[2] else tag
    return fnmatch.fnmatchcase(tag, pattern) or fnmatch.fnmatchcase(name, pattern)


NETWORK_KEYS: Final = frozenset({"name", "id", "driver", "type", "dangling", "label"})
DEFAULT_NETWORK: Final = "bridge"


def select_networks(networks: Sequence[types_pb2.Network], filters: Sequence[str]) -> list[types_pb2.Network]:
    """``network ls --filter``: name (substring), id (prefix), driver, type=custom|builtin (the
    default bridge is the built-in one), dangling (no container on it now), label (every one)."""
    wanted: dict[str, list[str]] = {}
    for f in filters:
        key, eq, value = f.partition("=")
        if not eq or key not in NETWORK_KEYS:
            raise InvalidArgument(f"invalid filter {shown(f)}: want one of {', '.join(sorted(NETWORK_KEYS))} as KEY=VALUE")
        if key == "type" and value not in ("custom", "builtin"):
            raise InvalidArgument(f"invalid filter 'type={shown(value)}': want custom or builtin")
        wanted.setdefault(key, []).append(value)
    checks: dict[str, Callable[[types_pb2.Network, str], bool]] = {
        "name": lambda n, v: v in n.name,
        "id": lambda n, v: n.id.startswith(v),
        "driver": lambda n, v: n.driver == v,
        "type": lambda n, v: (n.name == DEFAULT_NETWORK) == (v == "builtin"),
        "dangling": lambda n, v: (not n.containers) == (v.lower() in ("true", "1")),
        "label": lambda n, v: (
            v.partition("=")[0] in n.labels and (not v.partition("=")[1] or n.labels[v.partition("=")[0]] == v.partition("=")[2])
        ),
    }
    return [n for n in networks if all((all if k == "label" else any)(checks[k](n, v) for v in vs) for k, vs in wanted.items())]


def prunable(containers: Sequence[rt.Container], filters: Sequence[str], now_ns: int) -> list[rt.Container]:
    """``container prune``: those not running, created before every until=, with every label= and none of label!=."""
    kept = prune_filter(filters, now_ns)
    return [c for c in containers if c.state != types_pb2.CONTAINER_STATE_RUNNING and kept(c.created_at, c.spec.labels)]
