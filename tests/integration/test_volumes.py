"""Volumes through the public client, as a user checks them: data that outlives containers and the engine."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import REPO, Engine
from teu import mounts
from teu.client import Client, ContainerOptions
from teu.errors import FailedPrecondition, InvalidArgument, NotFound

TEU = str(REPO / ".venv" / "bin" / "teu")


def sh(script: str, *specs: str, remove: bool = True, image: str = "busybox", **kw: Any) -> ContainerOptions:
    """A shell script with -v spellings (and other options)."""
    kw["mounts"] = [*(mounts.volume(s) for s in specs), *kw.get("mounts", [])]
    return ContainerOptions(image=image, cmd=["sh", "-c", script], remove=remove, **kw)


@pytest.fixture
def names(client: Client) -> Iterator[list[str]]:
    """Volume names a test makes; removed after it (with whatever containers it left)."""
    made: list[str] = []
    yield made
    for c in client.list(all=True):
        client.remove(c.id, force=True, volumes=True)
    for name in made:
        client.remove_volume(name, force=True)


def test_a_named_volume_outlives_its_container_and_the_engine(client: Client, engine: Engine, names: list[str]) -> None:
    """Written by one container, read by the next after the first is gone, and after an engine restart."""
    names.append("keep-me")
    assert client.run(sh("echo kept > /data/f", "keep-me:/data")).exit_code == 0
    assert [v.name for v in client.list_volumes(["name=keep-me"])] == ["keep-me"]
    assert client.run(sh("cat /data/f", "keep-me:/data")).stdout == b"kept\n"
    engine.stop()
    engine.start()
    with Client(engine.target) as again:
        assert again.run(sh("cat /srv/f", "keep-me:/srv:ro")).stdout == b"kept\n"


def test_a_volume_in_use_cannot_be_removed(client: Client, names: list[str]) -> None:
    """FAILED_PRECONDITION naming the container; once the container is gone, the volume can go."""
    names.append("busy")
    cid = client.create(sh("true", "busy:/data", remove=False, name="holder")).id
    with pytest.raises(FailedPrecondition, match=r"volume is in use - \[holder\]"):
        client.remove_volume("busy")
    assert client.inspect_volume("busy").used_by == ["holder"]
    client.remove(cid)
    assert client.remove_volume("busy")
    with pytest.raises(NotFound):
        client.inspect_volume("busy")


def test_a_new_volume_is_filled_from_the_image_unless_nocopy(client: Client, names: list[str]) -> None:
    """Mounted at /etc, a new volume gets the image's /etc (Docker does this); nocopy leaves it empty."""
    names += ["etc-copy", "etc-empty"]
    assert client.run(sh("true", "etc-copy:/etc")).exit_code == 0
    assert b"root:x:0:0" in client.run(sh("cat /v/passwd", "etc-copy:/v")).stdout
    assert client.run(sh("true", "etc-empty:/etc:nocopy")).exit_code == 0
    assert client.run(sh("ls -A /v | wc -l", "etc-empty:/v")).stdout.strip() == b"0"


def test_anonymous_volumes_go_with_rm_v_and_run_rm_and_stay_otherwise(client: Client, engine: Engine) -> None:
    before = {v.name for v in client.list_volumes()}
    auto = client.run(sh("echo x > /scratch/f", "/scratch"))
    assert auto.exit_code == 0
    assert {v.name for v in client.list_volumes()} == before  # --rm took its anonymous volume
    kept = client.run(sh("echo x > /scratch/f", "/scratch", remove=False))
    (anonymous,) = {v.name for v in client.list_volumes()} - before
    assert len(anonymous) == 64 and client.inspect_volume(anonymous).used_by == [kept.name]
    client.remove(kept.id)
    assert client.inspect_volume(anonymous).used_by == []
    assert anonymous in {v.name for v in client.list_volumes(["dangling=true"])}
    pruned = client.prune_volumes()
    assert anonymous in pruned.deleted and pruned.reclaimed > 0
    again = client.run(sh("true", "/scratch", remove=False))
    (second,) = {v.name for v in client.list_volumes()} - before
    client.remove(again.id, volumes=True)
    with pytest.raises(NotFound):
        client.inspect_volume(second)


