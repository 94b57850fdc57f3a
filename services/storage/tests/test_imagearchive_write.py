"""Saved archives are written without tarfile, yet are byte for byte what tarfile writes (a saved
image's digest must not depend on how it was written)."""

from __future__ import annotations

import io
import tarfile
from collections.abc import Iterator

import pytest

from teu_api.errors import Internal
from teu_storage.imagearchive import SaveItem, write_archive

LAYER = b"".join(bytes([i % 251]) * 700 for i in range(40))  # any bytes will do: the writer does not read them


class _Layer:
    def __init__(self, data: bytes, size: int | None = None) -> None:
        self.data, self.size, self.done = data, len(data) if size is None else size, False

    def chunks(self) -> Iterator[bytes]:
        for i in range(0, len(self.data), 333):  # uneven pieces, as a tar-split gives them
            yield self.data[i : i + 333]

    def finish(self) -> None:
        self.done = True


def _tarfiles_own(archive: bytes) -> bytes:
    """The same members written by tarfile, as the archive was before."""
    out = io.BytesIO()
    with tarfile.open(fileobj=io.BytesIO(archive)) as src, tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as dst:
        for m in src.getmembers():
            dst.addfile(m, src.extractfile(m))
    return out.getvalue()


@pytest.mark.parametrize("fmt", ["docker-archive", "oci-archive"])
def test_the_archive_is_tarfiles_byte_for_byte(fmt: str) -> None:
    item = SaveItem(image_id="sha256:" + "c" * 64, config=b'{"a": 1}', layers=("sha256:" + "d" * 64,),
                    refs=("example.com/" + "long-name/" * 12 + "img:1",), mtime=1_700_000_000)  # fmt: skip
    out = io.BytesIO()
    write_archive([item], fmt, lambda _: _Layer(LAYER), out)
    assert out.getvalue() == _tarfiles_own(out.getvalue())
    assert len(out.getvalue()) % tarfile.RECORDSIZE == 0


def test_a_layer_of_another_size_than_recorded_is_refused() -> None:
    item = SaveItem(image_id="sha256:" + "c" * 64, config=b"{}", layers=("sha256:" + "d" * 64,), refs=(), mtime=0)
    with pytest.raises(Internal, match="bytes where"):
        write_archive([item], "docker-archive", lambda _: _Layer(LAYER, size=len(LAYER) + 1), io.BytesIO())
