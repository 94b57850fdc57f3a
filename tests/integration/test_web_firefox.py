"""The web page in a real headless Firefox (Debian's firefox-esr, driven through its own Marionette
protocol by Mozilla's marionette-driver): it lists a running container, runs `echo` in its terminal,
and stops it. Screenshots in tests/artifacts/web (firefox-*.png)."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import REPO, Engine
from teu.client import Client, ContainerOptions
from teu.testing import wait_until

marionette = pytest.importorskip(
    "marionette_driver.marionette", reason="marionette-driver is a test dependency (requirements-dev.txt)"
)
from marionette_driver.errors import MarionetteException  # noqa: E402

ARTIFACTS = REPO / "tests" / "artifacts" / "web"
FIREFOX = shutil.which("firefox-esr") or shutil.which("firefox")
CLOSED = ("127.0.0.1", 9)  # a port nobody listens on: whatever is not loopback goes there, and fails
PREFS: dict[str, Any] = {
    # the browser reaches this machine only: every proxy is a closed loopback port, names resolve there too
    "network.proxy.type": 1,
    "network.proxy.http": CLOSED[0], "network.proxy.http_port": CLOSED[1],
    "network.proxy.ssl": CLOSED[0], "network.proxy.ssl_port": CLOSED[1],
    "network.proxy.socks": CLOSED[0], "network.proxy.socks_port": CLOSED[1], "network.proxy.socks_remote_dns": True,
    "network.proxy.allow_hijacking_localhost": False,  # loopback itself is reached directly
    "network.trr.mode": 5, "network.dns.disablePrefetch": True, "network.prefetch-next": False,
    "network.http.speculative-parallel-limit": 0, "app.update.auto": False, "app.update.enabled": False,
    "browser.safebrowsing.malware.enabled": False, "browser.safebrowsing.phishing.enabled": False,
    "browser.safebrowsing.downloads.enabled": False, "toolkit.telemetry.enabled": False,
    "browser.startup.page": 0, "browser.newtabpage.enabled": False,
}  # fmt: skip


@pytest.fixture()
def firefox(tmp_path: Path) -> Iterator[Any]:
    if not FIREFOX:
        pytest.skip("firefox-esr is not installed (make test installs it)")
    browser = marionette.Marionette(
        bin=FIREFOX, port=0, headless=True, prefs=PREFS, gecko_log=str(tmp_path / "gecko.log"), startup_timeout=60
    )
    browser.start_session()
    browser.set_window_rect(width=1200, height=900)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    try:
        yield browser
    finally:
        browser.cleanup()


def text(browser: Any, selector: str) -> str:
    """The text of the first element ``selector`` finds ("" while there is none: the page redraws as events come)."""
    try:
        found = browser.find_elements("css selector", selector)
        return str(found[0].text) if found else ""
    except MarionetteException:
        return ""


def click(browser: Any, selector: str, what: str) -> None:
    def once() -> bool:
        try:
            found = browser.find_elements("css selector", selector)
            if found:
                found[0].click()
                return True
        except MarionetteException:
            pass
        return False

    wait_until(once, timeout=20, what=what)


def shot(browser: Any, name: str) -> None:
    (ARTIFACTS / f"firefox-{name}.png").write_bytes(browser.screenshot(format="binary"))


def test_the_page_in_firefox(engine: Engine, client: Client, firefox: Any) -> None:
    url = (engine.run_dir / "web.url").read_text().strip()
    name = f"fx-{uuid.uuid4().hex[:8]}"
    cid = client.run_detached(
        ContainerOptions(image="busybox", cmd=["sh", "-c", "trap 'exit 0' TERM; echo from-firefox; sleep 300 & wait"], name=name)
    )
    try:
        firefox.navigate(url)
        row = f"#containers tr[data-name='{name}']"
        wait_until(lambda: text(firefox, f"{row} td.state-running") == "running", timeout=20, what="the running container listed")
        shot(firefox, "containers")

        click(firefox, f"{row} a", "the container's link")
        wait_until(lambda: "from-firefox" in text(firefox, "#logs"), timeout=20, what="its logs")
        click(firefox, "#open-terminal", "the terminal's button")
        screen = "#terminal .xterm-rows"
        wait_until(lambda: "#" in text(firefox, screen), timeout=20, what="the shell's prompt")
        firefox.find_element("css selector", "#terminal .xterm-helper-textarea").send_keys("echo fx-$((6*7))\n")
        wait_until(lambda: "fx-42" in text(firefox, screen), timeout=20, what="the echo's answer")
        shot(firefox, "terminal")

        firefox.navigate(url)
        click(firefox, f"{row} button[data-action='stop']", "the stop button")
        wait_until(lambda: client.inspect(cid).summary.state == 3, timeout=30, what="the container stopped")
        wait_until(lambda: text(firefox, f"{row} td.state-exited") == "exited", timeout=20, what="the page showing it")
        shot(firefox, "stopped")
    finally:
        client.remove(cid, force=True)
