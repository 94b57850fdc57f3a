"""Merging the user's options with the image's config, and validating them."""

from __future__ import annotations

import pytest

from teu_api.errors import FailedPrecondition, InvalidArgument
from teu_api.gateway.v1 import gateway_pb2 as gw
from teu_api.storage.v1 import storage_pb2 as st
from teu_api.types.v1 import types_pb2
from teu_gateway import options

IMAGE = st.Image(id="sha256:" + "a" * 64, config=types_pb2.ImageConfig(
    entrypoint=["/entry"], cmd=["default"], env=["PATH=/bin", "A=1"], working_dir="/app", user="nobody"))  # fmt: skip


def spec(**kw: object) -> object:
    """The runtime spec for busybox-like options."""
    return options.container_spec(gw.ContainerConfig(image="img", **kw), IMAGE, cpus=2)  # type: ignore[arg-type]


def test_image_defaults_apply() -> None:
    """Without options the image's entrypoint, cmd, env, workdir and user are used."""
    s = spec()
    assert list(s.process.args) == ["/entry", "default"]
    assert (list(s.process.env), s.process.cwd, s.process.user) == (["PATH=/bin", "A=1"], "/app", "nobody")


def test_command_replaces_cmd_keeps_entrypoint() -> None:
    """A command replaces the image's Cmd but runs through its Entrypoint."""
    assert list(spec(cmd=["x"]).process.args) == ["/entry", "x"]


def test_entrypoint_override_drops_image_cmd() -> None:
    """--entrypoint drops the image's Cmd, as Docker does."""
    assert list(spec(entrypoint=types_pb2.StringList(values=["sh"])).process.args) == ["sh"]


def test_env_override_and_removal() -> None:
    """-e K=V overrides, bare -e K removes."""
    assert list(spec(env=["A=2", "PATH"]).process.env) == ["A=2"]


def test_relative_workdir_is_invalid() -> None:
    """-w must be absolute."""
    with pytest.raises(InvalidArgument):
        spec(working_dir="rel")


@pytest.mark.parametrize("res", [dict(memory_bytes=1000), dict(memory_bytes=1 << 60), dict(nano_cpus=3 * 10**9),
                                 dict(nano_cpus=1000), dict(pids_limit=-2)])  # fmt: skip
def test_out_of_range_limits(res: dict[str, int]) -> None:
    """Limits below Docker's minimum, above the host, or negative are rejected."""
    with pytest.raises(InvalidArgument):
        spec(resources=types_pb2.Resources(**res))


def test_unlimited_pids_is_zero() -> None:
    """--pids-limit -1 means no limit."""
    assert spec(resources=types_pb2.Resources(pids_limit=-1)).resources.pids_limit == 0


def test_original_config_is_kept_for_inspect() -> None:
    """The user's request travels with the container, for inspect."""
    s = spec(name="n", cmd=["x"])
    kept = gw.ContainerConfig()
    kept.ParseFromString(s.extensions[options.CONFIG_KEY])
    assert (kept.name, list(kept.cmd)) == ("n", ["x"])


def test_output_chunks_join_records_per_stream() -> None:
    """Attached output is sent as one frame per run of same-stream records, in order."""
    from teu_api.logs.v1 import logs_pb2 as lg
    from teu_gateway.logflows import outputs

    out, err = types_pb2.STREAM_STDOUT, types_pb2.STREAM_STDERR
    recs = [lg.LogRecord(stream=out, data=b"a\n"), lg.LogRecord(stream=out, data=b"b"), lg.LogRecord(stream=err, data=b"e\n"),
            lg.LogRecord(stream=out, data=b"c\n")]  # fmt: skip
    batch = lg.ReadLogResponse(records=recs)
    assert [(c.stream, c.data) for c in outputs(batch)] == [(out, b"a\nb"), (err, b"e\n"), (out, b"c\n")]


@pytest.mark.parametrize(("opts", "expected"), [({}, (0, 0)), ({"max-size": "10m", "max-files": "3"}, (10 << 20, 3))])
def test_log_options(opts: dict[str, str], expected: tuple[int, int]) -> None:
    """--log-opt max-size/max-files parse to bytes and a count; unset means the engine default."""
    assert options.log_options(opts) == expected


@pytest.mark.parametrize("opts", [{"max-size": "ten"}, {"max-files": "0"}, {"max-size": "1k"}, {"compress": "true"}])
def test_bad_log_options(opts: dict[str, str]) -> None:
    """Unknown or out-of-range log options are INVALID_ARGUMENT."""
    with pytest.raises(InvalidArgument):
        options.log_options(opts)


def test_hostname_with_a_trailing_newline_is_refused() -> None:
    """A hostname that ends in a newline is invalid (the whole value is checked)."""
    with pytest.raises(InvalidArgument, match="hostname"):
        spec(hostname="web\n")
    assert spec(hostname="web.local").hostname == "web.local"


def test_security_options_parse_dockers_spellings() -> None:
    """--security-opt no-new-privileges (= and : forms), seccomp=unconfined, profile text; apparmor
    is refused where the host lacks it, an unknown option always."""
    s = spec(security_opt=["no-new-privileges:true", "seccomp=unconfined", "label=disable"], cap_add=["NET_ADMIN"])
    assert (s.security.no_new_privileges, s.security.seccomp, list(s.security.cap_add)) == (True, "unconfined", ["NET_ADMIN"])
    assert spec(security_opt=["no-new-privileges=false"]).security.no_new_privileges is False
    assert spec(security_opt=['seccomp={"defaultAction": "SCMP_ACT_ALLOW"}']).security.seccomp.startswith("{")
    with pytest.raises(FailedPrecondition, match="AppArmor"):
        spec(security_opt=["apparmor=docker-default"])
    with pytest.raises(InvalidArgument, match="security-opt"):
        spec(security_opt=["no-new-privileges=maybe"])
