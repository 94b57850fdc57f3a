"""Docker's seccomp profile format, and its conversion to the OCI runtime-spec ``linux.seccomp`` object.

A Docker profile is the OCI object plus conditions: ``archMap`` lists architectures with their
sub-architectures, and each syscall rule may carry ``includes``/``excludes`` filters on the container's
capabilities, the host's architecture and its kernel version. :func:`to_oci` resolves those conditions
for one container on one host, the way ``dockerd`` does, and returns only what runc/crun understand.

Everything here is pure: no I/O beyond reading the vendored ``default.json`` once.
"""

from __future__ import annotations

import copy
import functools
import json
import platform
import re
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

from teu_api.errors import InvalidArgument

MAX_PROFILE_BYTES = 1 << 20
MAX_RULES = 10_000
NATIVE_ARCH = platform.machine()

ACTIONS = frozenset(
    {
        "SCMP_ACT_KILL",
        "SCMP_ACT_KILL_PROCESS",
        "SCMP_ACT_KILL_THREAD",
        "SCMP_ACT_TRAP",
        "SCMP_ACT_ERRNO",
        "SCMP_ACT_TRACE",
        "SCMP_ACT_ALLOW",
        "SCMP_ACT_LOG",
        "SCMP_ACT_NOTIFY",
    }
)
OPS = frozenset({"SCMP_CMP_NE", "SCMP_CMP_LT", "SCMP_CMP_LE", "SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_MASKED_EQ"})

# platform.machine() (or Docker's spelling) -> (libseccomp architecture, the name Docker's "arches" filters use).
_X86_64 = ("SCMP_ARCH_X86_64", "amd64")
_AARCH64 = ("SCMP_ARCH_AARCH64", "arm64")
_X86 = ("SCMP_ARCH_X86", "x86")
_ARM = ("SCMP_ARCH_ARM", "arm")
_ARCHES: dict[str, tuple[str, str]] = {
    "x86_64": _X86_64,
    "amd64": _X86_64,
    "aarch64": _AARCH64,
    "arm64": _AARCH64,
    **dict.fromkeys(("i386", "i486", "i586", "i686", "x86"), _X86),
    **dict.fromkeys(("armv6l", "armv7l", "armv8l", "arm"), _ARM),
    "ppc64le": ("SCMP_ARCH_PPC64LE", "ppc64le"),
    "ppc64": ("SCMP_ARCH_PPC64", "ppc64"),
    "s390x": ("SCMP_ARCH_S390X", "s390x"),
    "s390": ("SCMP_ARCH_S390", "s390"),
    "riscv64": ("SCMP_ARCH_RISCV64", "riscv64"),
    "loongarch64": ("SCMP_ARCH_LOONGARCH64", "loongarch64"),
    "mips64": ("SCMP_ARCH_MIPS64", "mips64"),
}
# Top-level OCI fields copied through unchanged when present.
_PASSTHROUGH = ("defaultErrnoRet", "flags")
_FLAGS = frozenset({"SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
                    "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"})  # fmt: skip


def _release_version(release: str) -> tuple[int, int]:
    """(major, minor) of a kernel release such as "6.8.0-45-generic"; (0, 0) if it has none."""
    m = re.match(r"([0-9]+)\.([0-9]+)", release)
    return (int(m[1]), int(m[2])) if m else (0, 0)


RUNNING_KERNEL = _release_version(platform.release())


def default_profile() -> dict[str, Any]:
    """Docker's default profile as parsed JSON; a fresh copy on each call, so callers may change it."""
    return copy.deepcopy(_vendored())


@functools.cache
def _vendored() -> dict[str, Any]:
    return load_profile(Path(__file__).with_name("default.json").read_text(encoding="utf-8"))


def load_profile(text: str) -> dict[str, Any]:
    """Parses and checks a profile in Docker's JSON format.

    The result passed every check :func:`to_oci` relies on: known actions and operators, every rule has
    names, numbers are non-negative integers, ``minKernel`` reads "<major>.<minor>". Raises
    :class:`InvalidArgument` naming the offending field otherwise, and for text over 1 MiB or more than
    10,000 rules.
    """
    if len(text.encode("utf-8", "surrogatepass")) > MAX_PROFILE_BYTES:
        raise InvalidArgument(f"seccomp profile is larger than {MAX_PROFILE_BYTES} bytes")
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError) as e:
        raise InvalidArgument(f"seccomp profile is not valid JSON: {e}") from None
    _check_profile(doc)
    return doc  # type: ignore[no-any-return]


