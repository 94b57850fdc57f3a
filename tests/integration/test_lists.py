"""Lists scripts can use: ps/volume ls --filter and --format, inspect -f, as Docker prints them."""

from __future__ import annotations

import json
import subprocess

from conftest import REPO, Engine
from teu.client import Client, ContainerOptions

TEU = str(REPO / ".venv" / "bin" / "teu")


def teu(engine: Engine, *args: str) -> str:
    out = subprocess.run([TEU, *args], env=engine.env(), capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_ps_filters_and_formats(client: Client, engine: Engine) -> None:
    web = client.run_detached(ContainerOptions(image="busybox", cmd=["sleep", "60"], name="lists-web", labels={"tier": "web"}))
    done = client.run(ContainerOptions(image="busybox", cmd=["sh", "-c", "exit 3"], name="lists-done", labels={"tier": "job"}))
    try:
        assert (
            teu(engine, "ps", "--filter", "label=tier=web", "--format", "{{.Names}} {{.State}}").split("\n")[0]
            == "lists-web running"
        )
        assert teu(engine, "ps", "--filter", "label=tier", "--format", "{{.Names}}").split() == ["lists-web"]  # running only
        assert teu(engine, "ps", "-a", "--filter", "label=tier", "--format", "{{.Names}}").split() == ["lists-done", "lists-web"]
        assert teu(engine, "ps", "--filter", "exited=3", "-q", "--no-trunc").split() == [done.id]
        assert teu(
            engine, "ps", "--filter", "status=exited", "--filter", "name=lists-", "--format", '{{.Label "tier"}}'
        ).split() == ["job"]
        table = teu(engine, "ps", "--filter", "name=lists-web", "--format", "table {{.ID}}\\t{{.Names}}").splitlines()
        assert table[0].split() == ["CONTAINER", "ID", "NAMES"] and table[1].split() == [web[:12], "lists-web"]
        (row,) = [json.loads(line) for line in teu(engine, "ps", "--filter", "name=lists-web", "--format", "json").splitlines()]
        assert (row["Names"], row["Labels"], row["State"]) == ("lists-web", "tier=web", "running")
        assert teu(engine, "ps", "-n", "1", "--format", "{{.Names}}").split() == ["lists-done"]
        default = teu(engine, "ps").splitlines()[0].split()
        assert default == ["CONTAINER", "ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"]
        assert teu(engine, "inspect", "-f", "{{.State.Status}} {{.Config.Labels.tier}} {{json .Config.Cmd}}", "lists-web") == (
            'running web ["sleep","60"]\n'
        )
        bad = subprocess.run([TEU, "ps", "--filter", "colour=red"], env=engine.env(), capture_output=True, text=True)
        assert bad.returncode != 0 and "invalid filter" in bad.stderr
    finally:
        client.remove(web, force=True)
        client.remove(done.id)


def test_volume_ls_format(client: Client, engine: Engine) -> None:
    client.create_volume("listed-vol", labels={"a": "b"})
    try:
        assert teu(engine, "volume", "ls", "--filter", "label=a", "--format", "{{.Name}}:{{.Driver}}:{{.Labels}}").split() == [
            "listed-vol:local:a=b"
        ]
        assert teu(engine, "volume", "inspect", "-f", "{{.Name}} {{.Scope}}", "listed-vol") == "listed-vol local\n"
    finally:
        client.remove_volume("listed-vol")


def test_images_filters_and_format(client: Client, engine: Engine) -> None:
    client.tag("busybox", "listed/app:1")
    try:
        assert teu(engine, "images", "--filter", "reference=listed/*", "--format", "{{.Repository}}:{{.Tag}}").split() == [
            "listed/app:1"
        ]
        rows = [
            json.loads(line)
            for line in teu(engine, "images", "--filter", "reference=listed/app", "--format", "json").splitlines()
        ]
        assert [(r["Repository"], r["Tag"]) for r in rows] == [("listed/app", "1")]
        assert teu(engine, "images", "--filter", "dangling=true", "--filter", "reference=listed/*", "-q") == ""
        assert teu(engine, "image", "inspect", "-f", "{{json .RepoTags}}", "listed/app:1").strip().startswith("[")
    finally:
        client.remove_image("listed/app:1")


def test_ps_size_shows_what_a_container_wrote(client: Client, engine: Engine) -> None:
    c = client.run(ContainerOptions(image="busybox", cmd=["sh", "-c", "dd if=/dev/zero of=/big bs=1k count=300 2>/dev/null"],
                                    name="sized-ps"))  # fmt: skip
    try:
        (s,) = client.list(all=True, filters=["name=sized-ps"], size=True)
        image = client.inspect_image("busybox").size
        assert s.size_rw >= 300 << 10 and s.size_root_fs == s.size_rw + image
        line = teu(engine, "ps", "-a", "-s", "--filter", "name=sized-ps").splitlines()
        assert line[0].split()[-1] == "SIZE" and "(virtual" in line[1]
    finally:
        client.remove(c.id)
