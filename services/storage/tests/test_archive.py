"""Safe extraction: a real rootfs keeps its attributes, hostile tars write nothing outside."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import stat
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from teu_api.errors import Internal, InvalidArgument
from teu_storage import archive, tarsplit


def _extract(tmp_path: Path, data: bytes) -> Path:
    src = tmp_path / "in.tar"
    src.write_bytes(data)
    dest = tmp_path / "dest"
    dest.mkdir()
    archive.extract(src, dest)
    return dest


def test_busybox_like_tree_keeps_modes_owners_links(tmp_path: Path, tars: Any) -> None:
    """A rootfs keeps setuid, sticky, ownership, mtimes, symlinks, hard links and fifos."""
    src = tmp_path / "in.tar"
    src.write_bytes(tars.busybox())
    dest = tmp_path / "dest"
    dest.mkdir()
    stats = archive.extract(src, dest)

    def mode(rel: str) -> int:
        return stat.S_IMODE(os.lstat(dest / rel).st_mode)

    assert mode("tmp") == 0o1777
    assert mode("bin/su") == 0o4755
    assert mode("bin/busybox") == 0o755
    assert mode("home/user") == 0o750
    assert mode("home") == 0o755 and mode(".") == 0o755
    assert (os.lstat(dest / "home/user").st_uid, os.lstat(dest / "home/user").st_gid) == (1000, 1000)
    assert os.readlink(dest / "bin/sh") == "/bin/busybox"
    assert os.lstat(dest / "bin/ls").st_ino == os.lstat(dest / "bin/busybox").st_ino
    assert stat.S_ISFIFO(os.lstat(dest / "run/fifo").st_mode) and mode("run/fifo") == 0o620
    assert os.lstat(dest / "bin").st_mtime == tars.MTIME and os.lstat(dest / "etc/passwd").st_mtime == tars.MTIME
    assert stats.size == 100 + 2 + 1 + len(b"root:x:0:0::/root:/bin/sh\n")


def test_later_entry_replaces_symlink_instead_of_writing_through_it(tmp_path: Path, tars: Any) -> None:
    """A file entry over an extracted symlink replaces the link; the link's target is untouched."""
    victim = tmp_path / "victim"
    victim.write_text("safe")
    dest = _extract(tmp_path, tars.build(tars.sym("x", str(victim)), tars.file("x", b"evil")))
    assert victim.read_text() == "safe"
    assert (dest / "x").read_bytes() == b"evil" and not (dest / "x").is_symlink()


def test_relative_symlinks_within_the_image_are_followed_for_writes(tmp_path: Path, tars: Any) -> None:
    """Writing through a symlink that stays inside the image (lib -> usr/lib) lands inside it."""
    dest = _extract(tmp_path, tars.build(tars.dir("usr/lib"), tars.sym("lib", "usr/lib"), tars.file("lib/x")))
    assert (dest / "usr/lib/x").read_bytes() == b"data"


def test_empty_archive_gives_empty_layer(tmp_path: Path, tars: Any) -> None:
    """A tar with no members is a valid, empty layer."""
    dest = _extract(tmp_path, tars.build())
    assert list(dest.iterdir()) == []


def _outside(tmp_path: Path) -> Path:
    return tmp_path / "outside"


HOSTILE: dict[str, Callable[[Any, Path], bytes]] = {
    "absolute path": lambda T, out: T.build(T.file(str(out / "evil"))),
    "dotdot path": lambda T, out: T.build(T.file("../outside/evil")),
    "nested dotdot": lambda T, out: T.build(T.file("a/../../outside/evil")),
    "write through absolute symlink": lambda T, out: T.build(T.sym("a", str(out)), T.file("a/evil")),
    "dir through symlink": lambda T, out: T.build(T.sym("a", str(out)), T.dir("a/evil")),
    "symlink through symlink": lambda T, out: T.build(T.sym("a", str(out)), T.sym("a/evil", "/x")),
    "relative symlink escaping": lambda T, out: T.build(T.sym("a", "../outside")),
    "deep relative symlink escaping": lambda T, out: T.build(T.sym("d/e/a", "../../../outside")),
    "hard link outside": lambda T, out: T.build(T.link("evil", "../outside/secret")),
    "absolute hard link": lambda T, out: T.build(T.link("evil", str(out / "secret"))),
    "hard link via symlink": lambda T, out: T.build(T.sym("l", str(out)), T.link("evil", "l/secret")),
    "hard link to symlink": lambda T, out: T.build(T.sym("l", str(out / "secret")), T.link("evil", "l")),
    "char device": lambda T, out: T.build((T.entry("dev/null", tarfile.CHRTYPE), None)),
    "block device": lambda T, out: T.build((T.entry("dev/sda", tarfile.BLKTYPE), None)),
    "file over directory": lambda T, out: T.build(T.dir("a"), T.file("a")),
    "file as parent": lambda T, out: T.build(T.file("a"), T.file("a/b")),
    "huge pax header": lambda T, out: _huge_pax_header(T),
    "absurd member size": lambda T, out: T.entry("big", size=archive.MAX_TOTAL_SIZE + 1).tobuf(),
    "truncated data": lambda T, out: T.build(T.file("f", b"x" * 5000))[: 512 + 1000],
    "truncated between members": lambda T, out: T.build(T.file("f", b"x" * 512))[:1024],
    "garbage after member": lambda T, out: T.build(T.file("f", b"x" * 512))[:1024] + b"\x07" * 1024,
    "not a tar": lambda T, out: b"hello, this is not a tar archive" * 100,
    "empty stream": lambda T, out: b"",
    "gzip": lambda T, out: gzip.compress(T.build(T.file("f"))),
}


