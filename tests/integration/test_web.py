"""The web page's API (services/web) against the real services: what the page lists, its actions,
its logs (read and followed live), and `teu web`."""

from __future__ import annotations

import asyncio
import json
import subprocess
import urllib.error
import urllib.request
import uuid
from typing import Any

import aiohttp
import pytest

from conftest import REPO, Engine
from teu.client import Client, ContainerOptions
from teu.testing import wait_until

TEU = str(REPO / ".venv" / "bin" / "teu")


def web_url(engine: Engine) -> str:
    path = engine.run_dir / "web.url"
    wait_until(path.exists, timeout=30, what="the web page's address")
    return path.read_text().strip()


def http(engine: Engine, method: str, path: str) -> tuple[int, Any]:
    req = urllib.request.Request(web_url(engine) + path.lstrip("/"), method=method)
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
