"""Docker's default seccomp profile, Docker's profile format and its conversion to the OCI object."""

from __future__ import annotations

import json
from typing import Any

import pytest

from teu_api.errors import InvalidArgument
from teu_runtime.seccomp import MAX_PROFILE_BYTES, MAX_RULES, RUNNING_KERNEL, default_profile, load_profile, to_oci

DOCKER_CAPS = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
]
CLONE_FLAGS = 2114060288  # CLONE_NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET: clone may not create namespaces


def convert(
    caps: tuple[str, ...] | list[str] = DOCKER_CAPS, arch: str = "x86_64", kernel: tuple[int, int] = (6, 8)
) -> dict[str, Any]:
    """The default profile converted for a container with ``caps`` on an ``arch`` host running ``kernel``."""
    return to_oci(default_profile(), caps, arch, kernel)


def rules_for(oci: dict[str, Any], name: str) -> list[dict[str, Any]]:
    """The converted rules that mention syscall ``name``."""
    return [r for r in oci["syscalls"] if name in r["names"]]


def allowed(oci: dict[str, Any], name: str) -> bool:
    """Whether ``name`` is in an SCMP_ACT_ALLOW rule without argument filters."""
    return any(r["action"] == "SCMP_ACT_ALLOW" and "args" not in r for r in rules_for(oci, name))


def profile(*rules: dict[str, Any], **top: Any) -> dict[str, Any]:
    """A small profile, checked by load_profile, that denies by default."""
    return load_profile(json.dumps({"defaultAction": "SCMP_ACT_ERRNO", **top, "syscalls": list(rules)}))


def test_vendored_profile_is_whole() -> None:
    """The vendored file is Docker's profile: deny with EPERM, an arch map and a big allow list."""
    doc = default_profile()
    assert (doc["defaultAction"], doc["defaultErrnoRet"]) == ("SCMP_ACT_ERRNO", 1)
    assert list(doc) == ["defaultAction", "defaultErrnoRet", "archMap", "syscalls"]
    big = doc["syscalls"][0]
    assert big["action"] == "SCMP_ACT_ALLOW"
    assert len(big["names"]) > 350
    assert {"read", "write", "execve", "openat", "futex"} <= set(big["names"])


