"""The OCI config built for a container, user resolution, names and conmon's messages."""

from __future__ import annotations

import os

import pytest

from teu_api.errors import InvalidArgument
from teu_api.runtime.v1 import runtime_pb2 as rt
from teu_api.types.v1 import types_pb2
from teu_common.signals import parse_signal
from teu_runtime import confine, conmon, names, spec, users

CID = "ab" * 32
PASSWD = (
    b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\napp:x:1000:1000::/home/app:/bin/sh\n"
)
GROUP = b"root:x:0:\nstaff:x:50:app\napp:x:1000:\n"
HOST = spec.Host(limits={**confine.host_limits(), "nofile": 20000, "nproc": 4000}, held_caps=confine.KNOWN_CAPS)


def build(**res: int) -> dict[str, object]:
    """config.json for a small container."""
    s = rt.ContainerSpec(process=types_pb2.Process(args=["sh"], env=["A=1"]), resources=types_pb2.Resources(**res))
    return spec.build(CID, s, spec.User(0, 0, (), "/root"), HOST, {"/etc/hosts": "/b/hosts"}, "teu/x")


def test_isolation_defaults() -> None:
    """Five namespaces, Docker's capabilities, masked paths, hostname = short id."""
    doc = build()
    linux = doc["linux"]
    assert [n["type"] for n in linux["namespaces"]] == ["pid", "network", "ipc", "uts", "mount"]  # type: ignore[index]
    assert doc["hostname"] == CID[:12]
    assert "CAP_SYS_ADMIN" not in doc["process"]["capabilities"]["bounding"]  # type: ignore[index]
    assert "/proc/kcore" in linux["maskedPaths"]  # type: ignore[index]


def test_rlimits_never_above_host_hard_limit() -> None:
    """RLIMIT_NOFILE/NPROC are capped at the host's hard limits (no CAP_SYS_RESOURCE here)."""
    rl = {r["type"]: r for r in build()["process"]["rlimits"]}  # type: ignore[index]
    assert rl["RLIMIT_NOFILE"]["hard"] == 20000 and rl["RLIMIT_NPROC"]["soft"] == 4000


def test_limits_become_cgroup_resources() -> None:
    """Memory, CPU quota and pids limits land in linux.resources."""
    r = build(memory_bytes=64 << 20, nano_cpus=500_000_000, pids_limit=50)["linux"]["resources"]  # type: ignore[index]
    assert (r["memory"]["limit"], r["cpu"]["quota"], r["cpu"]["period"], r["pids"]["limit"]) == (64 << 20, 50000, 100000, 50)


def test_environment_defaults() -> None:
    """PATH, HOSTNAME and HOME are added when missing."""
    env = build()["process"]["env"]  # type: ignore[index]
    assert env[0].startswith("PATH=") and f"HOSTNAME={CID[:12]}" in env and "HOME=/root" in env


@pytest.mark.parametrize(("user", "expected"), [
    ("", spec.User(0, 0, (), "/root")),
    ("nobody", spec.User(65534, 65534, (), "/nonexistent")),
    ("app", spec.User(1000, 1000, (50,), "/home/app")),
    ("1000", spec.User(1000, 1000, (50,), "/home/app")),
    ("4242", spec.User(4242, 0, (), "/")),
    ("app:staff", spec.User(1000, 50, (), "/home/app")),
])  # fmt: skip
def test_user_resolution(user: str, expected: spec.User) -> None:
    """Names and numbers resolve against passwd and group like Docker."""
    assert users.resolve(user, PASSWD, GROUP) == expected


def test_unknown_user_is_invalid() -> None:
    """A user name missing from passwd is INVALID_ARGUMENT."""
    with pytest.raises(InvalidArgument):
        users.resolve("ghost", PASSWD, GROUP)


def test_read_in_root_does_not_escape(tmp_path: object) -> None:
    """A symlink to an absolute path is resolved inside the root, never on the host."""
    from pathlib import Path

    root = Path(str(tmp_path))
    (root / "etc").mkdir()
    (root / "etc" / "passwd").symlink_to("/etc/hostname")
    assert users.read_in_root(root, "/etc/passwd") is None
    (root / "etc" / "hostname").write_text("inside")
    assert users.read_in_root(root, "/etc/passwd") == b"inside"


def test_fifo_as_passwd_is_refused_without_blocking(tmp_path: object) -> None:
    """A FIFO planted as /etc/passwd is refused at once instead of stalling the reader."""
    from pathlib import Path

    root = Path(str(tmp_path))
    (root / "etc").mkdir()
    os.mkfifo(root / "etc" / "passwd")
    with pytest.raises(InvalidArgument, match="not a regular file"):
        users.resolve_in_rootfs("app", root)


