"""The CLI's parsing of Docker-style values and its output formats."""

from __future__ import annotations

import pytest

from teu.cli import format as fmt
from teu.cli import parse
from teu.cli.main import build_parser, docker_spellings
from teu.errors import InvalidArgument


@pytest.mark.parametrize(
    ("text", "expected"), [("16m", 16 << 20), ("1g", 1 << 30), ("512k", 512 << 10), ("100", 100), ("2MB", 2 << 20)]
)
def test_memory_sizes(text: str, expected: int) -> None:
    """Sizes use Docker's 1024-based units."""
    assert parse.memory(text) == expected


def test_bad_memory_is_invalid() -> None:
    """A size that is not a number is INVALID_ARGUMENT."""
    with pytest.raises(InvalidArgument):
        parse.memory("lots")


def test_cpus_in_nano() -> None:
    """--cpus 0.5 is half a billion nano-CPUs."""
    assert parse.nano_cpus("0.5") == 500_000_000


def test_env_bare_key_takes_callers_value(monkeypatch: pytest.MonkeyPatch) -> None:
    """-e KEY copies the caller's value, or drops the key when unset."""
    monkeypatch.setenv("TEU_T1", "v")
    monkeypatch.delenv("TEU_T2", raising=False)
    assert parse.env(["A=1", "TEU_T1", "TEU_T2"]) == ["A=1", "TEU_T1=v"]


def test_changes_to_image_config() -> None:
    """--change CMD/ENV/WORKDIR become image config fields; shell form wraps in sh -c."""
    c = parse.changes(['CMD ["sh"]', "ENV A=b", "WORKDIR /srv", "ENTRYPOINT echo hi"])
    assert (list(c.cmd), list(c.env), c.working_dir, list(c.entrypoint)) == (
        ["sh"],
        ["A=b"],
        "/srv",
        ["/bin/sh", "-c", "echo hi"],
    )


def test_run_command_after_image_keeps_its_flags() -> None:
    """Flags after the image belong to the command, as in Docker."""
    a = build_parser().parse_args(["run", "--rm", "-e", "A=1", "busybox", "sh", "-c", "exit 3", "-x"])
    assert (a.rm, a.env, a.image, a.command) == (True, ["A=1"], "busybox", ["sh", "-c", "exit 3", "-x"])


def test_rfc3339_and_sizes() -> None:
    """Timestamps print with nanoseconds in UTC; sizes in powers of 1000."""
    assert fmt.rfc3339(1_700_000_000_123_456_789) == "2023-11-14T22:13:20.123456789Z"
    assert fmt.rfc3339(0) == "0001-01-01T00:00:00Z"
    assert fmt.size(1_980_000) == "1.98MB"


def test_ago_units() -> None:
    """Ages read like Docker's."""
    assert fmt.ago(0, now=90.0) == "1 minute"
    assert fmt.ago(0, now=7200.0) == "2 hours"


@pytest.mark.parametrize("text", ["inf", "-inf", "nan", "1e308", "-1"])
def test_absurd_cpus_are_invalid_not_a_traceback(text: str) -> None:
    """--cpus that is not a finite, non-negative number of CPUs is INVALID_ARGUMENT."""
    with pytest.raises(InvalidArgument):
        parse.nano_cpus(text)


def test_a_size_beyond_64_bits_is_invalid() -> None:
    """-m 9223372036854775808 does not fit the API's 64 bits: INVALID_ARGUMENT, the value shortened."""
    with pytest.raises(InvalidArgument, match="out of range"):
        parse.memory("9223372036854775808")
    with pytest.raises(InvalidArgument) as raised:
        parse.memory("x" * 100_000)
    assert len(raised.value.message) < 100


@pytest.mark.parametrize(
    "argv",
    [["logs", "--tail", "2147483648", "c"], ["run", "--pids-limit", "9223372036854775808", "busybox"], ["stop", "-t", "x", "c"]],
)
def test_out_of_range_numbers_are_usage_errors(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    """Numbers a flag cannot carry are refused by the parser with a usage error (exit 2), not a traceback."""
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(argv)
    assert exited.value.code == 2
    assert "Traceback" not in capsys.readouterr().err


def test_ports_take_dockers_forms() -> None:
    """-p 80 (a free host port), [ip:]host:ctr, ip::ctr, ranges of equal size, /udp."""

    def shown(value: str) -> list[tuple[str, int, int, str]]:
        return [(m.host_ip, m.host_port, m.container_port, m.protocol) for m in parse.ports(value)]

    assert shown("80") == [("", 0, 80, "tcp")]
    assert shown("8080:80/udp") == [("", 8080, 80, "udp")]
    assert shown("127.0.0.1::53/udp") == [("127.0.0.1", 0, 53, "udp")]
    assert shown("127.0.0.1:8000-8001:80-81") == [("127.0.0.1", 8000, 80, "tcp"), ("127.0.0.1", 8001, 81, "tcp")]
    assert shown("[::1]:8080:80") == [("::1", 8080, 80, "tcp")]
    for bad in ("8000-8002:80-81", "http", "0:80", "80-70", "1:2:3:4"):
        with pytest.raises(parse.InvalidArgument):
            parse.ports(bad)
    assert parse.exposed("8000-8001/udp") == ["8000/udp", "8001/udp"]


def test_healthcheck_instructions_and_durations() -> None:
    from teu.changes import duration_ns, healthcheck

    h = healthcheck("--interval=5s --timeout=1m30s --retries=4 CMD curl -f http://localhost/ || exit 1")
    assert (list(h.test), h.interval_ns, h.timeout_ns, h.retries) == (
        ["CMD-SHELL", "curl -f http://localhost/ || exit 1"],
        5 * 10**9,
        90 * 10**9,
        4,
    )
    assert list(healthcheck('CMD ["true"]').test) == ["CMD", "true"] and list(healthcheck("NONE").test) == ["NONE"]
    assert duration_ns("500ms") == 500_000_000
    for bad in ("--bogus=1 CMD true", "RUN true", "--interval=soon CMD true"):
        with pytest.raises(parse.InvalidArgument):
            healthcheck(bad)


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["container", "ls", "-a"], ["ps", "-a"]),
        (["container", "list"], ["ps"]),
        (["-H", "unix:/x", "container", "rm", "-f", "c"], ["-H", "unix:/x", "rm", "-f", "c"]),
        (["--host=unix:/x", "container", "inspect", "c"], ["--host=unix:/x", "inspect", "--type", "container", "c"]),
        (["container", "prune", "-f"], ["container", "prune", "-f"]),
        (["run", "busybox", "container", "ls"], ["run", "busybox", "container", "ls"]),
        (["container"], ["container"]),
    ],
)
def test_dockers_container_spellings(argv: list[str], expected: list[str]) -> None:
    """`container VERB` is `VERB`, `container ls` is `ps`, `container inspect` keeps to containers;
    engine options before it stay, and words after a verb are never rewritten."""
    assert docker_spellings(argv) == expected