def test_default_profile_converts() -> None:
    """The conversion keeps the OCI fields only, with x86_64's architectures."""
    oci = convert()
    assert list(oci) == ["defaultAction", "defaultErrnoRet", "architectures", "syscalls"]
    assert oci["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
    assert set() == {k for r in oci["syscalls"] for k in r} - {"names", "action", "errnoRet", "args"}
    assert json.loads(json.dumps(oci)) == oci


@pytest.mark.parametrize("name", ["unshare", "keyctl", "add_key", "kexec_load", "mount", "setns", "umount2", "bpf"])
def test_docker_caps_deny_dangerous_syscalls(name: str) -> None:
    """With Docker's default capabilities these syscalls fall to the default action."""
    assert rules_for(convert(), name) == []


def test_docker_caps_read_clone_clone3() -> None:
    """read is allowed, clone only without namespace flags, clone3 fails with ENOSYS."""
    oci = convert()
    assert allowed(oci, "read")
    clone_arg = {"index": 0, "value": CLONE_FLAGS, "op": "SCMP_CMP_MASKED_EQ"}
    assert [{"names": ["clone"], "action": "SCMP_ACT_ALLOW", "args": [clone_arg]}] == rules_for(oci, "clone")
    assert rules_for(oci, "clone3") == [{"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38}]


def test_sys_admin_allows_mount_unshare() -> None:
    """Adding CAP_SYS_ADMIN allows mount, unshare, clone and clone3 outright, as in Docker."""
    oci = convert([*DOCKER_CAPS, "CAP_SYS_ADMIN"])
    assert [allowed(oci, n) for n in ("mount", "unshare", "setns", "clone", "clone3")] == [True] * 5
    assert [r for r in rules_for(oci, "clone") if "args" in r] == []
    assert [r for r in rules_for(oci, "clone3") if r["action"] != "SCMP_ACT_ALLOW"] == []


def test_arch_filtering() -> None:
    """Architectures and arch-only rules follow the host: arch_prctl on x86_64, set_tls on aarch64."""
    x86, arm = convert(arch="x86_64"), convert(arch="aarch64")
    assert (allowed(x86, "arch_prctl"), allowed(x86, "set_tls")) == (True, False)
    assert (allowed(arm, "arch_prctl"), allowed(arm, "set_tls")) == (False, True)
    assert arm["architectures"] == ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]
    assert "architectures" not in convert(arch="sparc64")


def test_s390x_clone_uses_its_argument_order() -> None:
    """On s390x the clone flags are argument 1, so only the s390 clone rule is kept."""
    clone_arg = {"index": 1, "value": CLONE_FLAGS, "op": "SCMP_CMP_MASKED_EQ"}
    assert [{"names": ["clone"], "action": "SCMP_ACT_ALLOW", "args": [clone_arg]}] == rules_for(convert(arch="s390x"), "clone")


@pytest.mark.parametrize(
    ("caps", "arch", "kernel", "expected"),
    [
        ((), "x86_64", (5, 9), ["a", "b", "c"]),
        (("CAP_Y",), "x86_64", (5, 9), ["b", "c"]),
        ((), "aarch64", (5, 9), ["a", "c"]),
        ((), "x86_64", (5, 10), ["a", "b"]),
    ],
)
def test_excludes(caps: tuple[str, ...], arch: str, kernel: tuple[int, int], expected: list[str]) -> None:
    """A rule is dropped when any excluded cap is held, the arch is excluded, or the kernel is new enough."""
    doc = profile(
        {"names": ["a"], "action": "SCMP_ACT_ALLOW", "excludes": {"caps": ["CAP_X", "CAP_Y"]}},
        {"names": ["b"], "action": "SCMP_ACT_ALLOW", "excludes": {"arches": ["arm64"]}},
        {"names": ["c"], "action": "SCMP_ACT_ALLOW", "excludes": {"minKernel": "5.10"}},
    )
    assert [n for r in to_oci(doc, caps, arch, kernel)["syscalls"] for n in r["names"]] == expected


def test_includes_need_every_cap() -> None:
    """A rule including several caps is kept only when all of them are held."""
    doc = profile({"names": ["a"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_X", "CAP_Y"]}})
    kept = [bool(to_oci(doc, caps)["syscalls"]) for caps in [(), ("CAP_X",), ("CAP_X", "CAP_Y")]]
    assert kept == [False, False, True]


@pytest.mark.parametrize(("kernel", "expected"), [((4, 7), False), ((4, 8), True), ((5, 0), True), ((3, 19), False)])
def test_min_kernel(kernel: tuple[int, int], expected: bool) -> None:
    """ptrace needs kernel 4.8 in Docker's profile (without CAP_SYS_PTRACE)."""
    assert expected == allowed(convert(kernel=kernel), "ptrace")


def test_running_kernel_is_parsed() -> None:
    """The default kernel version is the host's (major, minor)."""
    assert (RUNNING_KERNEL > (2, 0), len(RUNNING_KERNEL)) == (True, 2)


def test_single_name_rule_and_args() -> None:
    """The older ``name`` becomes ``names``; args keep index/value/valueTwo/op; comments are dropped."""
    arg = {"index": 1, "value": 4, "valueTwo": 4, "op": "SCMP_CMP_MASKED_EQ"}
    doc = profile({"name": "personality", "action": "SCMP_ACT_ALLOW", "args": [arg], "comment": "c"}, defaultErrnoRet=1)
    expected = {
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": 1,
        "syscalls": [{"names": ["personality"], "action": "SCMP_ACT_ALLOW", "args": [arg]}],
    }
    assert expected == to_oci(doc, (), "x86_64")


def test_sub_architectures_the_kernel_does_not_run_are_left_out() -> None:
    """``unserved`` drops those of archMap's sub-architectures; plain ``architectures`` stay as written."""
    assert to_oci(default_profile(), DOCKER_CAPS, "x86_64", (6, 8), unserved={"SCMP_ARCH_X32"})["architectures"] == [
        "SCMP_ARCH_X86_64",
        "SCMP_ARCH_X86",
    ]
    doc = profile(architectures=["SCMP_ARCH_X86_64", "SCMP_ARCH_X32"])
    assert to_oci(doc, (), "x86_64", unserved={"SCMP_ARCH_X32"})["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X32"]


def test_plain_architectures_pass_through() -> None:
    """A profile with ``architectures`` instead of ``archMap`` keeps them as written."""
    doc = profile(architectures=["SCMP_ARCH_X86_64"])
    assert to_oci(doc, (), "aarch64")["architectures"] == ["SCMP_ARCH_X86_64"]


def test_results_share_nothing() -> None:
    """Changing a converted profile or default_profile's result leaves later calls unchanged."""
    first = convert()
    first["syscalls"][0]["names"].clear()
    default_profile()["syscalls"].clear()
    assert convert() == to_oci(load_profile(json.dumps(default_profile())), DOCKER_CAPS, "x86_64", (6, 8))
    assert len(convert()["syscalls"][0]["names"]) > 350


RULE = {"names": ["read"], "action": "SCMP_ACT_ALLOW"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{", "not valid JSON"),
        ("[" * 100_000, "not valid JSON"),
        ("[]", "must be a JSON object"),
        ('{"defaultAction": "SCMP_ACT_MAYBE"}', "defaultAction: unknown action 'SCMP_ACT_MAYBE'"),
        ("{}", "defaultAction: unknown action None"),
        (
            json.dumps({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["x"], "action": "NO"}]}),
            r"syscalls\[0\].action",
        ),
        (json.dumps({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"action": "SCMP_ACT_ALLOW"}]}), "lacks syscall names"),
        (json.dumps({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": [], "action": "SCMP_ACT_ALLOW"}]}), "lacks"),
        (json.dumps({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{**RULE, "name": "write"}]}), "both 'name' and 'names'"),
        (json.dumps({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": {"a": 1}}), "syscalls: must be a JSON array"),
        (json.dumps({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{**RULE, "errnoRet": -1}]}), "errnoRet"),
        (
            json.dumps({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{**RULE, "args": [{"index": 6, "op": "SCMP_CMP_EQ"}]}]}),
            "index",
        ),
        (json.dumps({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{**RULE, "args": [{"index": 0, "op": "EQ"}]}]}), "operator"),
        (json.dumps({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{**RULE, "includes": {"minKernel": "4"}}]}), "minKernel"),
        (json.dumps({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{**RULE, "excludes": {"caps": "CAP_X"}}]}), "caps"),
        (json.dumps({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["A"], "archMap": [{"architecture": "A"}]}), "both"),
        (json.dumps({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [RULE] * (MAX_RULES + 1)}), "more than 10000"),
        (" " * (MAX_PROFILE_BYTES + 1), "larger than"),
    ],
)
def test_load_profile_rejects(text: str, message: str) -> None:
    """Malformed or absurd profiles raise InvalidArgument naming what is wrong."""
    with pytest.raises(InvalidArgument, match=message):
        load_profile(text)


def test_notify_listeners_and_unknown_flags_are_refused() -> None:
    """A profile naming a notify listener socket (the runtime would connect to any host socket) or an
    unknown flag is refused at load."""
    base = '{"defaultAction": "SCMP_ACT_ALLOW", '
    with pytest.raises(InvalidArgument, match="listenerPath"):
        load_profile(base + '"listenerPath": "/run/some.sock"}')
    with pytest.raises(InvalidArgument, match="unknown flag"):
        load_profile(base + '"flags": ["SECCOMP_FILTER_FLAG_BOGUS"]}')
    assert load_profile(base + '"flags": ["SECCOMP_FILTER_FLAG_LOG"]}')["flags"] == ["SECCOMP_FILTER_FLAG_LOG"]
