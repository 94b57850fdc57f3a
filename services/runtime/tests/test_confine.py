"""Confinement rules: Docker's capability arithmetic, rlimits bounded by the host, devices, seccomp."""

from __future__ import annotations

import ctypes
import os
import platform

import pytest

from teu_api.errors import FailedPrecondition, InvalidArgument
from teu_api.types.v1 import types_pb2 as t
from teu_runtime import confine

HELD = confine.KNOWN_CAPS
LIMITS = {**dict.fromkeys(confine.ULIMITS, 2**64 - 1), "nofile": 20000, "nproc": 4000}


def caps(**kw: object) -> list[str]:
    """Capabilities for a Security made of ``kw``."""
    return confine.capabilities(t.Security(**kw), HELD)  # type: ignore[arg-type]


def test_capability_arithmetic_follows_docker() -> None:
    """Defaults; drop some; add some (any spelling); drop ALL keeps only the added; add ALL keeps all but the dropped."""
    assert caps() == list(confine.DEFAULT_CAPS)
    assert "CAP_CHOWN" not in caps(cap_drop=["chown"])
    assert caps(cap_add=["net_admin"])[-1] == "CAP_NET_ADMIN"
    assert caps(cap_drop=["ALL"], cap_add=["CAP_KILL"]) == ["CAP_KILL"]
    assert caps(cap_add=["ALL"], cap_drop=["SYS_ADMIN"]) == [c for c in HELD if c != "CAP_SYS_ADMIN"]
    assert caps(privileged=True, cap_drop=["ALL"]) == list(HELD)


def test_capabilities_never_exceed_what_the_engine_holds() -> None:
    """A capability the engine lacks cannot be added; privileged gets what the engine holds."""
    held = tuple(c for c in HELD if c != "CAP_SYS_RESOURCE")
    with pytest.raises(FailedPrecondition, match="CAP_SYS_RESOURCE"):
        confine.capabilities(t.Security(cap_add=["SYS_RESOURCE"]), held)
    assert "CAP_SYS_RESOURCE" not in confine.capabilities(t.Security(privileged=True), held)
    with pytest.raises(InvalidArgument, match="unknown capability"):
        caps(cap_add=["CAP_FLY"])


def test_held_capabilities_read_the_bounding_set() -> None:
    """The bounding set's bits name the capabilities the engine can hand on."""
    assert confine.held_capabilities("Name:\tx\nCapBnd:\t0000000000000003\n") == ("CAP_CHOWN", "CAP_DAC_OVERRIDE")


def test_rlimits_defaults_and_ulimits() -> None:
    """nofile/nproc/fsize default to the host's hard limits (fsize so that the container does not inherit
    the bound its conmon has on the log); --ulimit overrides; above the host is refused."""
    got = {r["type"]: (r["soft"], r["hard"]) for r in confine.rlimits(t.Security(), LIMITS)}
    assert got == {"RLIMIT_NOFILE": (20000, 20000), "RLIMIT_NPROC": (4000, 4000), "RLIMIT_FSIZE": (2**64 - 1,) * 2}
    sec = t.Security(ulimits=[t.Ulimit(name="core", soft=-1, hard=-1), t.Ulimit(name="nofile", soft=10, hard=20)])
    got = {r["type"]: (r["soft"], r["hard"]) for r in confine.rlimits(sec, LIMITS)}
    assert got["RLIMIT_CORE"] == (2**64 - 1, 2**64 - 1) and got["RLIMIT_NOFILE"] == (10, 20)
    for bad, match in ((t.Ulimit(name="nofile", soft=30000, hard=30000), "exceeds"),
                       (t.Ulimit(name="nofile", soft=20, hard=10), "soft limit"),
                       (t.Ulimit(name="fly", soft=1, hard=1), "invalid ulimit type")):  # fmt: skip
        with pytest.raises(InvalidArgument, match=match):
            confine.rlimits(t.Security(ulimits=[bad]), LIMITS)


def test_device_rules() -> None:
    """Devices are denied but for those given; privileged allows them all."""
    dev = confine.HostDevice("/dev/lc", "c", 10, 237, 0o600, 0, 0, "rw")
    nodes, rules = confine.devices_section([dev], privileged=False)
    assert nodes == [{"path": "/dev/lc", "type": "c", "major": 10, "minor": 237, "fileMode": 0o600, "uid": 0, "gid": 0}]
    assert rules == [{"allow": False, "access": "rwm"}, {"allow": True, "type": "c", "major": 10, "minor": 237, "access": "rw"}]
    assert confine.devices_section([], privileged=True)[1] == [{"allow": True, "access": "rwm"}]
    with pytest.raises(InvalidArgument, match="permissions"):
        confine.check(t.Security(devices=[t.Device(path_on_host="/dev/null", cgroup_permissions="x")]), HELD, LIMITS)


def test_seccomp_section() -> None:
    """The default profile applies; privileged and unconfined have no filter."""
    assert confine.seccomp_section(t.Security(), confine.DEFAULT_CAPS)["defaultAction"] == "SCMP_ACT_ERRNO"  # type: ignore[index]
    assert confine.seccomp_section(t.Security(privileged=True), HELD) is None
    assert confine.seccomp_section(t.Security(seccomp="unconfined"), HELD) is None
    x32 = frozenset({"SCMP_ARCH_X32"})
    assert "SCMP_ARCH_X32" not in confine.seccomp_section(t.Security(), confine.DEFAULT_CAPS, x32)["architectures"]  # type: ignore[index]


def test_unserved_abis_are_asked_of_the_kernel() -> None:
    """x32 is the one sub-architecture probed, on x86_64 only; the answer is the kernel's."""
    assert confine.unserved_abis("aarch64") == frozenset()
    if platform.machine() == "x86_64":
        libc = ctypes.CDLL(None, use_errno=True)
        libc.syscall.restype = ctypes.c_long
        runs_x32 = libc.syscall(ctypes.c_long(confine.X32_SYSCALL_BIT | 39)) == os.getpid()  # x32's getpid
        assert confine.unserved_abis() == (frozenset() if runs_x32 else {"SCMP_ARCH_X32"})


def test_remapping_follows_dockers_rules() -> None:
    """The engine's mapping applies unless --userns=host; privileged or host-network containers must opt out."""
    from teu_common.idmap import IdMap

    engine = IdMap(100000, 100000, 65536)
    assert confine.remapping(t.Security(), engine, host_network=False) == engine
    assert confine.remapping(t.Security(userns="host"), engine, host_network=True) is None
    assert confine.remapping(t.Security(privileged=True), None, host_network=False) is None
    for sec, host_network in ((t.Security(privileged=True), False), (t.Security(), True)):
        with pytest.raises(FailedPrecondition, match="userns=host"):
            confine.remapping(sec, engine, host_network)
