"""The web page end to end in a real headless Chromium (Debian's, through chromedriver and Selenium):
it lists a running container, shows a log line written after it opened, runs `echo` in its terminal,
and stops it. A screenshot of each page is kept (tests/artifacts/web)."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import REPO, Engine
from teu.client import Client, ContainerOptions
from teu.testing import wait_until

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is a test dependency (requirements-dev.txt)")
from selenium.common.exceptions import StaleElementReferenceException  # noqa: E402
from selenium.webdriver.chrome.options import Options  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402

ARTIFACTS = REPO / "tests" / "artifacts" / "web"
CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")


@pytest.fixture()
def browser(tmp_path: Path) -> Iterator[webdriver.Chrome]:
    if not (CHROMIUM and DRIVER):
        pytest.skip("chromium and chromedriver are not installed (make test installs them: chromium chromium-driver)")
    options = Options()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1200,900", f"--user-data-dir={tmp_path / 'profile'}",
                "--disable-dev-shm-usage", "--no-first-run", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--disable-default-apps", "--disable-extensions", "--no-pings", "--disable-domain-reliability",
                # the browser reaches this machine only: no name resolves, and anything but loopback goes to a closed port
                "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1", "--proxy-server=http://127.0.0.1:9"):  # fmt: skip
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path=DRIVER), options=options)
    driver.implicitly_wait(0)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    try:
        yield driver
    finally:
        driver.quit()


def text(browser: webdriver.Chrome, selector: str) -> str:
    """The text of the first element ``selector`` finds ("" while there is none: the page redraws as events come)."""
    try:
        found = browser.find_elements(By.CSS_SELECTOR, selector)
        return found[0].text if found else ""
    except StaleElementReferenceException:
        return ""


def seen(browser: webdriver.Chrome, selector: str) -> bool:
    try:
        return bool(browser.find_elements(By.CSS_SELECTOR, selector))
    except StaleElementReferenceException:
        return False


def click(browser: webdriver.Chrome, selector: str, what: str) -> None:
    """Clicks ``selector`` once it is there (the list is redrawn on each event: an element may go stale)."""

    def once() -> bool:
        try:
            found = browser.find_elements(By.CSS_SELECTOR, selector)
            if found:
                found[0].click()
                return True
        except StaleElementReferenceException:
            pass
        return False

    wait_until(once, timeout=20, what=what)


def test_the_page_lists_stops_and_follows_logs(engine: Engine, client: Client, browser: webdriver.Chrome) -> None:
    url = (engine.run_dir / "web.url").read_text().strip()
    name = f"page-{uuid.uuid4().hex[:8]}"
    script = "trap 'exit 0' TERM; echo first-line; while [ ! -f /tmp/go ]; do sleep 0.2; done; echo after-open; sleep 300 & wait"
    cid = client.run_detached(ContainerOptions(image="busybox", cmd=["sh", "-c", script], name=name))
    try:
        browser.get(url)
        row = f"#containers tr[data-name='{name}']"
        wait_until(lambda: seen(browser, f"{row} td.state-running"), timeout=20, what="the running container listed")
        wait_until(lambda: seen(browser, f"{row} td.cpu svg.spark"), timeout=20, what="its CPU sparkline")
        points = f"return document.querySelector(\"{row} td.mem polyline\").getAttribute('points').split(' ').length"
        wait_until(lambda: browser.execute_script(points) >= 3, timeout=20, what="three readings drawn")
        assert "MiB" in text(browser, f"{row} td.mem") or "KiB" in text(browser, f"{row} td.mem")
        browser.save_screenshot(str(ARTIFACTS / "containers.png"))

        click(browser, f"{row} a", "the container's link")
        wait_until(lambda: "first-line" in text(browser, "#logs"), timeout=20, what="the log so far")
        client.exec_run(cid, ["touch", "/tmp/go"])  # the container writes a line only now
        wait_until(lambda: "after-open" in text(browser, "#logs"), timeout=20, what="the new line, live")
        assert "sleep" in text(browser, "#details") and name not in text(browser, "#error")
        wait_until(lambda: "sleep" in text(browser, "#processes"), timeout=20, what="its processes")
        click(browser, "#refresh-diff", "the changes' refresh")
        wait_until(lambda: "A /tmp/go" in text(browser, "#changes"), timeout=20, what="the file it made, in its changes")
        browser.find_element(By.CSS_SELECTOR, "#logs-grep").send_keys("after")  # searched by the logs service
        wait_until(lambda: text(browser, "#logs") == "after-open", timeout=20, what="only the lines found")
        browser.save_screenshot(str(ARTIFACTS / "container.png"))

        click(browser, "#open-terminal", "the terminal's button")  # a shell on a terminal, drawn by xterm.js
        screen = "#terminal .xterm-rows"
        wait_until(lambda: "#" in text(browser, screen), timeout=20, what="the shell's prompt")
        browser.find_element(By.CSS_SELECTOR, "#terminal .xterm-helper-textarea").send_keys("echo hi-$((40+2)); tty\n")
        wait_until(lambda: "hi-42" in text(browser, screen), timeout=20, what="the echo's answer")
        assert "/dev/pts/" in text(browser, screen)  # a real terminal
        browser.set_window_size(700, 900)  # the terminal follows the window: the shell is told its new size
        cols = browser.execute_script("return Math.floor(document.getElementById('terminal').clientWidth / 9)")
        size = "return document.getElementById('terminal').dataset.size"
        wait_until(lambda: browser.execute_script(size) == f"24x{cols}", timeout=20, what="the terminal redrawn")
        browser.find_element(By.CSS_SELECTOR, "#terminal .xterm-helper-textarea").send_keys("clear; stty size\n")
        wait_until(lambda: f"24 {cols}" in text(browser, screen), timeout=20, what=f"the new size (24 {cols}) in the shell")
        browser.set_window_size(1200, 900)
        browser.save_screenshot(str(ARTIFACTS / "terminal.png"))

        browser.get(url)
        click(browser, f"{row} button[data-action='stop']", "the stop button")
        wait_until(lambda: client.inspect(cid).summary.state == 3, timeout=30, what="the container stopped")
        wait_until(lambda: seen(browser, f"{row} td.state-exited"), timeout=20, what="the page showing it")
        browser.save_screenshot(str(ARTIFACTS / "stopped.png"))

        browser.get(url)  # the run form
        ran = f"form-{uuid.uuid4().hex[:8]}"
        click(browser, "details summary", "the run form")
        fields = (("image", "busybox"), ("name", ran), ("cmd", "sh -c 'echo from-form; sleep 300'"), ("env", "A=1, B=2"))
        for field, value in fields:
            browser.find_element(By.CSS_SELECTOR, f"#run-form input[name='{field}']").send_keys(value)
        click(browser, "#run-form button[type='submit']", "the run button")
        wait_until(
            lambda: seen(browser, f"#containers tr[data-name='{ran}'] td.state-running"), timeout=30, what="the form's container"
        )
        made = client.inspect(ran)
        assert list(made.config.cmd) == ["sh", "-c", "echo from-form; sleep 300"] and {"A=1", "B=2"} <= set(made.config.env)
        client.remove(ran, force=True)

        browser.get(url + "#/images")
        wait_until(lambda: "busybox:latest" in text(browser, "#view"), timeout=20, what="the images page")
        browser.save_screenshot(str(ARTIFACTS / "images.png"))

        browser.set_window_size(390, 844)  # a phone's width: the table keeps its name, state and actions
        browser.get(url)
        wait_until(lambda: seen(browser, f"{row} button[data-action='start']"), timeout=20, what="the phone view")
        assert browser.execute_script("return document.documentElement.scrollWidth <= window.innerWidth + 1")
        browser.save_screenshot(str(ARTIFACTS / "phone.png"))
    finally:
        client.remove(cid, force=True)


def test_the_image_volume_network_and_event_pages(engine: Engine, client: Client, browser: webdriver.Chrome) -> None:
    url = (engine.run_dir / "web.url").read_text().strip()
    browser.get(url + "#/events")
    wait_until(lambda: seen(browser, "#events"), timeout=20, what="the events page")
    volume = f"pagevol-{uuid.uuid4().hex[:8]}"
    client.create_volume(volume)
    wait_until(lambda: f"volume create {volume}" in text(browser, "#events"), timeout=20, what="the event, live")
    browser.save_screenshot(str(ARTIFACTS / "events.png"))

    browser.get(url + "#/volumes")
    wait_until(lambda: seen(browser, f"#volumes tr[data-name='{volume}']"), timeout=20, what="the volume listed")
    made = f"pagevol-{uuid.uuid4().hex[:8]}"
    browser.find_element(By.CSS_SELECTOR, "#volume-form input[name='name']").send_keys(made + "\n")
    wait_until(lambda: seen(browser, f"#volumes tr[data-name='{made}']"), timeout=20, what="the form's volume")
    browser.save_screenshot(str(ARTIFACTS / "volumes.png"))
    click(browser, f"#volumes tr[data-name='{made}'] button[data-action='remove']", "its remove button")
    wait_until(lambda: not seen(browser, f"#volumes tr[data-name='{made}']"), timeout=20, what="the volume gone")
    assert made not in [v.name for v in client.list_volumes()]
    client.remove_volume(volume)

    browser.get(url + "#/networks")
    net = f"pn-{uuid.uuid4().hex[:6]}"
    wait_until(lambda: seen(browser, "#network-form"), timeout=20, what="the networks page")
    browser.find_element(By.CSS_SELECTOR, "#network-form input[name='name']").send_keys(net + "\n")
    wait_until(lambda: seen(browser, f"#networks tr[data-name='{net}']"), timeout=20, what="the form's network")
    browser.save_screenshot(str(ARTIFACTS / "networks.png"))
    click(browser, f"#networks tr[data-name='{net}'] button[data-action='remove']", "its remove button")
    wait_until(lambda: not seen(browser, f"#networks tr[data-name='{net}']"), timeout=20, what="the network gone")

    image_id = client.inspect_image("busybox").id
    browser.get(url + "#/images")
    click(browser, f"#images tr[data-id='{image_id}'] a", "the image's link")
    wait_until(lambda: "busybox:latest" in text(browser, "#image-details"), timeout=20, what="the image's page")
    assert seen(browser, "#history tbody tr")
    browser.find_element(By.CSS_SELECTOR, "#tag-form input[name='target']").send_keys("page-tag:1\n")
    wait_until(lambda: "page-tag:1" in text(browser, "#image-details"), timeout=20, what="the new tag shown")
    assert client.inspect_image("page-tag:1").id == image_id
    browser.save_screenshot(str(ARTIFACTS / "image.png"))
    client.remove_image("page-tag:1")

    browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": [{"name": "prefers-color-scheme", "value": "dark"}]})
    browser.get(url)
    wait_until(lambda: seen(browser, "#containers"), timeout=20, what="the page in a dark theme")
    background = browser.execute_script("return getComputedStyle(document.body).backgroundColor")
    assert background == "rgb(13, 17, 23)", background
    browser.save_screenshot(str(ARTIFACTS / "dark.png"))
