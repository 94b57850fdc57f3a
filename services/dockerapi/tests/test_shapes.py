"""Docker's create body as the API's ContainerConfig, and bad bodies refused."""

from __future__ import annotations

import struct

import pytest

from teu_api.errors import InvalidArgument
from teu_api.types.v1 import types_pb2
from teu_dockerapi import shapes
from teu_dockerapi.framing import frame


def test_a_create_body_as_docker_py_sends_it() -> None:
    body = {
        "Image": "busybox", "Cmd": ["sh", "-c", "date"], "Entrypoint": None, "Env": ["A=1"], "Labels": {"k": "v"},
        "Tty": True, "OpenStdin": True, "ExposedPorts": {"80/tcp": {}}, "StopSignal": "SIGINT",
        "HostConfig": {
            "Binds": ["/srv:/data:ro", "vol:/cache"], "PortBindings": {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8080"}]},
            "RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 3}, "Memory": 64 << 20, "NanoCpus": 500_000_000,
            "NetworkMode": "default", "AutoRemove": True, "LogConfig": {"Type": "json-file", "Config": {"max-size": "1m"}},
            "Mounts": [{"Type": "tmpfs", "Target": "/run", "TmpfsOptions": {"SizeBytes": 1 << 20}}],
        },
    }  # fmt: skip
    c = shapes.create_config(body, "web")
    assert (c.image, c.name, list(c.cmd), list(c.env), dict(c.labels), c.tty, c.open_stdin) == (
        "busybox", "web", ["sh", "-c", "date"], ["A=1"], {"k": "v"}, True, True,
    )  # fmt: skip
    assert not c.HasField("entrypoint") and list(c.expose) == ["80/tcp"] and c.stop_signal == "SIGINT"
    assert [(m.type, m.source, m.target, m.read_only) for m in c.mounts] == [
        ("bind", "/srv", "/data", True), ("volume", "vol", "/cache", False), ("tmpfs", "", "/run", False),
    ]  # fmt: skip
    assert c.mounts[2].tmpfs_size == 1 << 20
    assert list(c.ports) == [types_pb2.PortMapping(host_ip="127.0.0.1", host_port=8080, container_port=80, protocol="tcp")]
    assert (c.restart.name, c.restart.maximum_retry_count) == ("on-failure", 3)
    assert (c.resources.memory_bytes, c.resources.nano_cpus, c.network, c.auto_remove) == (64 << 20, 500_000_000, "", True)
    assert dict(c.log_opts) == {"max-size": "1m"}


@pytest.mark.parametrize(
    "body",
    [[], {}, {"Image": ""}, {"Image": "b", "Cmd": [1]}, {"Image": "b", "Labels": {"a": 1}}, {"Image": "b", "HostConfig": []},
     {"Image": "b", "HostConfig": {"Memory": "lots"}}, {"Image": "b", "HostConfig": {"PortBindings": {"x/tcp": []}}}],
)  # fmt: skip
def test_bad_bodies_are_invalid(body: object) -> None:
    with pytest.raises(InvalidArgument):
        shapes.create_config(body, "")


def test_frames_carry_the_stream_and_the_size() -> None:
    assert frame(types_pb2.STREAM_STDERR, b"oops\n") == struct.pack(">BxxxL", 2, 5) + b"oops\n"
    assert frame(types_pb2.STREAM_STDOUT, b"") == bytes([1, 0, 0, 0, 0, 0, 0, 0])