def _huge_pax_header(T: Any) -> bytes:
    info: tarfile.TarInfo = T.entry("././@PaxHeader", tarfile.XHDTYPE, size=(1 << 20) + 512)
    return info.tobuf(tarfile.USTAR_FORMAT) + b"\0" * ((1 << 20) + 512)


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_tar_is_refused_and_writes_nothing_outside(tmp_path: Path, tars: Any, case: str) -> None:
    """Every hostile or broken tar raises InvalidArgument and leaves the outside dir untouched."""
    out = _outside(tmp_path)
    out.mkdir()
    (out / "secret").write_text("secret")
    before = sorted(p.name for p in out.iterdir())
    with pytest.raises(InvalidArgument):
        _extract(tmp_path, HOSTILE[case](tars, out))
    assert sorted(p.name for p in out.iterdir()) == before
    assert (out / "secret").read_text() == "secret"
    assert os.lstat(out / "secret").st_nlink == 1


def test_pax_header_of_reasonable_size_is_accepted(tmp_path: Path, tars: Any) -> None:
    """Long names via pax headers (the normal case) still work."""
    long = "d/" + "n" * 200
    dest = _extract(tmp_path, tars.build(tars.file(long), fmt=tarfile.PAX_FORMAT))
    assert (dest / long).is_file()


def test_gnu_long_names_are_accepted(tmp_path: Path, tars: Any) -> None:
    """GNU-format long names and long link targets are understood."""
    long = "d/" + "n" * 200
    data = tars.build(tars.file(long), tars.sym("s", "/" + "t" * 200), fmt=tarfile.GNU_FORMAT)
    dest = _extract(tmp_path, data)
    assert (dest / long).is_file() and os.readlink(dest / "s") == "/" + "t" * 200


def test_tar_from_stdlib_writer_roundtrips_bytes(tmp_path: Path) -> None:
    """Content of files added from disk comes back byte for byte."""
    payload = os.urandom(3 * 1024 * 1024 + 17)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("blob")
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    dest = _extract(tmp_path, buf.getvalue())
    assert (dest / "blob").read_bytes() == payload


LAYER_HOSTILE: dict[str, Callable[[Any, Path], bytes]] = {
    "whiteout smuggled as a device": lambda T, out: T.build((T.entry("x", tarfile.CHRTYPE), None)),
    "whiteout through symlink": lambda T, out: T.build(T.sym("a", str(out)), T.file("a/.wh.secret")),
    "opaque through symlink": lambda T, out: T.build(T.sym("a", str(out)), T.file("a/.wh..wh..opq")),
    "whiteout of dotdot": lambda T, out: T.build(T.file("a/.wh..."), T.file("b")),
    "overlay xattr": lambda T, out: _with_xattr(T, "trusted.overlay.redirect", "/etc"),
}


def _with_xattr(T: Any, name: str, value: str) -> bytes:
    info, data = T.file("f")
    info.pax_headers = {"SCHILY.xattr." + name: value}
    built: bytes = T.build((info, data))
    return built


@pytest.mark.parametrize("case", sorted(LAYER_HOSTILE))
def test_hostile_layer_tar_is_refused(tmp_path: Path, tars: Any, case: str) -> None:
    """Whiteout entries cannot reach outside the layer, and overlay's own metadata cannot be forged."""
    out = _outside(tmp_path)
    out.mkdir()
    (out / "secret").write_text("secret")
    src = tmp_path / "in.tar"
    src.write_bytes(LAYER_HOSTILE[case](tars, out))
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(InvalidArgument):
        archive.extract(src, dest, archive.Options(whiteouts=True))
    assert sorted(p.name for p in out.iterdir()) == ["secret"] and (out / "secret").read_text() == "secret"
    assert "trusted.overlay.opaque" not in os.listxattr(out)


