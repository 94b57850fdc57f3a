"""Per-container series on the runtime's metrics endpoint, as Prometheus scrapes them."""

from __future__ import annotations

import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from conftest import Engine
from teu.client import Client, ContainerOptions


def scrape(engine: Engine) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Every sample of the runtime's endpoint, by series name."""
    url = (engine.run_dir / "runtime.metrics").read_text().strip()
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
