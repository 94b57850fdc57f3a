"""The member filter of cp into a running container: modes kept, owners shifted, devices and
escaping names refused."""

from __future__ import annotations

import tarfile

import pytest

from teu_runtime.untar import member_filter


def member(name: str, kind: bytes = tarfile.REGTYPE, mode: int = 0o4755, uid: int = 0) -> tarfile.TarInfo:
    """A tar member."""
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.uid, info.gid = kind, mode, uid, uid
    return info


def test_modes_kept_and_owners_shifted() -> None:
    """Setuid modes stay (docker cp keeps them); owners move into the container's range."""
    out = member_filter(100000, 200000)(member("bin/tool", uid=5), "/dest")
    assert (out.mode, out.uid, out.gid) == (0o4755, 100005, 200005)


@pytest.mark.parametrize("bad", [member("dev/sda", tarfile.BLKTYPE), member("tty", tarfile.CHRTYPE), member("../x"),
                                 member("a/../../x")])  # fmt: skip
def test_devices_and_names_out_of_the_destination_are_refused(bad: tarfile.TarInfo) -> None:
    """Device nodes and names leading out of the destination are refused."""
    with pytest.raises(tarfile.FilterError):
        member_filter(0, 0)(bad, "/dest")


def test_owners_outside_a_remapped_range_are_refused() -> None:
    """In a remapped container (65536 ids), an owner beyond its range is refused, not chowned to the host's."""
    with pytest.raises(tarfile.FilterError, match="outside"):
        member_filter(100000, 100000, 65536)(member("f", uid=70000), "/dest")
    assert member_filter(100000, 100000, 65536)(member("f", uid=1000), "/dest").uid == 101000
