"""Diff of a snapshot's upper dir against its image: Docker's A/C/D, whiteouts and opaque dirs."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from teu_storage.diff import changes
from teu_storage.storage import Storage


def _as_pairs(storage: Storage, key: str) -> list[tuple[str, str]]:
    return [(c.kind, c.path) for c in storage.diff(key)]


def test_add_change_delete_like_docker(storage: Storage, tars: Any, kit: Any) -> None:
    """New files are A, files also in the image C, whiteouts D, and copied-up parents C."""
    image = kit.import_tar(storage, tars.busybox())
    storage.prepare_snapshot(kit.KEY, image.id)
    up = kit.upper(storage)
    (up / "etc").mkdir()
    (up / "etc/passwd").write_text("changed")
    (up / "etc/new").write_text("n")
    (up / "bin").mkdir()
    kit.whiteout(up / "bin/su")
    (up / "srv/a").mkdir(parents=True)
    assert _as_pairs(storage, kit.KEY) == [
        ("C", "/bin"),
        ("D", "/bin/su"),
        ("C", "/etc"),
        ("A", "/etc/new"),
        ("C", "/etc/passwd"),
        ("A", "/srv"),
        ("A", "/srv/a"),
    ]


def test_opaque_dir_reports_hidden_lower_entries_deleted(storage: Storage, tars: Any, kit: Any) -> None:
    """rm -rf /home; mkdir /home; touch /home/x: /home is C, /home/x A, /home/user D."""
    image = kit.import_tar(storage, tars.busybox())
    storage.prepare_snapshot(kit.KEY, image.id)
    home = kit.upper(storage) / "home"
    home.mkdir()
    kit.make_opaque(home)
    (home / "x").write_text("x")
    assert _as_pairs(storage, kit.KEY) == [("C", "/home"), ("D", "/home/user"), ("A", "/home/x")]


def test_lower_layers_merge_with_their_own_whiteouts(tmp_path: Path, kit: Any) -> None:
    """A name whited out in a middle layer is A again in the upper; one only in the bottom is C."""
    upper, mid, bottom = (tmp_path / n for n in ("upper", "mid", "bottom"))
    for d in (upper, mid, bottom):
        d.mkdir()
    (bottom / "gone").write_text("b")
    (bottom / "kept").write_text("b")
    kit.whiteout(mid / "gone")
    (upper / "gone").write_text("u")
    (upper / "kept").write_text("u")
    result = [(c.kind, c.path) for c in changes(str(upper), [str(mid), str(bottom)])]
    assert result == [("A", "/gone"), ("C", "/kept")]


def test_diff_of_a_thousand_new_files_is_fast(storage: Storage, tars: Any, kit: Any) -> None:
    """1000 new files are diffed in well under 30 ms."""
    image = kit.import_tar(storage, tars.busybox())
    storage.prepare_snapshot(kit.KEY, image.id)
    data = kit.upper(storage) / "data"
    data.mkdir()
    for i in range(1000):
        (data / f"f{i}").write_bytes(b"x")
    best = min(_timed(lambda: storage.diff(kit.KEY)) for _ in range(3))
    assert len(storage.diff(kit.KEY)) == 1001
    assert best < 0.030, f"diff took {best * 1000:.1f} ms"


def _timed(fn: Any) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def test_empty_upper_has_no_changes(storage: Storage, tars: Any, kit: Any) -> None:
    """A fresh snapshot has no changes."""
    image = kit.import_tar(storage, tars.busybox())
    storage.prepare_snapshot(kit.KEY, image.id)
    assert storage.diff(kit.KEY) == [] and os.listdir(kit.upper(storage)) == []
