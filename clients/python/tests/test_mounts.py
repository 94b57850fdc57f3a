"""Docker's -v, --mount and --tmpfs spellings become the API's MountSpec."""

from __future__ import annotations

import pytest

from teu import mounts
from teu.errors import InvalidArgument


def test_volume_flag_binds_absolute_and_dot_paths_and_names_volumes() -> None:
    bind = mounts.volume("/srv/data:/data:ro,rshared")
    assert (bind.type, bind.source, bind.target, bind.read_only, bind.propagation, bind.create_host_path) == (
        "bind", "/srv/data", "/data", True, "rshared", True,
    )  # fmt: skip
    assert mounts.volume("./site:/www", cwd="/home/u").source == "/home/u/site"
    named = mounts.volume("pgdata:/var/lib/postgresql:nocopy")
    assert (named.type, named.source, named.no_copy, named.create_host_path) == ("volume", "pgdata", True, False)
    anonymous = mounts.volume("/cache")
    assert (anonymous.type, anonymous.source, anonymous.target) == ("volume", "", "/cache")
    assert mounts.volume("/a:/b:z").read_only is False


@pytest.mark.parametrize("bad", ["", "a:b:c:d", "bad name!:/x", "/a:/b:bogus", "v:/b:rshared"])
def test_volume_flag_refuses_what_docker_refuses(bad: str) -> None:
    with pytest.raises(InvalidArgument):
        mounts.volume(bad)


def test_mount_flag_reads_dockers_keys_and_aliases() -> None:
    m = mounts.mount("type=bind,src=/srv,dst=/data,readonly,bind-propagation=rslave")
    assert (m.type, m.source, m.target, m.read_only, m.propagation, m.create_host_path) == (
        "bind", "/srv", "/data", True, "rslave", False,
    )  # fmt: skip
    v = mounts.mount("source=db,target=/db,volume-label=a=b,volume-opt=type=tmpfs,volume-nocopy=true,readonly=false")
    assert (v.type, v.source, dict(v.volume_labels), dict(v.volume_options), v.no_copy, v.read_only) == (
        "volume", "db", {"a": "b"}, {"type": "tmpfs"}, True, False,
    )  # fmt: skip
    t = mounts.mount("type=tmpfs,destination=/run,tmpfs-size=64m,tmpfs-mode=1770")
    assert (t.type, t.target, t.tmpfs_size, t.tmpfs_mode) == ("tmpfs", "/run", 64 << 20, 0o1770)


@pytest.mark.parametrize(
    "bad",
    ["type=nfs,target=/x", "type=bind,target=/x", "source=v", "type=tmpfs,src=x,target=/t", "type=bind,src=/a,dst=/b,tmpfs-size=1m",
     "type=volume,src=v,dst=/b,volume-driver=nfs", "type=bind,src=/a,dst=/b,readonly=maybe", ",target=/x"],
)  # fmt: skip
def test_mount_flag_refuses_bad_keys_and_values(bad: str) -> None:
    with pytest.raises(InvalidArgument):
        mounts.mount(bad)


def test_tmpfs_flag_takes_size_mode_and_mount_options() -> None:
    t = mounts.tmpfs("/run:size=64m,mode=1777,exec,uid=1000,ro")
    assert (t.target, t.tmpfs_size, t.tmpfs_mode, list(t.tmpfs_options), t.read_only) == (
        "/run", 64 << 20, 0o1777, ["exec", "uid=1000"], True,
    )  # fmt: skip
    with pytest.raises(InvalidArgument):
        mounts.tmpfs("/run:size=lots")
