"""Oversized and absurd values: each refused up front with INVALID_ARGUMENT naming the field, never
echoed whole, nothing left behind."""

from __future__ import annotations

from typing import Any

import pytest

from conftest import Engine
from teu.client import Client, ContainerOptions
from teu.errors import InvalidArgument
from teu_api.gateway.v1 import gateway_pb2 as gw
from teu_api.types.v1 import types_pb2

MB = 1 << 20
HUGE = "x" * (10 * MB)

# (field as the error names it, options of a container that oversteps that field's bound)
CASES: list[tuple[str, dict[str, Any]]] = [
    ("image", {"image": HUGE}),
    ("name", {"name": HUGE}),
    ("name", {"name": "a" * 300}),
    ("cmd", {"cmd": ["echo", "x" * (200 << 10)]}),
    ("cmd and env", {"env": [f"K{i}=v" for i in range(100_000)]}),
    ("env", {"env": ["K=" + "v" * (200 << 10)]}),
    ("working_dir", {"workdir": "/" + "d" * 5000}),
    ("user", {"user": "u" * 1000}),
    ("hostname", {"hostname": "h" * 300}),
    ("labels", {"labels": {f"k{i}": "v" for i in range(2000)}}),
    ("labels", {"labels": {"k": "v" * MB}}),
    ("network", {"network": HUGE}),
    ("ports", {"ports": [types_pb2.PortMapping(host_port=1, container_port=1)] * 2000}),
    ("log_opts", {"log_opts": {"max-size": "1" * 100}}),
    ("cap_add", {"cap_add": ["CAP_" + "X" * 100]}),
    ("cap_drop", {"cap_drop": ["CHOWN"] * 100}),
    ("security_opt", {"security_opt": ["seccomp=" + "x" * (2 * MB)]}),
    ("devices", {"devices": [types_pb2.Device(path_on_host="/" + "d" * 5000)]}),
    ("ulimits", {"ulimits": [types_pb2.Ulimit(name="nofile", soft=1, hard=1)] * 100}),
    ("userns", {"userns": "u" * 100}),
    ("mounts", {"mounts": [gw.MountSpec(type="tmpfs", target="/t")] * 300}),
    ("mounts", {"mounts": [gw.MountSpec(type="bind", source="/" + "d" * 5000, target="/t")]}),
    ("mounts.tmpfs_options", {"mounts": [gw.MountSpec(type="tmpfs", target="/t", tmpfs_options=["x" * 100])]}),
    ("pids_limit", {"pids_limit": (1 << 63) - 1}),
    ("stop_timeout", {"stop_timeout": -5}),
]


@pytest.mark.parametrize(("field", "options"), CASES, ids=[f"{f}-{i}" for i, (f, _) in enumerate(CASES)])
def test_each_field_has_a_bound(client: Client, engine: Engine, field: str, options: dict[str, Any]) -> None:
    """create with one field out of bounds is INVALID_ARGUMENT naming the field, in a short message,
    and leaves no container behind."""
    before = {c.id for c in client.list(all=True)}
    with pytest.raises(InvalidArgument) as refused:
        client.create(ContainerOptions(**{"image": "busybox", "cmd": ["true"], **options}))
    assert field in refused.value.message and len(refused.value.message) < 300
    assert {c.id for c in client.list(all=True)} == before


def test_a_huge_reference_is_invalid_not_internal(client: Client) -> None:
    """inspect, stop or rm of a 10 MB name is INVALID_ARGUMENT with a short message."""
    for call in (client.inspect, client.stop, client.remove):
        with pytest.raises(InvalidArgument) as refused:
            call(HUGE)
        assert "container" in refused.value.message and len(refused.value.message) < 300


def test_values_at_their_bounds_still_run(client: Client) -> None:
    """A long but legal command, 1000 labels and the largest pids limit pass and the container runs."""
    options = ContainerOptions(
        image="busybox", cmd=["sh", "-c", "exit 0", "a" * (100 << 10)], labels={f"k{i}": "v" for i in range(1000)},
        pids_limit=1 << 22, remove=True,
    )  # fmt: skip
    assert client.run(options).exit_code == 0


def test_a_container_named_a_thousand_times_is_read_once(client: Client) -> None:
    """logs of one container named 1000 times gives its 100 lines once; more than 64 different
    containers in one request is INVALID_ARGUMENT."""
    cid = client.create(ContainerOptions(image="busybox", cmd=["seq", "100"], name="logged-once")).id
    try:
        client.start(cid)
        client.wait(cid)
        lines = [line.data for line in client.logs_many(["logged-once"] * 1000)]
        assert lines == [b"%d\n" % i for i in range(1, 101)]
        with pytest.raises(InvalidArgument, match="at most 64"):
            list(client.logs_many([f"c{i}" for i in range(65)]))
    finally:
        client.remove(cid, force=True)