def to_oci(
    profile: Mapping[str, Any],
    caps: Collection[str],
    arch: str = NATIVE_ARCH,
    kernel: tuple[int, int] = RUNNING_KERNEL,
    unserved: Collection[str] = (),
) -> dict[str, Any]:
    """The OCI ``linux.seccomp`` object for a container with capabilities ``caps`` ("CAP_SYS_ADMIN" style).

    ``arch`` is a ``platform.machine()`` value; ``kernel`` is the host's (major, minor). A rule is kept
    when all its ``includes`` hold (every cap held, native arch listed, kernel >= minKernel) and no
    ``excludes`` does (any cap held, native arch listed, kernel >= minKernel). Kept rules keep only
    ``names``/``action``/``errnoRet``/``args``; a legacy ``name`` becomes ``names``. ``unserved`` names
    sub-architectures the host's kernel does not run (x32 on most kernels): they are left out of
    ``archMap``'s, so a call in such an ABI meets the filter's bad-architecture action instead of the
    kernel's ENOSYS, and the runtime does not build a filter for it at every start (14 of the 49 ms
    of a ``runc create`` with this profile, for x32). The result shares no mutable state with
    ``profile``. Expects a profile that :func:`load_profile` accepted.
    """
    seccomp_arch, native = _ARCHES.get(arch, ("", arch))
    held = frozenset(caps)
    out: dict[str, Any] = {"defaultAction": profile["defaultAction"]}
    out.update({k: copy.deepcopy(profile[k]) for k in _PASSTHROUGH if profile.get(k) is not None})
    architectures = _architectures(profile, seccomp_arch, frozenset(unserved))
    if architectures:
        out["architectures"] = architectures
    rules = profile.get("syscalls") or []
    out["syscalls"] = [_oci_rule(r) for r in rules if _applies(r, held, native, kernel)]
    return out


def _architectures(profile: Mapping[str, Any], seccomp_arch: str, unserved: frozenset[str]) -> list[str]:
    """The profile's plain ``architectures`` plus the native ``archMap`` entry and those of its
    sub-architectures the kernel serves."""
    found = list(profile.get("architectures") or [])
    for entry in profile.get("archMap") or []:
        if entry["architecture"] == seccomp_arch:
            return found + [seccomp_arch, *(a for a in entry.get("subArchitectures") or [] if a not in unserved)]
    return found


def _applies(rule: Mapping[str, Any], caps: frozenset[str], arch: str, kernel: tuple[int, int]) -> bool:
    """Whether a rule's ``includes`` all hold and none of its ``excludes`` does."""
    exc = rule.get("excludes") or {}
    if arch in (exc.get("arches") or ()) or not caps.isdisjoint(exc.get("caps") or ()):
        return False
    if exc.get("minKernel") and kernel >= _min_kernel(exc["minKernel"]):
        return False
    inc = rule.get("includes") or {}
    if inc.get("arches") and arch not in inc["arches"]:
        return False
    if not caps.issuperset(inc.get("caps") or ()):
        return False
    return not (inc.get("minKernel") and kernel < _min_kernel(inc["minKernel"]))


def _oci_rule(rule: Mapping[str, Any]) -> dict[str, Any]:
    """One OCI ``LinuxSyscall``: names, action, and errnoRet/args when the rule has them."""
    out: dict[str, Any] = {"names": _names(rule, "syscall rule"), "action": rule["action"]}
    if rule.get("errnoRet") is not None:
        out["errnoRet"] = rule["errnoRet"]
    if rule.get("args"):
        out["args"] = [_oci_arg(a) for a in rule["args"]]
    return out


def _oci_arg(arg: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"index": arg["index"], "value": arg.get("value", 0), "op": arg["op"]}
    if arg.get("valueTwo") is not None:
        out["valueTwo"] = arg["valueTwo"]
    return out


def _names(rule: Mapping[str, Any], where: str) -> list[str]:
    """``names``, or ``[name]`` for the older single-name form; exactly one of them must be given."""
    names, name = rule.get("names"), rule.get("name")
    if names and name:
        raise InvalidArgument(f"{where}: has both 'name' and 'names'; use 'names'")
    if name:
        if not isinstance(name, str):
            raise InvalidArgument(f"{where}: 'name' must be a string")
        return [name]
    if not names:
        raise InvalidArgument(f"{where}: lacks syscall names")
    return _strings(names, f"{where}.names")


