"""Volumes on disk: made whole, found by name, removed whole; the local driver's options checked."""

from __future__ import annotations

from pathlib import Path

import pytest

from teu_api.errors import InvalidArgument, NotFound
from teu_storage.volumes import Volumes


@pytest.fixture
def volumes(tmp_path: Path) -> Volumes:
    for sub in ("volumes", "tmp"):
        (tmp_path / sub).mkdir()
    return Volumes(tmp_path / "volumes", tmp_path / "tmp")


def test_create_is_idempotent_and_keeps_what_it_was_made_with(volumes: Volumes) -> None:
    v, made = volumes.create("pgdata", {"app": "db"}, {})
    again, made_again = volumes.create("pgdata", {"other": "x"}, {})
    assert made and not made_again
    assert again == v and dict(again.labels) == {"app": "db"}
    assert v.data.is_dir() and oct(v.data.stat().st_mode & 0o777) == "0o755"
    assert [x.name for x in volumes.list()] == ["pgdata"]
    assert v.mount().type == "bind" and v.mount().source == str(v.data)


def test_anonymous_volumes_get_random_hex_names(volumes: Volumes) -> None:
    a, _ = volumes.create("", {}, {}, anonymous=True)
    b, _ = volumes.create("", {}, {}, anonymous=True)
    assert a.name != b.name and len(a.name) == 64 and a.anonymous


@pytest.mark.parametrize("bad", ["a", "-x", "../etc", "a/b", "x" * 300, ""])
def test_bad_names_are_refused(volumes: Volumes, bad: str) -> None:
    with pytest.raises(InvalidArgument):
        volumes.create(bad, {}, {})
    with pytest.raises(NotFound):
        volumes.get(bad)


def test_driver_options_follow_the_local_driver(volumes: Volumes) -> None:
    tmpfs, _ = volumes.create("scratch", {}, {"type": "tmpfs", "device": "tmpfs", "o": "size=64m,uid=1000"})
    assert (tmpfs.mount().type, tmpfs.mount().options) == ("tmpfs", ("size=64m", "uid=1000"))
    bound, _ = volumes.create("srv", {}, {"type": "none", "o": "bind", "device": "/srv/data"})
    assert (bound.mount().type, bound.mount().source) == ("bind", "/srv/data")
    for bad in ({"colour": "blue"}, {"type": "nfs", "o": "addr=1.2.3.4"}, {"type": "tmpfs", "o": "size=1m,suid=,x"},
                {"type": "none", "device": "/x"}, {"type": "none", "o": "bind", "device": "rel"}, {"o": "size=1m"}):  # fmt: skip
        with pytest.raises(InvalidArgument):
            volumes.create("bad-options", {}, bad)
    assert not (volumes.root / "bad-options").exists()


def test_remove_takes_everything_and_twice_is_no_error(volumes: Volumes) -> None:
    v, _ = volumes.create("gone", {}, {})
    (v.data / "f").write_text("x")
    assert volumes.is_empty(v) is False and volumes.size(v) > 0
    assert volumes.remove("gone") and not volumes.remove("gone")
    assert not v.path.exists() and list((volumes.tmp).iterdir()) == []
