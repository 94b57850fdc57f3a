"""Tar headers without tarfile's cost: the 512 bytes tarfile writes for an entry that needs no PAX record
(most entries), built directly. Shared by what writes tars in quantity: storage's layers and exports,
the SDK's build contexts."""

from __future__ import annotations

import tarfile

__all__ = ["pax_header", "ustar_header"]

_TYPES = frozenset({tarfile.REGTYPE, tarfile.LNKTYPE, tarfile.SYMTYPE, tarfile.CHRTYPE, tarfile.BLKTYPE, tarfile.DIRTYPE,
                    tarfile.FIFOTYPE})  # fmt: skip
_DEVICES = (tarfile.CHRTYPE, tarfile.BLKTYPE)
_MAX7, _MAX11 = 8**7, 8**11


def ustar_header(info: tarfile.TarInfo) -> bytes | None:
    """The 512-byte header tarfile writes in PAX format for ``info`` when it needs no PAX record
    (ASCII names that fit, no user or group name, numbers within ustar's fields, no PAX headers);
    None otherwise. Byte for byte what ``info.tobuf(PAX_FORMAT)`` gives then."""
    if info.pax_headers or info.uname or info.gname or info.type not in _TYPES:
        return None
    name = info.name + "/" if info.type == tarfile.DIRTYPE and not info.name.endswith("/") else info.name
    if not (name.isascii() and info.linkname.isascii()) or len(name) > 100 or len(info.linkname) > 100:
        return None
    mtime, size = info.mtime, info.size
    if not (
        isinstance(mtime, int) and 0 <= mtime < _MAX11 and 0 <= size < _MAX11 and 0 <= info.uid < _MAX7 and 0 <= info.gid < _MAX7
    ):
        return None
    if not (0 <= info.devmajor < _MAX7 and 0 <= info.devminor < _MAX7):
        return None
    head = b"".join((
        name.encode().ljust(100, b"\0"),
        b"%07o\0%07o\0%07o\0%011o\0%011o\0" % (info.mode & 0o7777, info.uid, info.gid, size, mtime),
        b"        ",
        info.type,
        info.linkname.encode().ljust(100, b"\0"),
        b"ustar\x0000",
        b"\0" * 64,
        b"%07o\0%07o\0" % (info.devmajor, info.devminor) if info.type in _DEVICES else b"\0" * 16,
        b"\0" * 167,
    ))  # fmt: skip
    return head[:148] + b"%06o\0" % sum(head) + head[155:]


def pax_header(info: tarfile.TarInfo) -> bytes:
    """The header tarfile writes for ``info`` in PAX format (its PAX record first, if it needs one):
    from :func:`ustar_header` when it can, else from tarfile."""
    return ustar_header(info) or info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")
