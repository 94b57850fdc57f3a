"""The gateway's checks of a container's mounts and what it asks the runtime to mount."""

from __future__ import annotations

import pytest

from teu_api.errors import InvalidArgument, Unimplemented
from teu_api.gateway.v1 import gateway_pb2 as gw
from teu_gateway import mounts


def test_a_bind_mount_is_recursive_private_unless_asked_and_keeps_its_read_only_flag() -> None:
    (plain, shared) = mounts.resolve([
        gw.MountSpec(type="bind", source="/srv/./data/", target="/data/", create_host_path=True),
        gw.MountSpec(type="bind", source="/x", target="/y", read_only=True, propagation="rshared"),
    ])  # fmt: skip
    assert (plain.mount.source, plain.mount.destination, list(plain.mount.options), plain.create_source) == (
        "/srv/data", "/data", ["rbind", "rprivate"], True,
    )  # fmt: skip
    assert list(shared.mount.options) == ["rbind", "rshared", "ro"] and not shared.create_source


def test_a_tmpfs_is_nosuid_nodev_noexec_with_its_size_and_mode() -> None:
    (t,) = mounts.resolve(
        [gw.MountSpec(type="tmpfs", target="/run", tmpfs_size=1 << 20, tmpfs_mode=0o700, tmpfs_options=["exec"])]
    )
    assert (t.mount.type, t.mount.destination) == ("tmpfs", "/run")
    assert list(t.mount.options) == ["nosuid", "nodev", "noexec", "exec", "size=1048576", "mode=700"]


@pytest.mark.parametrize(
    "bad",
    [
        gw.MountSpec(type="bind", source="relative", target="/x"),
        gw.MountSpec(type="bind", source="/a", target="x"),
        gw.MountSpec(type="bind", source="/a", target="/"),
        gw.MountSpec(type="bind", source="/a", target="/x/.."),
        gw.MountSpec(type="bind", source="/a", target="/x", propagation="sideways"),
        gw.MountSpec(type="tmpfs", source="/a", target="/x"),
        gw.MountSpec(type="tmpfs", target="/x", tmpfs_options=["size=1m,exec"]),
        gw.MountSpec(type="tmpfs", target="/x", tmpfs_options=["uid=root"]),
        gw.MountSpec(type="tmpfs", target="/x", tmpfs_size=-1),
        gw.MountSpec(type="nfs", target="/x"),
    ],
)
def test_bad_mounts_are_invalid_argument(bad: gw.MountSpec) -> None:
    with pytest.raises(InvalidArgument):
        mounts.resolve([bad])


def test_two_mounts_at_one_target_are_refused() -> None:
    with pytest.raises(InvalidArgument, match="duplicate mount point: /x"):
        mounts.resolve([gw.MountSpec(type="tmpfs", target="/x"), gw.MountSpec(type="bind", source="/a", target="/x/")])


def test_volumes_are_not_available_yet() -> None:
    with pytest.raises(Unimplemented):
        mounts.resolve([gw.MountSpec(type="volume", source="v", target="/x")])
