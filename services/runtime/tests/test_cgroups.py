"""Where containers' cgroups go: PARENT under this process's cgroup in every hierarchy."""

from __future__ import annotations

from pathlib import Path

import pytest

from teu_api.errors import InvalidArgument
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


def test_parent_dirs_under_another_parent(tmp_path: Path) -> None:
    """TEU_CGROUP_PARENT's name replaces ``teu`` in every hierarchy."""
    (tmp_path / "mountinfo").write_text(MOUNTINFO)
    (tmp_path / "cgroup").write_text(CGROUP)
    assert cgroups.parent_dirs(tmp_path, "ci/engine-1")[1] == Path("/sys/fs/cgroup/memory/ci/job1/ci/engine-1")


@pytest.mark.parametrize("value", ["/abs", "a/../b", "a//b", ".", "a/"])
def test_parent_from_env_refuses_what_could_leave_the_engine(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    """Only a relative path of plain names: the containers' cgroups stay under the engine's own."""
    monkeypatch.setenv("TEU_CGROUP_PARENT", value)
    with pytest.raises(InvalidArgument):
        cgroups.parent_from_env()


def test_parent_from_env_defaults_to_teu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TEU_CGROUP_PARENT", raising=False)
    assert cgroups.parent_from_env() == "teu"
    monkeypatch.setenv("TEU_CGROUP_PARENT", "teu-a1/b")
    assert cgroups.parent_from_env() == "teu-a1/b"


CID = "c" * 64


def test_a_containers_own_parent(tmp_path: Path) -> None:
    """--cgroup-parent: an absolute one from each hierarchy's root, a relative one under the engine's."""
    (tmp_path / "mountinfo").write_text(MOUNTINFO)
    (tmp_path / "cgroup").write_text(CGROUP)
    assert cgroups.container_path("teu", "/kubepods/pod1", CID) == f"/kubepods/pod1/{CID}"
    assert cgroups.container_path("teu", "pods/one", CID) == f"teu/pods/one/{CID}"
    assert cgroups.container_path("teu", "", CID) == f"teu/{CID}"
    assert cgroups.container_dirs(CID, "teu", "/kubepods/pod1", tmp_path)[1] == Path(f"/sys/fs/cgroup/memory/kubepods/pod1/{CID}")
    assert cgroups.container_dirs(CID, "teu", "pods", tmp_path)[1] == Path(f"/sys/fs/cgroup/memory/ci/job1/teu/pods/{CID}")
    assert cgroups.container_dirs(CID, "teu", "", tmp_path)[3] == Path(f"/sys/fs/cgroup/unified/svc/teu/{CID}")


@pytest.mark.parametrize("value", ["/", "../x", "/a/../b", "a//b/./c", "a b", "/" + "x" * 300])
def test_a_containers_parent_must_be_plain_names(value: str) -> None:
    with pytest.raises(InvalidArgument, match="invalid cgroup parent"):
        cgroups.check_container_parent(value)


def test_a_containers_parent_is_kept_tidy() -> None:
    assert cgroups.check_container_parent("/kubepods/burstable/pod1/") == "/kubepods/burstable/pod1"
    assert cgroups.check_container_parent("kubepods-besteffort.slice") == "kubepods-besteffort.slice"
    assert cgroups.check_container_parent("") == ""


def test_a_clean_stop_removes_the_folders_under_the_parent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What relative --cgroup-parent made under the engine's parent goes with it; a busy one stays."""
    top = tmp_path / "teu"
    (top / "sub" / "deeper").mkdir(parents=True)
    (top / "busy").mkdir()
    (top / "busy" / "cgroup.procs").write_text("1\n")  # rmdir refuses it, as the kernel refuses a used cgroup
    monkeypatch.setattr(cgroups, "parent_dirs", lambda parent: [top])
    cgroups.remove_parents()
    assert not (top / "sub").exists() and (top / "busy").exists()
