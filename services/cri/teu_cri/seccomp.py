"""The CRI's seccomp settings as Teu's --security-opt (a pod's containers and its infra container alike)."""

from __future__ import annotations

import os

from teu_api.errors import InvalidArgument
from teu_api.k8s.cri.v1 import api_pb2 as cri

__all__ = ["options"]

MAX_PROFILE = 1 << 20


def options(sc: cri.LinuxContainerSecurityContext | cri.LinuxSandboxSecurityContext) -> list[str]:
    """A container's or a pod's infra container's seccomp as --security-opt: the newer ``seccomp``
    field, else the older path.
    Unset is unconfined, as the CRI's default is; ``localhost/PATH`` is the profile in that file."""
    if sc.HasField("seccomp"):
        kind = sc.seccomp.profile_type
        if kind == cri.SecurityProfile.RuntimeDefault:
            return []
        if kind == cri.SecurityProfile.Localhost:
            return [_profile(sc.seccomp.localhost_ref)]
        return ["seccomp=unconfined"]
    path = sc.seccomp_profile_path
    if path in ("runtime/default", "docker/default"):
        return []
    if path in ("", "unconfined"):
        return ["seccomp=unconfined"]
    if path.startswith("localhost/"):
        return [_profile(path.removeprefix("localhost/"))]
    raise InvalidArgument(f"unknown seccomp profile {path[:200]!r}: want runtime/default, unconfined or localhost/PATH")


def _profile(path: str) -> str:
    """A seccomp profile's text from the node's file (the kubelet's), as Docker's CLI sends one."""
    if not os.path.isabs(path):
        raise InvalidArgument(f"the seccomp profile path {path[:200]!r} must be absolute")
    try:
        with open(path, "rb") as f:
            text = f.read(MAX_PROFILE + 1)
    except OSError as exc:
        raise InvalidArgument(f"seccomp profile {path[:200]}: {exc.strerror}") from None
    if len(text) > MAX_PROFILE or not text.lstrip().startswith(b"{"):
        raise InvalidArgument(f"seccomp profile {path[:200]} is not a JSON profile of at most {MAX_PROFILE} bytes")
    return text.decode(errors="replace")
