"""What the security tests share: acting as an unprivileged local user, waiting for a condition."""

from __future__ import annotations

import subprocess

NOBODY = 65534


def as_nobody(*argv: str) -> subprocess.CompletedProcess[str]:
    """Runs ``argv`` as the unprivileged local user nobody (no groups, no capabilities: ids are
    changed before the exec, so even the program's path is resolved as nobody)."""
    try:
        return subprocess.run(
            list(argv), user=NOBODY, group=NOBODY, extra_groups=[], capture_output=True, text=True, timeout=60, cwd="/"
        )
    except PermissionError as exc:  # the exec itself was refused
        return subprocess.CompletedProcess(list(argv), 126, "", f"{exc.strerror}: {argv[0]}")
