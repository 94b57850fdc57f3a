"""Seccomp for containers: Docker's default profile and the converter to the OCI ``linux.seccomp`` object."""

from __future__ import annotations

from teu_runtime.seccomp.profile import (
    MAX_PROFILE_BYTES,
    MAX_RULES,
    NATIVE_ARCH,
    RUNNING_KERNEL,
    default_profile,
    load_profile,
    to_oci,
)

__all__ = [
    "MAX_PROFILE_BYTES",
    "MAX_RULES",
    "NATIVE_ARCH",
    "RUNNING_KERNEL",
    "default_profile",
    "load_profile",
    "to_oci",
]
