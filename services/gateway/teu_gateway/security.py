"""The container's confinement from Docker's options (--cap-add/--cap-drop, --privileged,
--read-only, --security-opt, --device, --ulimit, --userns). Pure, except :func:`apparmor_enabled`.

Capability names, profiles, devices and limits are checked by the runtime, which knows the host;
this module parses Docker's ``--security-opt`` spellings and refuses the ones Teu does not apply.
"""

from __future__ import annotations

from pathlib import Path

from teu_api.errors import FailedPrecondition, InvalidArgument, Unimplemented
from teu_api.gateway.v1 import gateway_pb2 as gw
from teu_api.types.v1 import types_pb2

__all__ = ["apparmor_enabled", "security_of"]

_TRUE = {"", "true", "1"}
_FALSE = {"false", "0"}


def apparmor_enabled(flag: Path = Path("/sys/module/apparmor/parameters/enabled")) -> bool:
    """Whether the host's kernel has AppArmor enabled."""
    try:
        return flag.read_text().strip() == "Y"
    except OSError:
        return False


def security_of(config: gw.ContainerConfig, apparmor: bool = False) -> types_pb2.Security:
    """The runtime's Security for ``config``; ``apparmor`` says whether the host has AppArmor."""
    sec = types_pb2.Security(
        cap_add=list(config.cap_add),
        cap_drop=list(config.cap_drop),
        privileged=config.privileged,
        read_only=config.read_only,
        devices=list(config.devices),
        ulimits=list(config.ulimits),
        userns=config.userns,
    )
    if config.HasField("masked_paths"):
        sec.masked_paths.CopyFrom(config.masked_paths)
    if config.HasField("readonly_paths"):
        sec.readonly_paths.CopyFrom(config.readonly_paths)
    for opt in config.security_opt:
        _apply(sec, opt, apparmor)
    return sec


def _apply(sec: types_pb2.Security, opt: str, apparmor: bool) -> None:
    if opt.startswith("{"):  # Docker's CLI sends a seccomp profile's text this way too
        sec.seccomp = opt
        return
    key, sep, value = opt.partition("=")
    if not sep:
        key, sep, value = opt.partition(":")  # Docker's older "no-new-privileges:true"
    key = key.strip()
    if key == "no-new-privileges":
        sec.no_new_privileges = _boolean(opt, value)
    elif key == "seccomp" and value:
        sec.seccomp = "unconfined" if value == "unconfined" else value
    elif key == "apparmor" and value:
        if value != "unconfined":
            _refuse_apparmor(apparmor)
    elif key == "label" and value:
        if value != "disable":
            raise FailedPrecondition("SELinux labels are not supported: Teu applies no SELinux policy")
    else:
        raise InvalidArgument(f"invalid --security-opt {opt!r}")


def _boolean(opt: str, value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise InvalidArgument(f"invalid --security-opt {opt!r}: want true or false")


def _refuse_apparmor(apparmor: bool) -> None:
    if not apparmor:
        raise FailedPrecondition("AppArmor is not enabled on this host: --security-opt apparmor=... cannot apply")
    raise Unimplemented("Teu does not load AppArmor profiles yet: only apparmor=unconfined is accepted")