def test_oci_whiteouts_become_overlay_whiteouts(tmp_path: Path, tars: Any) -> None:
    """.wh.name is a 0:0 char device, .wh..wh..opq marks its dir opaque; the same-layer file wins."""
    data = tars.build(
        tars.dir("etc"),
        tars.file("etc/.wh.passwd"),
        tars.file("home/.wh..wh..opq"),
        tars.file("home/kept"),
        tars.file("kept"),
        tars.file(".wh.kept"),
    )
    src = tmp_path / "in.tar"
    src.write_bytes(data)
    dest = tmp_path / "dest"
    dest.mkdir()
    archive.extract(src, dest, archive.Options(whiteouts=True))
    assert archive.is_whiteout(os.lstat(dest / "etc/passwd"))
    assert os.getxattr(dest / "home", "trusted.overlay.opaque") == b"y"
    assert (dest / "home/kept").read_bytes() == b"data" and (dest / "kept").read_bytes() == b"data"
    assert not (dest / ".wh.kept").exists() and not (dest / "etc/.wh.passwd").exists()


def test_xattrs_are_applied_with_a_safe_subset(tmp_path: Path, tars: Any) -> None:
    """user.* xattrs are restored; unknown namespaces are skipped."""
    info, data = tars.file("f")
    info.pax_headers = {"SCHILY.xattr.user.k": "v", "SCHILY.xattr.trusted.other": "x"}
    dest = _extract(tmp_path, tars.build((info, data)))
    assert os.getxattr(dest / "f", "user.k") == b"v"
    assert "trusted.other" not in os.listxattr(dest / "f")


@pytest.mark.parametrize("fmt", [tarfile.PAX_FORMAT, tarfile.GNU_FORMAT, tarfile.USTAR_FORMAT])
def test_tar_split_rebuilds_the_exact_bytes(tmp_path: Path, tars: Any, fmt: int) -> None:
    """Headers, padding, replaced duplicates, hard links and trailing blocks all come back byte for byte."""
    data = (
        tars.build(
            tars.dir("d"),
            tars.file("d/a", b"first" * 300),
            tars.file("d/b", b""),
            tars.link("d/c", "d/a"),
            tars.file("d/a", b"second"),  # replaces the first d/a: its bytes must stay in the split
            tars.file("p" * 60 + "/" + "n" * 90, b"long name"),
            tars.sym("s", "d/a"),
            fmt=fmt,
        )
        + b"\0" * 4096
    )
    src = tmp_path / "in.tar"
    src.write_bytes(data)
    dest = tmp_path / "dest"
    dest.mkdir()
    stats = archive.extract(src, dest, archive.Options(whiteouts=True, record=True))
    split = tmp_path / "split.gz"
    tarsplit.write(src, stats.segments, split)
    assert tarsplit.tar_size(split) == len(data)
    assert b"".join(tarsplit.rebuilt(split, dest, "sha256:" + hashlib.sha256(data).hexdigest())) == data
    (dest / "d" / "a").write_bytes(b"changed")  # a file of the layer edited: the rebuilt bytes are refused
    with pytest.raises(Internal, match="corrupt"):
        b"".join(tarsplit.rebuilt(split, dest, "sha256:" + hashlib.sha256(data).hexdigest()))


def test_gzip_bomb_is_refused_without_inflating_it_in_memory() -> None:
    """A small gzip layer that inflates far past the limit is refused, and is inflated piece by piece
    (peak memory stays near one piece, not the inflated size)."""
    import tracemalloc

    from teu_storage.imagearchive import spool_layer

    bomb = gzip.compress(b"\0" * (64 << 20), compresslevel=9)  # ~64 KiB that inflates to 64 MiB
    tracemalloc.start()
    try:
        with pytest.raises(InvalidArgument, match="exceeds"):
            spool_layer(io.BytesIO(bomb), _Discard(), limit=32 << 20)  # type: ignore[arg-type]
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 << 20


def test_concatenated_gzip_members_inflate_whole() -> None:
    """A layer made of several gzip members (as some tools write) inflates to all of its bytes."""
    from teu_storage.imagearchive import spool_layer

    data = gzip.compress(b"a" * (3 << 20)) + gzip.compress(b"b" * 10)
    out = io.BytesIO()
    spool_layer(io.BytesIO(data), out, limit=1 << 30)
    assert out.getvalue() == b"a" * (3 << 20) + b"b" * 10


class _Discard:
    """A writer that keeps nothing."""

    def write(self, data: bytes) -> int:
        """Drops ``data``."""
        return len(data)
