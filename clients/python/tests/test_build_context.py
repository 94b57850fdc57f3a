"""The build context the SDK sends: a folder as a tar, less what .dockerignore excludes."""

from __future__ import annotations

import os
import tarfile
from pathlib import Path

from teu.build import context_tar


def test_the_context_leaves_out_what_dockerignore_excludes(tmp_path: Path) -> None:
    """Excluded files and directories are not sent (an excluded directory not even walked), an
    exception brings a file back, and the Dockerfile named with -f goes even when excluded."""
    for name in ("app.py", "node_modules/a/b.js", "build/out.o", "build/keep.txt", "docker/Dockerfile.dev", "x.log"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(name)
    (tmp_path / ".dockerignore").write_text("node_modules\nbuild\n!build/keep.txt\ndocker\n*.log\n")
    tar, _ = context_tar(tmp_path, dockerfile_path="docker/Dockerfile.dev")
    with tar, tarfile.open(fileobj=tar) as t:
        names = sorted(t.getnames())
    assert names == [".dockerignore", "app.py", "build/keep.txt", "docker/Dockerfile.dev"]


def test_the_context_keeps_files_modes_links_and_long_names(tmp_path: Path) -> None:
    """What COPY reads back: contents, modes, folders, symlinks; a long or non-ASCII name (a PAX record),
    and a Dockerfile from outside the folder under a name of its own."""
    long = "d/" + "n" * 120
    (tmp_path / "d").mkdir()
    (tmp_path / long).write_bytes(b"x" * 1000)
    (tmp_path / "run.sh").write_text("#!/bin/sh\n")
    (tmp_path / "run.sh").chmod(0o750)
    (tmp_path / "naïve.txt").write_text("é")
    (tmp_path / "link").symlink_to("run.sh")
    os.mkfifo(tmp_path / "pipe")
    tar, name = context_tar(tmp_path, dockerfile=b"FROM scratch\n")
    with tar, tarfile.open(fileobj=tar) as t:
        members = {m.name: m for m in t.getmembers()}
        assert set(members) == {"d", long, "run.sh", "naïve.txt", "link", "pipe", name}
        assert members["pipe"].isfifo()
        assert members["d"].isdir() and members["link"].issym() and members["link"].linkname == "run.sh"
        assert members["run.sh"].mode == 0o750 and members["run.sh"].mtime == int((tmp_path / "run.sh").stat().st_mtime)
        assert t.extractfile(long).read() == b"x" * 1000  # type: ignore[union-attr]
        assert t.extractfile("naïve.txt").read() == "é".encode()  # type: ignore[union-attr]
        assert name.startswith(".dockerfile.") and t.extractfile(name).read() == b"FROM scratch\n"  # type: ignore[union-attr]