def _min_kernel(value: object, where: str = "minKernel") -> tuple[int, int]:
    """Docker's "<major>.<minor>" kernel version (each 0-255, not 0.0)."""
    m = re.fullmatch(r"([0-9]{1,3})\.([0-9]{1,3})", value) if isinstance(value, str) else None
    version = (int(m[1]), int(m[2])) if m else (0, 0)
    if max(version) > 255 or version == (0, 0):
        raise InvalidArgument(f'{where}: {value!r} is not a kernel version "<major>.<minor>"')
    return version


# -- checks behind load_profile ------------------------------------------------------------------


def _check_profile(doc: object) -> None:
    if not isinstance(doc, dict):
        raise InvalidArgument("seccomp profile must be a JSON object")
    _action(doc.get("defaultAction"), "seccomp profile: defaultAction")
    _uint(doc.get("defaultErrnoRet"), "seccomp profile: defaultErrnoRet", optional=True)
    if doc.get("listenerPath") or doc.get("listenerMetadata"):
        # a notify listener would make the runtime connect to any unix socket of the host
        raise InvalidArgument("seccomp profile: listenerPath (SCMP_ACT_NOTIFY listeners) is not supported")
    flags = _strings(doc.get("flags") or [], "seccomp profile: flags")
    if unknown := sorted(set(flags) - _FLAGS):
        raise InvalidArgument(f"seccomp profile: unknown flag {unknown[0]!r}")
    if doc.get("architectures") and doc.get("archMap"):
        raise InvalidArgument("seccomp profile: has both 'architectures' and 'archMap'; use one")
    _strings(doc.get("architectures") or [], "seccomp profile: architectures")
    for i, entry in enumerate(_list(doc.get("archMap"), "seccomp profile: archMap")):
        where = f"seccomp profile: archMap[{i}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("architecture"), str):
            raise InvalidArgument(f"{where}: needs an 'architecture' string")
        _strings(entry.get("subArchitectures") or [], f"{where}.subArchitectures")
    rules = _list(doc.get("syscalls"), "seccomp profile: syscalls")
    if len(rules) > MAX_RULES:
        raise InvalidArgument(f"seccomp profile: more than {MAX_RULES} syscall rules")
    for i, rule in enumerate(rules):
        _check_rule(rule, f"seccomp profile: syscalls[{i}]")


def _check_rule(rule: object, where: str) -> None:
    if not isinstance(rule, dict):
        raise InvalidArgument(f"{where}: must be a JSON object")
    _names(rule, where)
    _action(rule.get("action"), f"{where}.action")
    _uint(rule.get("errnoRet"), f"{where}.errnoRet", optional=True)
    for j, arg in enumerate(_list(rule.get("args"), f"{where}.args")):
        _check_arg(arg, f"{where}.args[{j}]")
    for key in ("includes", "excludes"):
        _check_filter(rule.get(key), f"{where}.{key}")


def _check_arg(arg: object, where: str) -> None:
    if not isinstance(arg, dict):
        raise InvalidArgument(f"{where}: must be a JSON object")
    if _uint(arg.get("index"), f"{where}.index") > 5:
        raise InvalidArgument(f"{where}.index: a syscall has arguments 0 to 5")
    _uint(arg.get("value"), f"{where}.value", optional=True)
    _uint(arg.get("valueTwo"), f"{where}.valueTwo", optional=True)
    if arg.get("op") not in OPS:
        raise InvalidArgument(f"{where}.op: unknown operator {arg.get('op')!r}")


def _check_filter(flt: object, where: str) -> None:
    if flt is None:
        return
    if not isinstance(flt, dict):
        raise InvalidArgument(f"{where}: must be a JSON object")
    _strings(flt.get("caps") or [], f"{where}.caps")
    _strings(flt.get("arches") or [], f"{where}.arches")
    if flt.get("minKernel"):
        _min_kernel(flt["minKernel"], f"{where}.minKernel")


def _action(value: object, where: str) -> None:
    if value not in ACTIONS:
        raise InvalidArgument(f"{where}: unknown action {value!r}")


def _uint(value: object, where: str, optional: bool = False) -> int:
    if value is None and optional:
        return 0
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 1 << 64:
        raise InvalidArgument(f"{where}: must be an integer from 0 to 2^64-1, not {value!r}")
    return value


def _list(value: object, where: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidArgument(f"{where}: must be a JSON array")
    return value


def _strings(value: object, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(s, str) and s for s in value):
        raise InvalidArgument(f"{where}: must be an array of non-empty strings")
    return list(value)
