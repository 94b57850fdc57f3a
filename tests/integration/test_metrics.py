"""Per-container series on the runtime's metrics endpoint, as Prometheus scrapes them."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import Engine
from teu.client import Client, ContainerOptions
from teu.testing import wait_until


def scrape(engine: Engine, service: str = "runtime") -> dict[str, list[tuple[dict[str, str], float]]]:
    """Every sample of a service's endpoint, by series name."""
    url = (engine.run_dir / f"{service}.metrics").read_text().strip()
    text = urllib.request.urlopen(url, timeout=10).read().decode()
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append((sample.labels, sample.value))
    return out


def test_running_and_exited_containers_have_their_series(client: Client, engine: Engine) -> None:
    cid = client.run_detached(ContainerOptions(image="busybox", cmd=["sleep", "300"], memory=64 << 20, name="scraped"))
    done = client.run(ContainerOptions(image="busybox", cmd=["true"], name="scraped-done")).id
    try:
        series = scrape(engine)

        def value(name: str, who: str) -> float:
            return next(v for labels, v in series[name] if labels["id"] == who)

        assert value("teu_container_memory_limit_bytes", cid) == 64 << 20
        assert value("teu_container_memory_working_set_bytes", cid) > 0 and value("teu_container_pids", cid) == 1
        assert value("teu_container_cpu_seconds_total", cid) >= 0
        state = {labels["state"] for labels, v in series["teu_container_state"] if labels["id"] == done and v == 1}
        assert state == {"exited"} and value("teu_container_restarts_total", done) == 0
        labels = next(labels for labels, _ in series["teu_container_pids"] if labels["id"] == cid)
        assert (labels["name"], labels["image"]) == ("scraped", "busybox")
        running = next(v for labels, v in series["teu_containers"] if labels["state"] == "running")
        assert running >= 1
    finally:
        client.remove(cid, force=True)
        client.remove(done)


def test_a_real_prometheus_scrapes_the_engine(client: Client, engine: Engine, tmp_path: Path) -> None:
    """Debian's Prometheus, on loopback in its own directory, scrapes the runtime; its HTTP API then
    has a running container's memory series and a crashed container's restart count."""
    prometheus = shutil.which("prometheus")
    if prometheus is None:
        pytest.skip("prometheus is not installed (make test installs it)")
    target = urllib.parse.urlparse((engine.run_dir / "runtime.metrics").read_text().strip()).netloc
    (tmp_path / "prometheus.yml").write_text(
        f"global: {{scrape_interval: 1s}}\nscrape_configs: [{{job_name: teu, static_configs: [{{targets: ['{target}']}}]}}]\n"
    )
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    web = subprocess.Popen([prometheus, f"--config.file={tmp_path / 'prometheus.yml'}", f"--storage.tsdb.path={tmp_path / 'data'}",
                            f"--web.listen-address=127.0.0.1:{port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    live = client.run_detached(ContainerOptions(image="busybox", cmd=["sleep", "300"], name="promlive"))
    crash = client.run_detached(
        ContainerOptions(image="busybox", cmd=["sh", "-c", "exit 1"], name="promcrash", restart="on-failure:1")
    )
    try:

        def query(q: str) -> list[dict[str, object]]:
            url = f"http://127.0.0.1:{port}/api/v1/query?query={urllib.parse.quote(q)}"
            try:
                return json.loads(urllib.request.urlopen(url, timeout=5).read())["data"]["result"]  # type: ignore[no-any-return]
            except OSError:
                return []

        wait_until(lambda: query('teu_container_memory_working_set_bytes{name="promlive"}') != [], timeout=60, what="a scrape")
        wait_until(lambda: [r["value"][1] for r in query('teu_container_restarts_total{name="promcrash"}')] == ["1"],  # type: ignore[index]
                   timeout=60, what="the restart count")  # fmt: skip
    finally:
        web.terminate()
        web.wait(timeout=30)
        client.remove(live, force=True)
        client.remove(crash, force=True)


@pytest.mark.parametrize("service", ["gateway", "runtime", "storage", "logs"])
def test_every_endpoint_passes_promtool(client: Client, engine: Engine, service: str) -> None:
    """``promtool check metrics`` (Prometheus's own linter) finds nothing to say about any endpoint."""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (make test installs prometheus)")
    cid = client.run_detached(ContainerOptions(image="busybox", cmd=["sleep", "300"]))
    try:
        url = (engine.run_dir / f"{service}.metrics").read_text().strip()
        text = urllib.request.urlopen(url, timeout=10).read()
        checked = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, timeout=60)
        assert (checked.returncode, checked.stdout + checked.stderr) == (0, b"")
    finally:
        client.remove(cid, force=True)


def test_log_bytes_and_engine_gauges(client: Client, engine: Engine) -> None:
    """The logs service counts each container's logged bytes; storage has images, volumes and disk use."""
    cid = client.run(
        ContainerOptions(image="busybox", cmd=["sh", "-c", "head -c 100000 /dev/zero | tr '\\0' x; echo"], name="chatty")
    ).id
    try:
        wait_until(lambda: any(labels["id"] == cid and v > 100_000 for labels, v in scrape(engine, "logs")["teu_container_log_bytes_total"]),
                   what="the log's bytes")  # fmt: skip
        logs = scrape(engine, "logs")
        labels = next(labels for labels, _ in logs["teu_container_log_bytes_total"] if labels["id"] == cid)
        assert (labels["name"], labels["image"]) == ("chatty", "busybox")
        assert next(v for labels, v in logs["teu_disk_bytes"] if labels["kind"] == "logs") > 100_000
        storage = scrape(engine, "storage")
        assert storage["teu_images"][0][1] >= 1 and "teu_volumes" in storage
        assert next(v for labels, v in storage["teu_disk_bytes"] if labels["kind"] == "images") > 0
        walked = lambda: {labels["kind"] for labels, _ in scrape(engine, "storage")["teu_disk_bytes"]}  # noqa: E731
        wait_until(lambda: walked() == {"images", "volumes", "containers"}, what="the walk of volumes and layers")
    finally:
        client.remove(cid)
