"""Where containers' cgroups go: PARENT under this process's cgroup in every hierarchy."""

from __future__ import annotations

from pathlib import Path

from teu_runtime import cgroups

MOUNTINFO = """\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpuacct,cpu
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 /ns /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
"""
CGROUP = """\
9:name=systemd:/
4:memory:/ci/job1
2:cpu,cpuacct:/
0::/ns/svc
"""


def test_parent_dirs_follow_each_hierarchy(tmp_path: Path) -> None:
    """Own paths per controller, v1 and v2 alike; a mount of a sub-tree is resolved from its root."""
    (tmp_path / "mountinfo").write_text(MOUNTINFO)
    (tmp_path / "cgroup").write_text(CGROUP)
    assert cgroups.parent_dirs(tmp_path) == [
        Path("/sys/fs/cgroup/systemd/teu"),
        Path("/sys/fs/cgroup/memory/ci/job1/teu"),
        Path("/sys/fs/cgroup/cpu,cpuacct/teu"),
        Path("/sys/fs/cgroup/unified/svc/teu"),
    ]
