"""The fast tar headers are tarfile's own, byte for byte (layer digests depend on it)."""

from __future__ import annotations

import tarfile

import pytest

from teu_api.tarheader import pax_header, ustar_header


def _info(name: str, type_: bytes = tarfile.REGTYPE, **attrs: object) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = type_
    info.uname = info.gname = ""
    for k, v in attrs.items():
        setattr(info, k, v)
    return info


@pytest.mark.parametrize(
    "info",
    [
        _info("etc/passwd", mode=0o644, uid=0, gid=0, size=1234, mtime=1_700_000_000),
        _info("usr/bin", tarfile.DIRTYPE, mode=0o755, mtime=1),
        _info("tmp/", tarfile.DIRTYPE, mode=0o1777),
        _info("bin/sh", tarfile.SYMTYPE, linkname="busybox", mode=0o777),
        _info("bin/ln", tarfile.LNKTYPE, linkname="bin/busybox"),
        _info("dev/null", tarfile.CHRTYPE, devmajor=1, devminor=3, mode=0o666),
        _info("dev/sda", tarfile.BLKTYPE, devmajor=8, devminor=0),
        _info("run/fifo", tarfile.FIFOTYPE, uid=1000, gid=1000, mode=0o4755),
        _info("x" * 100, size=8**11 - 1, uid=8**7 - 1),
        _info(".wh.gone", mode=0o600),
    ],
)
def test_the_header_is_tarfiles(info: tarfile.TarInfo) -> None:
    assert ustar_header(info) == info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


@pytest.mark.parametrize(
    "info",
    [
        _info("x" * 101),
        _info("naïve"),
        _info("a", size=8**11),
        _info("a", uid=8**7),
        _info("a", mtime=1.5),
        _info("a", mtime=-1),
        _info("a", pax_headers={"SCHILY.xattr.user.x": "1"}),
        _info("l", tarfile.SYMTYPE, linkname="y" * 101),
    ],
)
def test_what_needs_pax_records_is_left_to_tarfile(info: tarfile.TarInfo) -> None:
    assert ustar_header(info) is None


@pytest.mark.parametrize(
    "info", [_info("etc/passwd", mode=0o644, size=12, mtime=1), _info("naïve"), _info("x" * 101), _info("a", mtime=1.5)]
)
def test_pax_header_is_tarfiles_with_or_without_a_pax_record(info: tarfile.TarInfo) -> None:
    assert pax_header(info) == info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")
