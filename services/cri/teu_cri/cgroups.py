"""The kubelet's pod cgroup, as its cgroup driver names it.

With the cgroupfs driver the kubelet sends a path (``/kubepods/besteffort/pod<uid>``), used as it is.
With the systemd driver it sends a slice's name (``kubepods-besteffort-pod<uid>.slice``): systemd puts
a slice under the slice its name's dashes make (``a-b-c.slice`` in ``a.slice/a-b.slice``), so the path
the kubelet made for it is ``/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod<uid>.slice``.
That path is what the pod's containers get, as runc's systemd driver expands it; Teu keeps creating
the containers' own cgroups through the cgroup file system (it does not register systemd scopes).
"""

from __future__ import annotations

from teu_api.errors import InvalidArgument

__all__ = ["pod_parent"]


def pod_parent(value: str) -> str:
    """The cgroup path the kubelet's ``cgroup_parent`` names: a path as it is, a systemd slice expanded."""
    if "/" in value or not value.endswith(".slice"):
        return value
    if value == "-.slice":  # the root slice
        return "/"
    name = value.removesuffix(".slice")
    parts = name.split("-")
    if not name or "" in parts:
        raise InvalidArgument(f"invalid systemd slice {value[:80]!r}: its name's dash-separated parts must not be empty")
    return "".join(f"/{'-'.join(parts[: i + 1])}.slice" for i in range(len(parts)))
