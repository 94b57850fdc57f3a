"""The engine's user namespace remapping setting: Docker's user lookup in /etc/subuid and /etc/subgid,
or explicit numbers; ranges that would map host root or are too small are refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from teu_common.idmap import IdMap, parse


def test_numbers_user_and_default(tmp_path: Path) -> None:
    """UID:GID:SIZE is taken as is; a user's (or teuremap's for "default") first ranges are looked up."""
    (tmp_path / "subuid").write_text("alice:100000:65536\nteuremap:300000:65536\n")
    (tmp_path / "subgid").write_text("alice:110000:70000\nteuremap:300000:65536\n")
    assert parse("") is None
    assert parse("200000:210000:65536", tmp_path) == IdMap(200000, 210000, 65536)
    assert parse("alice", tmp_path) == IdMap(100000, 110000, 65536)
    assert parse("default", tmp_path) == IdMap(300000, 300000, 65536)


@pytest.mark.parametrize(("value", "match"), [("0:100000:65536", "host root"), ("100000:100000:1000", "65536"),
                                              ("bob", "no range")])  # fmt: skip
def test_unusable_settings_are_refused(tmp_path: Path, value: str, match: str) -> None:
    """A range with host root, a small range or a user without ranges is refused with a clear reason."""
    (tmp_path / "subuid").write_text("alice:100000:65536\n")
    (tmp_path / "subgid").write_text("alice:100000:65536\n")
    with pytest.raises(ValueError, match=match):
        parse(value, tmp_path)
