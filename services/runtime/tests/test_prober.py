"""The prober's framing of check results, and how a static busybox is told from a dynamic one."""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path

import pytest

from teu_runtime import execs, prober
from teu_runtime.bundle import ExecDir

TOKEN = b"0123456789abcdef0123456789abcdef"


def test_a_result_split_anywhere_is_found_whole() -> None:
    stream = b"hello\nworld" + b"\n" + TOKEN + b" 3\n" + b"next\n" + TOKEN + b" 0\n"
    for cut in range(1, len(stream)):
        f = prober.Framer(TOKEN)
        got = [r for r in (f.feed(stream[:cut]), f.feed(stream[cut:])) if r is not None]
        if len(got) == 1:  # both results in the second piece: the second comes with the next feed
            got.append(f.feed(b""))  # type: ignore[arg-type]
        assert got == [(b"hello\nworld", 3), (b"next", 0)], cut


def test_output_is_kept_to_its_first_4_kib() -> None:
    f = prober.Framer(TOKEN)
    for _ in range(100):
        assert f.feed(b"x" * 1000) is None
    assert f.feed(b"\n" + TOKEN + b" 1\n") == (b"x" * prober.MAX_OUTPUT, 1)
    assert f.feed(b"\n" + TOKEN + b" 0\n") == (b"", 0)


def test_only_a_static_busybox_is_taken(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    dynamic = shutil.which("python3")
    assert dynamic
    monkeypatch.setattr(shutil, "which", lambda name: dynamic)
    assert prober.static_busybox() == ""
    (tmp_path / "busybox").write_bytes(b"#!/bin/sh\n")
    monkeypatch.setattr(shutil, "which", lambda name: str(tmp_path / "busybox"))
    assert prober.static_busybox() == ""
    monkeypatch.setattr(shutil, "which", lambda name: None)
    assert prober.static_busybox() == ""


def test_an_exec_sessions_sync_pipe_is_closed_once(tmp_path: Path) -> None:
    """A second read of an exec session's exit (as a close cut short and asked again makes) closes
    nothing: the pipe's number may belong to another file by then."""
    r, w = os.pipe()
    os.write(w, b'{"data": 3}\n')
    os.close(w)
    session = execs.Session("s", ExecDir(tmp_path), 1, "", None, None, r)
    assert asyncio.run(session.exit_code()) == 3
    other, spare = os.pipe()  # takes the number the sync pipe had
    try:
        assert other == r
        assert asyncio.run(session.exit_code()) == -1
        os.fstat(other)  # still open
    finally:
        os.close(other)
        os.close(spare)
