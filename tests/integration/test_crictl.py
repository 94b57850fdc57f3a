"""crictl, Kubernetes' own CRI client, against the engine's cri.sock: a pod run from JSON files,
`exec` through the streaming server (plain and with a terminal), `logs`, `port-forward`, `stats`,
then `stopp` and `rmp`. crictl comes from PATH or $TEU_CRI_TOOLS; without it these tests skip."""

from __future__ import annotations

import json
import socket
import subprocess
import uuid
from pathlib import Path

import pytest

from conftest import IMAGE_TAR
from teu.client import Client
from teu.testing import PrivateEngine, cri_tool, import_pause, wait_until

CRICTL = cri_tool("crictl")
pytestmark = pytest.mark.skipif(CRICTL is None, reason="crictl is not on PATH and TEU_CRI_TOOLS names no folder with it")


class Crictl:
    """crictl pointed at the engine's cri.sock."""

    def __init__(self, sock: str, cwd: Path) -> None:
        self.sock, self.cwd = sock, cwd

    def argv(self, *args: str) -> list[str]:
        return [str(CRICTL), "--runtime-endpoint", self.sock, "--image-endpoint", self.sock, "--timeout", "30s", *args]

    def __call__(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(self.argv(*args), capture_output=True, text=True, timeout=60, cwd=self.cwd)
        if check:
            assert done.returncode == 0, (args, done.stdout, done.stderr)
        return done


@pytest.fixture()
def crictl(engine: PrivateEngine, client: Client, tmp_path: Path) -> Crictl:
    import_pause(client, IMAGE_TAR)
    tool = Crictl(f"unix://{engine.run_dir}/cri.sock", tmp_path)
    wait_until(lambda: tool("version", check=False).returncode == 0, timeout=30, what="the CRI service")
    return tool


def test_a_pod_through_crictl(crictl: Crictl, tmp_path: Path) -> None:
    uid = str(uuid.uuid4())
    pod = {"metadata": {"name": "web", "namespace": "default", "uid": uid}, "hostname": "web-pod",
           "log_directory": str(tmp_path / "logs"), "linux": {}}  # fmt: skip
    ctr = {"metadata": {"name": "main"}, "image": {"image": "busybox"}, "log_path": "main.log",
           "command": ["sh", "-c", "echo started; httpd -f -p 8080 -h /etc"], "linux": {}}  # fmt: skip
    (tmp_path / "pod.json").write_text(json.dumps(pod))
    (tmp_path / "ctr.json").write_text(json.dumps(ctr))
    pid = crictl("runp", "pod.json").stdout.strip()
    try:
        cid = crictl("create", pid, "ctr.json", "pod.json").stdout.strip()
        crictl("start", cid)
        assert crictl("exec", cid, "sh", "-c", "echo out; echo err >&2").stdout == "out\n"
        failed = crictl("exec", cid, "sh", "-c", "exit 3", check=False)
        assert failed.returncode != 0 and "3" in failed.stderr, failed
        assert crictl("exec", "-s", cid, "hostname").stdout.strip() == "web-pod"  # ExecSync
        wait_until(lambda: "started" in crictl("logs", cid).stdout, timeout=10, what="the log")
        assert json.loads(crictl("stats", "-o", "json", cid).stdout)["stats"][0]["attributes"]["id"] == cid
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            local = s.getsockname()[1]
        proc = subprocess.Popen(
            crictl.argv("port-forward", pid, f"{local}:8080"), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        try:
            wait_until(lambda: _http_get(local, "/hostname") == "web-pod\n", timeout=15, what="the forwarded port")
        finally:
            proc.terminate()
            _, err = proc.communicate(timeout=10)
            print("crictl port-forward:", err)
        (tmp_path / "cat.json").write_text(json.dumps({"metadata": {"name": "cat"}, "image": {"image": "busybox"}, "command": ["cat"],
                                                       "stdin": True, "stdin_once": True, "linux": {}}))  # fmt: skip
        cat = crictl("create", pid, "cat.json", "pod.json").stdout.strip()
        crictl("start", cat)
        attached = subprocess.run(crictl.argv("attach", "-i", cat), input="via attach\n", capture_output=True, text=True,
                                  timeout=60, cwd=tmp_path)  # fmt: skip
        assert "via attach" in attached.stdout, attached
        crictl("stopp", pid)
        states = json.loads(crictl("pods", "-o", "json").stdout)["items"]
        assert [p["state"] for p in states if p["id"] == pid] == ["SANDBOX_NOTREADY"]
    finally:
        crictl("rmp", "-f", pid, check=False)
    assert pid not in crictl("pods", "-q").stdout


def _http_get(port: int, path: str) -> str:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(f"GET {path} HTTP/1.0\r\nHost: x\r\n\r\n".encode())
            data = b""
            while chunk := s.recv(65536):
                data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        return body.decode() if b" 200 " in head.split(b"\r\n")[0] else ""
    except OSError:
        return ""
