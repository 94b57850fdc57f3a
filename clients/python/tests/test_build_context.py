"""The build context the SDK sends: a folder as a tar, less what .dockerignore excludes."""

from __future__ import annotations

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