def test_an_images_volume_paths_get_anonymous_volumes_filled_from_the_image(client: Client) -> None:
    """VOLUME /data set by commit --change: each container gets its own volume there, holding the image's files."""
    base = client.run(sh("mkdir /data && echo seeded > /data/seed", remove=False))
    client.commit(base.id, "with-volume:1", changes=["VOLUME /data", "EXPOSE 8080 53/udp"])
    client.remove(base.id)
    try:
        config = client.inspect_image("with-volume:1").config
        assert (list(config.volumes), list(config.exposed_ports)) == (["/data"], ["53/udp", "8080/tcp"])
        c = client.run(sh("cat /data/seed; echo mine > /data/own", remove=False, image="with-volume:1"))
        assert c.stdout == b"seeded\n"
        (mp,) = client.inspect(c.id).mount_points
        assert (mp.type, mp.destination, len(mp.name)) == ("volume", "/data", 64)
        client.remove(c.id, volumes=True)
        with pytest.raises(NotFound):
            client.inspect_volume(mp.name)
    finally:
        client.remove_image("with-volume:1")


def test_volumes_from_shares_binds_and_volumes(client: Client, names: list[str]) -> None:
    names.append("shared")
    src = client.create(sh("true", "shared:/shared", remove=False, name="source")).id
    client.run(sh("echo hi > /shared/f", "shared:/shared"))
    r = client.run(sh("cat /shared/f; touch /shared/g", volumes_from=["source:ro"]))
    assert r.stdout == b"hi\n" and b"Read-only file system" in r.stderr
    client.remove(src)


def test_driver_options_tmpfs_and_bind(client: Client, names: list[str], tmp_path: Path) -> None:
    """Docker's local driver options: a tmpfs volume of 1 MiB; a bind of a host directory."""
    names += ["ram", "hostdir"]
    client.create_volume("ram", options={"type": "tmpfs", "device": "tmpfs", "o": "size=1m"})
    out = client.run(sh("grep ' /ram ' /proc/mounts", "ram:/ram")).stdout.split()
    assert out[2] == b"tmpfs" and b"size=1024k" in out[3]
    client.create_volume("hostdir", options={"type": "none", "o": "bind", "device": str(tmp_path)})
    client.run(sh("echo via-volume > /h/f", "hostdir:/h"))
    assert (tmp_path / "f").read_text() == "via-volume\n"


def test_bad_volume_input_is_refused_and_leaves_nothing(client: Client, tmp_path: Path) -> None:
    before = {v.name for v in client.list_volumes()}
    with pytest.raises(InvalidArgument, match="invalid option key"):
        client.create_volume("bad-opts", options={"colour": "blue"})
    with pytest.raises(InvalidArgument, match="invalid volume name"):
        client.create(sh("true", remove=False, mounts=[mounts.mount("type=volume,src=../etc,dst=/x")]))
    # the volume this create made goes again when the runtime refuses the create
    with pytest.raises(InvalidArgument, match="bind source path does not exist"):
        client.create(
            sh("true", "made-then-undone:/x", remove=False, mounts=[mounts.mount(f"type=bind,src={tmp_path}/missing,dst=/y")])
        )
    assert {v.name for v in client.list_volumes()} == before
    with pytest.raises(NotFound):
        client.remove_volume("never-made")
    assert client.remove_volume("never-made", force=True) is False


def test_the_cli_speaks_dockers_volume_commands(engine: Engine) -> None:
    def teu(*args: str) -> str:
        out = subprocess.run([TEU, *args], env=engine.env(), capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        return out.stdout

    assert teu("volume", "create", "--label", "tier=db", "cli-vol").strip() == "cli-vol"
    assert "cli-vol" in teu("volume", "ls", "--filter", "label=tier=db").split()
    assert teu("volume", "ls", "-q", "--filter", "label=tier=web").strip() == ""
    (shown,) = json.loads(teu("volume", "inspect", "cli-vol"))
    assert (shown["Name"], shown["Driver"], shown["Labels"], shown["Scope"]) == ("cli-vol", "local", {"tier": "db"}, "local")
    assert teu("run", "--rm", "-v", "cli-vol:/d", "busybox", "sh", "-c", "echo ok > /d/f; cat /d/f").strip() == "ok"
    assert teu("volume", "rm", "cli-vol").strip() == "cli-vol"


def test_system_df_counts_volumes(client: Client, names: list[str]) -> None:
    names.append("sized")
    before = client.disk_usage()
    client.run(sh("dd if=/dev/urandom of=/d/f bs=1k count=300 2>/dev/null", "sized:/d"))
    after = client.disk_usage()
    assert after.volumes == before.volumes + 1
    assert after.volumes_bytes - before.volumes_bytes >= 300 << 10
    assert client.inspect_volume("sized").size >= 300 << 10
