"""The gateway's checks of a container's mounts and what it asks the runtime to mount."""

from __future__ import annotations

import pytest

from teu_api.errors import InvalidArgument
from teu_api.gateway.v1 import gateway_pb2 as gw
from teu_api.runtime.v1 import runtime_pb2 as rt
from teu_api.storage.v1 import storage_pb2 as st
from teu_api.types.v1 import types_pb2
from teu_gateway import mounts


def test_a_bind_mount_is_recursive_private_unless_asked_and_keeps_its_read_only_flag() -> None:
    (plain, shared) = mounts.plan([
        gw.MountSpec(type="bind", source="/srv/./data/", target="/data/", create_host_path=True),
        gw.MountSpec(type="bind", source="/x", target="/y", read_only=True, propagation="rshared"),
    ])  # fmt: skip
    assert (plain.mount.source, plain.mount.destination, list(plain.mount.options), plain.create_source) == (
        "/srv/data", "/data", ["rbind", "rprivate"], True,
    )  # fmt: skip
    assert list(shared.mount.options) == ["rbind", "rshared", "ro"] and not shared.create_source


def test_a_tmpfs_is_nosuid_nodev_noexec_with_its_size_and_mode() -> None:
    (t,) = mounts.plan([gw.MountSpec(type="tmpfs", target="/run", tmpfs_size=1 << 20, tmpfs_mode=0o700, tmpfs_options=["exec"])])
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
        mounts.plan([bad])


def test_two_mounts_at_one_target_are_refused() -> None:
    with pytest.raises(InvalidArgument, match="duplicate mount point: /x"):
        mounts.plan([gw.MountSpec(type="tmpfs", target="/x"), gw.MountSpec(type="bind", source="/a", target="/x/")])


def test_volumes_planned_user_first_then_inherited_then_the_images_own() -> None:
    """A named or anonymous volume is asked of storage later; --volumes-from and the image's VOLUME
    paths fill in only where the user mounted nothing."""
    inherited = rt.ContainerMount(mount=types_pb2.Mount(type="bind", source="/v/db/_data", destination="/db"), volume="db")
    taken = rt.ContainerMount(mount=types_pb2.Mount(type="bind", source="/x", destination="/data"))
    planned = mounts.plan(
        [gw.MountSpec(type="volume", source="pg", target="/data", no_copy=True), gw.MountSpec(type="volume", target="/cache")],
        [taken, inherited],
        ["/db", "/logs", "/cache/"],
    )
    assert planned == [
        mounts.VolumeRequest("pg", "/data", no_copy=True), mounts.VolumeRequest("", "/cache"), inherited,
        mounts.VolumeRequest("", "/logs"),
    ]  # fmt: skip
    with pytest.raises(InvalidArgument, match="invalid volume name"):
        mounts.plan([gw.MountSpec(type="volume", source="../etc", target="/x")])


def test_a_volume_mounts_as_storage_says_private_and_read_only_when_asked() -> None:
    volume = st.Volume(name="pg", mount=types_pb2.Mount(type="bind", source="/s/volumes/pg/_data", options=["rbind"]))
    cm = mounts.volume_mount(mounts.VolumeRequest("pg", "/data", read_only=True), volume)
    assert (cm.mount.source, cm.mount.destination, list(cm.mount.options), cm.volume) == (
        "/s/volumes/pg/_data", "/data", ["rbind", "rprivate", "ro"], "pg",
    )  # fmt: skip


def test_volumes_from_takes_binds_and_volumes_not_tmpfs_and_not_ownership() -> None:
    c = rt.Container(spec=rt.ContainerSpec(mounts=[
        rt.ContainerMount(mount=types_pb2.Mount(type="bind", source="/a", destination="/a", options=["rbind", "ro"])),
        rt.ContainerMount(mount=types_pb2.Mount(type="bind", source="/v", destination="/v", options=["rbind"]),
                          volume="anon", anonymous_volume=True),
        rt.ContainerMount(mount=types_pb2.Mount(type="tmpfs", source="tmpfs", destination="/t")),
    ]))  # fmt: skip
    same = mounts.inherit(c, "")
    assert [(m.mount.destination, list(m.mount.options), m.anonymous_volume) for m in same] == [
        ("/a", ["rbind", "ro"], False), ("/v", ["rbind"], False),
    ]  # fmt: skip
    assert [list(m.mount.options) for m in mounts.inherit(c, "ro")] == [["rbind", "ro"], ["rbind", "ro"]]
    assert [list(m.mount.options) for m in mounts.inherit(c, "rw")] == [["rbind"], ["rbind"]]
    with pytest.raises(InvalidArgument):
        mounts.inherit(c, "rx")