def test_names_and_ids() -> None:
    """Ids are 64 hex; names follow Docker's rule, a trailing newline included."""
    assert names.check_id(CID) == CID
    for bad_id in ("xyz", CID + "\n"):
        with pytest.raises(InvalidArgument):
            names.check_id(bad_id)
    for bad in ("-bad", "good\n"):
        with pytest.raises(InvalidArgument):
            names.check_name(bad)
    assert names.check_name(names.generate())


def test_generated_names_end_when_the_short_ones_run_out() -> None:
    """With every short name taken, a generated name still comes back, and it is free."""
    import random

    rng = random.Random(7)
    every = {f"{a}_{n}{i}" for a in names._ADJECTIVES for n in names._NOUNS for i in range(100)}
    name = names.free(every, rng)
    assert name not in every and names.check_name(name)


def test_start_error_exit_codes() -> None:
    """Docker's codes for a process that cannot start."""
    assert spec.exit_code_for_start_error('exec: "nope": executable file not found in $PATH') == 127
    assert spec.exit_code_for_start_error('exec: "/etc": permission denied') == 126
    assert spec.exit_code_for_start_error("something else") == 125


def test_sync_message_parsing() -> None:
    """conmon's sync line gives the pid, or the runtime's cleaned error."""
    assert conmon.parse_sync(b'{"data": 42}\n') == conmon.Created(42, "")
    failed = conmon.parse_sync(b'{"data": -1, "message": "time=\\"x\\" level=error msg=\\"runc create failed: boom\\"\\n"}\n')
    assert failed == conmon.Created(-1, "boom")
    assert conmon.parse_sync(b"").pid == -1


def test_signals() -> None:
    """Signal names and numbers parse; nonsense is invalid."""
    assert (parse_signal("TERM"), parse_signal("SIGKILL"), parse_signal("usr1"), parse_signal("9")) == (15, 9, 10, 9)
    with pytest.raises(InvalidArgument):
        parse_signal("NOPE")


def test_remapped_container_gets_a_user_namespace() -> None:
    """With a mapping, the spec adds a user namespace and maps container ids 0.. to the range."""
    from teu_common.idmap import IdMap

    s = rt.ContainerSpec(process=types_pb2.Process(args=["sh"]))
    doc = spec.build(CID, s, spec.User(0, 0), HOST, {}, "teu/x", remap=IdMap(100000, 200000, 65536))
    linux = doc["linux"]
    assert "user" in [n["type"] for n in linux["namespaces"]]  # type: ignore[index]
    assert linux["uidMappings"] == [{"containerID": 0, "hostID": 100000, "size": 65536}]  # type: ignore[index]
    assert linux["gidMappings"] == [{"containerID": 0, "hostID": 200000, "size": 65536}]  # type: ignore[index]


def test_user_mounts_come_last_parents_first_and_replace_the_engines_at_their_path() -> None:
    """A user's mount at /dev/shm or /etc/hosts replaces the engine's; /a before /a/b whatever the order asked."""

    def bind(src: str, dst: str) -> rt.ContainerMount:
        return rt.ContainerMount(mount=types_pb2.Mount(type="bind", source=src, destination=dst, options=["rbind", "ro"]))

    s = rt.ContainerSpec(process=types_pb2.Process(args=["sh"]))
    s.mounts.extend([bind("/h/ab", "/a/b"), bind("/h/a", "/a"), bind("/h/shm", "/dev/shm"), bind("/h/hosts", "/etc/hosts")])
    doc = spec.build(CID, s, spec.User(0, 0, (), "/root"), HOST, {"/etc/hosts": "/b/hosts"}, "teu/x")
    mounts = [(m["destination"], m["source"]) for m in doc["mounts"]]  # type: ignore[attr-defined]
    assert mounts.count(("/dev/shm", "/h/shm")) == 1 and ("/dev/shm", "shm") not in mounts
    assert ("/etc/hosts", "/b/hosts") not in mounts
    assert mounts[-4:] == [("/a", "/h/a"), ("/a/b", "/h/ab"), ("/dev/shm", "/h/shm"), ("/etc/hosts", "/h/hosts")]


def test_the_root_propagates_as_its_mounts_need() -> None:
    """A shared mount needs an rshared root (its mounts reach the host back), a slave one rslave;
    private mounts leave the runtime's default."""

    def bind(*options: str) -> dict[str, object]:
        return {"destination": "/m", "type": "bind", "source": "/s", "options": ["rbind", *options]}

    assert spec.rootfs_propagation([bind("rprivate"), bind("rshared"), bind("rslave")]) == "rshared"
    assert spec.rootfs_propagation([bind("rprivate"), bind("slave")]) == "rslave"
    assert spec.rootfs_propagation([bind("rprivate"), {"destination": "/proc", "type": "proc"}]) == ""
