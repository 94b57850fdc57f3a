"""The web page's API (services/web) against the real services: what the page lists, its actions,
its logs (read, searched and followed live), a container's changes, processes and usage, images
(pulled with progress, tagged, removed, with their history), volumes, networks, and `teu web`."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from test_registry import registry  # noqa: F401 (a fixture)

from conftest import REPO, Engine
from teu.client import Client, ContainerOptions
from teu.testing import PrivateEngine, wait_until

TEU = str(REPO / ".venv" / "bin" / "teu")


def web_url(engine: Engine) -> str:
    path = engine.run_dir / "web.url"
    wait_until(path.exists, timeout=30, what="the web page's address")
    return path.read_text().strip()


def http(engine: Engine, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(web_url(engine) + path.lstrip("/"), method=method, data=data)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            body = r.read()
            return r.status, json.loads(body) if r.headers.get_content_type() == "application/json" else body.decode()
    except urllib.error.HTTPError as exc:
        body = exc.read()
        return exc.code, json.loads(body) if exc.headers.get_content_type() == "application/json" else body.decode()


def test_teu_web_prints_the_pages_address(engine: Engine) -> None:
    r = subprocess.run([TEU, "web"], env=engine.env(), capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == web_url(engine) and r.stdout.startswith("http://127.0.0.1:")
    status, page = http(engine, "GET", "/")
    assert status == 200 and "<title>Teu</title>" in page


def test_the_engine_serves_the_page_where_its_flag_says(tmp_path: Path) -> None:
    """``teu-engine --web-listen HOST:PORT`` (the engine's setting TEU_WEB_LISTEN as a flag)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with PrivateEngine(tmp_path / "flagged", args=["--web-listen", f"127.0.0.1:{port}"]) as eng:
        url = web_url(eng)
        assert url == f"http://127.0.0.1:{port}/"
        with urllib.request.urlopen(url, timeout=30) as r:
            assert r.status == 200 and b"<title>Teu</title>" in r.read()


def test_the_api_lists_acts_and_reads_logs(engine: Engine, client: Client) -> None:
    name = f"web-{uuid.uuid4().hex[:8]}"
    cid = client.run_detached(
        ContainerOptions(image="busybox", cmd=["sh", "-c", "trap 'exit 0' TERM; echo hello-web; sleep 300 & wait"], name=name)
    )
    try:
        status, listed = http(engine, "GET", "/api/containers")
        mine = next(c for c in listed if c["name"] == name)
        assert status == 200 and (mine["id"], mine["state"], mine["image"]) == (cid, "running", "busybox")
        wait_until(lambda: any(line["text"] == "hello-web\n" for line in http(engine, "GET", f"/api/containers/{name}/logs")[1]))
        status, details = http(engine, "GET", f"/api/containers/{name}")
        assert status == 200 and details["Id"] == cid and details["State"]["Running"]
        assert http(engine, "POST", f"/api/containers/{name}/stop")[0] == 200
        assert client.inspect(cid).summary.state == 3  # exited
        status, err = http(engine, "POST", f"/api/containers/{name}/explode")
        assert status == 400 and "unknown action" in err["message"]
        assert http(engine, "GET", "/api/containers/no-such-container")[0] == 404
        status, images = http(engine, "GET", "/api/images")
        assert status == 200 and any("busybox:latest" in i["tags"] for i in images)
        assert http(engine, "DELETE", f"/api/containers/{name}")[0] == 200
    finally:
        try:
            client.remove(cid, force=True)
        except Exception:  # removed by the page already
            pass


def test_followed_logs_show_a_line_written_after_the_page_opened(engine: Engine, client: Client) -> None:
    cid = client.run_detached(
        ContainerOptions(image="busybox", cmd=["sh", "-c", "cat /dev/null; sleep 2; echo later; sleep 300"])
    )

    async def follow() -> list[str]:
        seen: list[str] = []
        url = web_url(engine).replace("http://", "ws://") + f"api/containers/{cid}/logs/follow"
        async with aiohttp.ClientSession() as s, s.ws_connect(url) as ws:
            async with asyncio.timeout(30):
                async for msg in ws:
                    seen.append(json.loads(msg.data).get("text", ""))
                    if "later\n" in seen:
                        return seen
        return seen

    try:
        assert "later\n" in asyncio.run(follow())
    finally:
        client.remove(cid, force=True)


@pytest.mark.parametrize("path", ["/api/containers/x/stop", "/api/containers/x/start"])
def test_actions_need_post(engine: Engine, path: str) -> None:
    status, err = http(engine, "GET", path)
    assert status == 405 and err["message"] == "Method Not Allowed"


def messages(engine: Engine, path: str, until: Any, headers: dict[str, str] | None = None) -> list[Any]:
    """The JSON messages a WebSocket of the page's API sends, until one satisfies ``until`` (30 s at most)."""

    async def read() -> list[Any]:
        seen: list[Any] = []
        url = web_url(engine).replace("http://", "ws://") + path.lstrip("/")
        async with aiohttp.ClientSession() as s, s.ws_connect(url, headers=headers) as ws:
            async with asyncio.timeout(30):
                async for msg in ws:
                    seen.append(json.loads(msg.data))
                    if until(seen[-1]):
                        return seen
        return seen

    return asyncio.run(read())


def test_logs_are_searched_with_the_logs_services_grep(engine: Engine, client: Client) -> None:
    cid = client.run_detached(
        ContainerOptions(image="busybox", cmd=["sh", "-c", "echo apple; echo banana; echo cherry; sleep 300"])
    )
    try:
        wait_until(lambda: len(http(engine, "GET", f"/api/containers/{cid}/logs")[1]) == 3, what="three lines")
        status, found = http(engine, "GET", f"/api/containers/{cid}/logs?grep=an%7Cch&tail=0")
        assert status == 200 and [line["text"] for line in found] == ["banana\n", "cherry\n"]
        assert [m["text"] for m in messages(engine, f"/api/containers/{cid}/logs/follow?grep=^b", lambda m: True)] == ["banana\n"]
        status, err = http(engine, "GET", f"/api/containers/{cid}/logs?tail=lots")
        assert status == 400 and "tail must be a number" in err["message"]
    finally:
        client.remove(cid, force=True)


def test_a_containers_changes_processes_and_usage(engine: Engine, client: Client) -> None:
    cid = client.run_detached(ContainerOptions(image="busybox", cmd=["sh", "-c", "echo x > /made-here; rm /bin/true; sleep 300"]))
    try:
        wait_until(lambda: any(c["path"] == "/made-here" for c in http(engine, "GET", f"/api/containers/{cid}/diff")[1]))
        changes = {c["path"]: c["kind"] for c in http(engine, "GET", f"/api/containers/{cid}/diff")[1]}
        assert changes["/made-here"] == "A" and changes["/bin/true"] == "D"
        status, top = http(engine, "GET", f"/api/containers/{cid}/top")
        assert status == 200 and "PID" in top["titles"]
        command = top["titles"].index("CMD")
        assert any(row[command].startswith("sleep 300") for row in top["processes"])
        readings = messages(engine, "/api/stats", lambda m: any(r["id"] == cid for r in m))
        mine = next(r for r in readings[-1] if r["id"] == cid)
        assert mine["memory"] > 0 and mine["memory_limit"] >= mine["memory"] and mine["cpu_percent"] >= 0 and mine["pids"] >= 1
        client.stop(cid, timeout=1)
        status, err = http(engine, "GET", f"/api/containers/{cid}/top")
        assert status == 409 and "not running" in err["message"]
    finally:
        client.remove(cid, force=True)


def test_images_pulled_with_progress_tagged_inspected_and_removed(engine: Engine, client: Client, registry: str) -> None:  # noqa: F811
    ref = f"{registry}/web/bb:1"
    client.tag("busybox", ref)
    list(client.push(ref, insecure=True))
    client.remove_image(ref)
    progress = messages(engine, f"/api/images/pull?image={ref}", lambda m: "image" in m or "error" in m)
    assert "image" in progress[-1] and ref in progress[-1]["tags"], progress[-1]
    assert any(m.get("digest", "").startswith("sha256:") and m["total"] > 0 for m in progress[:-1])
    image_id = progress[-1]["image"]
    status, found = http(engine, "GET", f"/api/images/{urllib.parse.quote(ref, safe='')}")
    assert status == 200 and found["inspect"]["Id"] == image_id and found["history"], found
    assert http(engine, "POST", f"/api/images/{image_id}/tag", {"target": "web-tagged:2"})[0] == 201
    assert client.inspect_image("web-tagged:2").id == image_id
    status, err = http(engine, "POST", f"/api/images/{image_id}/tag", {"target": "Not A Name"})
    assert status == 400, err
    status, done = http(engine, "DELETE", "/api/images/web-tagged:2")
    assert status == 200 and "web-tagged:2" in done["untagged"][0]
    assert http(engine, "DELETE", f"/api/images/{urllib.parse.quote(ref, safe='')}")[0] == 200
    assert http(engine, "GET", "/api/images/no-such-image:0")[0] == 404
    refused = messages(engine, "/api/images/pull?image=127.0.0.1:1/nothing:here", lambda m: True)
    assert "error" in refused[0]


def test_volumes_and_networks(engine: Engine) -> None:
    name = f"webvol-{uuid.uuid4().hex[:8]}"
    assert http(engine, "POST", "/api/volumes", {"name": name}) == (201, {"name": name})
    assert any(v["name"] == name for v in http(engine, "GET", "/api/volumes")[1])
    assert http(engine, "POST", "/api/volumes", {"name": name})[0] == 201  # as Docker's: the volume there is the answer
    assert http(engine, "DELETE", f"/api/volumes/{name}")[0] == 200
    assert http(engine, "DELETE", f"/api/volumes/{name}")[0] == 404
    net = f"webnet-{uuid.uuid4().hex[:6]}"
    status, made = http(engine, "POST", "/api/networks", {"name": net})
    assert status == 201 and made["name"] == net
    listed = next(n for n in http(engine, "GET", "/api/networks")[1] if n["name"] == net)
    assert listed["subnet"] and listed["driver"] == "bridge"
    assert http(engine, "POST", "/api/networks", {"subnet": "10.1.0.0/24"}) == (400, {"message": "name is required"})
    assert http(engine, "POST", "/api/networks", ["not", "an", "object"])[0] == 400
    assert http(engine, "DELETE", f"/api/networks/{net}")[0] == 200


def test_another_sites_websocket_is_refused(engine: Engine) -> None:
    """Any web page the user opens may try a WebSocket to loopback; the browser says whose it is in Origin."""
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        messages(engine, "/api/events", lambda m: True, headers={"Origin": "http://evil.example"})
    assert refused.value.status == 403
