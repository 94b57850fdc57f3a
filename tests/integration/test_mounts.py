"""Bind mounts and tmpfs through the public client, as a user checks them: data seen from both sides."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from conftest import REPO, Engine
from teu import mounts
from teu.client import Client, ContainerOptions
from teu.errors import InvalidArgument, NotFound

TEU = str(REPO / ".venv" / "bin" / "teu")


def sh(script: str, *specs: str, tmpfs: tuple[str, ...] = (), mount: tuple[str, ...] = ()) -> ContainerOptions:
    """A busybox shell script with -v, --tmpfs and --mount spellings, removed when it ends."""
    given = [*map(mounts.volume, specs), *map(mounts.tmpfs, tmpfs), *map(mounts.mount, mount)]
    return ContainerOptions(image="busybox", cmd=["sh", "-c", script], mounts=given, remove=True)


def test_a_bind_mount_shares_files_both_ways(client: Client, tmp_path: Path) -> None:
    """The container reads what the host put there and the host reads what the container wrote."""
    (tmp_path / "in.txt").write_text("from the host\n")
    r = client.run(sh("cat /data/in.txt; echo from the container > /data/out.txt", f"{tmp_path}:/data"))
    assert (r.exit_code, r.stdout) == (0, b"from the host\n"), r.stderr
    assert (tmp_path / "out.txt").read_text() == "from the container\n"


def test_a_read_only_bind_refuses_writes(client: Client, tmp_path: Path) -> None:
    (tmp_path / "f").write_text("readable\n")
    r = client.run(sh("cat /data/f && touch /data/new", f"{tmp_path}:/data:ro"))
    assert r.exit_code != 0 and b"Read-only file system" in r.stderr
    assert not (tmp_path / "new").exists()


def test_dash_v_creates_a_missing_host_directory_and_dash_mount_refuses_it(client: Client, tmp_path: Path) -> None:
    """Docker's rules: -v makes the directory; --mount type=bind is INVALID_ARGUMENT and leaves no container."""
    made = tmp_path / "made" / "here"
    assert client.run(sh("touch /data/x", f"{made}:/data")).exit_code == 0
    assert (made / "x").exists() and oct(made.stat().st_mode & 0o777) == "0o755"
    before = {c.id for c in client.list(all=True)}
    with pytest.raises(InvalidArgument, match="bind source path does not exist"):
        client.create(sh("true", mount=(f"type=bind,src={tmp_path / 'missing'},dst=/data",)))
    assert {c.id for c in client.list(all=True)} == before
    assert not (tmp_path / "missing").exists()


def test_a_tmpfs_honours_its_size_and_options(client: Client) -> None:
    """--tmpfs /t:size=1m holds a 512 KiB file but not 2 MiB; it is noexec unless asked; --mount type=tmpfs too."""
    script = """dd if=/dev/zero of=/t/a bs=1k count=512 2>/dev/null && echo small-ok
                dd if=/dev/zero of=/t/b bs=1k count=2048 2>/dev/null || echo big-refused
                grep ' /t ' /proc/mounts; grep ' /u ' /proc/mounts"""
    r = client.run(sh(script, tmpfs=("/t:size=1m,mode=1770",), mount=("type=tmpfs,dst=/u,tmpfs-size=65536",)))
    out = r.stdout.decode().splitlines()
    assert out[:2] == ["small-ok", "big-refused"], r.stderr
    t, u = out[2].split(), out[3].split()
    assert t[2] == "tmpfs" and {"nosuid", "nodev", "noexec", "size=1024k", "mode=1770"} <= set(t[3].split(","))
    assert "size=64k" in u[3]


def test_inspect_shows_the_mounts_in_dockers_shape(client: Client, engine: Engine, tmp_path: Path) -> None:
    cid = client.create(sh("true", f"{tmp_path}:/data:ro", mount=("type=tmpfs,dst=/scratch",))).id
    try:
        shown = json.loads(subprocess.run(
            [TEU, "inspect", cid], env=engine.env(), capture_output=True, check=True, text=True
        ).stdout)[0]["Mounts"]  # fmt: skip
        assert shown == [
            {"Type": "bind", "Source": str(tmp_path), "Destination": "/data", "Mode": "", "RW": False, "Propagation": "rprivate"},
            {"Type": "tmpfs", "Source": "", "Destination": "/scratch", "Mode": "", "RW": True, "Propagation": ""},
        ]
    finally:
        client.remove(cid, force=True)
    with pytest.raises(NotFound):
        client.inspect(cid)


def test_the_cli_takes_dockers_spellings(engine: Engine, tmp_path: Path) -> None:
    """teu run -v, --mount and --tmpfs as pasted from Docker's documentation."""
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "index.html").write_text("hi\n")
    out = subprocess.run(
        [TEU, "run", "--rm", "-v", f"{tmp_path / 'site'}:/www:ro", "--tmpfs", "/run:size=64k",
         "--mount", f"type=bind,source={tmp_path},target=/host,readonly", "busybox",
         "sh", "-c", "cat /www/index.html /host/site/index.html; df -k /run | tail -1"],
        env=engine.env(), capture_output=True, text=True,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[:2] == ["hi", "hi"] and lines[2].split()[1] == "64"


def test_a_tmpfs_over_a_file_of_the_image_fails_clearly_and_leaves_nothing(client: Client) -> None:
    """--tmpfs over a file (/bin/sh is one in busybox): exit 125 with the reason, and --rm removes the container."""
    before = {c.id for c in client.list(all=True)}
    r = client.run(sh("true", tmpfs=("/bin/sh:ro",)))
    assert r.exit_code == 125 and "not a directory" in r.error
    assert {c.id for c in client.list(all=True)} == before
