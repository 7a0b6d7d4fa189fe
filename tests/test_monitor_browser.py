"""The monitor page in a real browser: headless Chromium (Debian's chromium + chromium-driver) driven
by selenium, against a real ``rdstream run --monitor`` process on 127.0.0.1.

Tiny RANDOM checkpoint: its depth is meaningless; the test checks that the page shows live
pictures and numbers, and that a fixed range and a pause pressed on the page reach the stream.
RDSTREAM_SCREENSHOT=docs/monitor.png writes the page's screenshot there (as the README's was made).
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None or DRIVER is None,
    reason="needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver; .ci/run does)")
RATE = 6
NEAR, FAR = 1000.0, -1000.0  # so wide that every pixel maps to ~0.5: visible in the written depth


def start_node(tiny_checkpoint: Path, work: Path):
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    command = [sys.executable, "-m", "stream.cli", "run", "--source",
               f"test:?frames={RATE * 120}&size=320x180&rate={RATE}", "--realtime", "--sink", "npy:depth.npy",
               "-c", str(tiny_checkpoint), "--res", "96", "-d", "1", "-d", "5", "--no-status", "--monitor", str(port)]
    process = subprocess.Popen(command, cwd=work, env={**os.environ, "PYTHONPATH": str(ROOT)},
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seen = []
    while True:
        line = process.stderr.readline()
        if not line:
            raise AssertionError("the run ended before its monitor listened:\n" + "".join(seen))
        seen.append(line)
        found = re.search(r"monitor page: (http://127\.0\.0\.1:\d+/#token=\S+) ", line)
        if found:
            threading.Thread(target=lambda: seen.extend(process.stderr), daemon=True).start()
            return process, found.group(1), seen


def browser(user_data: Path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", f"--user-data-dir={user_data}", "--window-size=1400,1100"):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(DRIVER), options=options)


def wait_until(driver, script: str, timeout: float = 30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = driver.execute_script(script)
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"not true within {timeout} s: {script}")


def test_the_page_shows_the_stream_live_and_its_controls_reach_the_stream(tiny_checkpoint, tmp_path):
    work = tmp_path / "run"
    work.mkdir()
    process, url, stderr = start_node(tiny_checkpoint, work)
    driver = None
    try:
        driver = browser(tmp_path / "chromium-profile")
        driver.get(url)
        assert driver.title == "rdstream monitor"
        # The previews change: two different source frames shown one after the other.
        first = wait_until(driver, "return document.getElementById('preview-img').dataset.frame")
        wait_until(driver, f"const f = document.getElementById('preview-img').dataset.frame; return f && f !== '{first}'")
        # input | depth side by side, each at the processing size (--res 96: 96 px wide)
        width, height = driver.execute_script("const i = document.getElementById('preview-img'); "
                                              "return [i.naturalWidth, i.naturalHeight]")
        assert width == 2 * 96 and 0 < height < 96
        # The charts receive points (one per second from the node).
        wait_until(driver, "return rdMonitor.charts.fps && rdMonitor.charts.fps.data[0].length >= 3", 40)
        assert driver.execute_script("return rdMonitor.charts.latency.data[1].filter(v => v > 0).length") >= 1
        assert "rdstream run: test:" in driver.find_element("id", "settings").text
        # Everything the page loaded came from the node itself.
        assert driver.execute_script("return performance.getEntriesByType('resource')"
                                     ".every(e => e.name.startsWith(location.origin + '/'))")

        # A fixed range, then a pause, pressed on the page; each acknowledged with its first frame.
        driver.find_element("css selector", "#norm-mode option[value=fixed]").click()
        for name, value in (("near", NEAR), ("far", FAR)):
            field = driver.find_element("id", name)
            field.clear()
            field.send_keys(str(value))
        driver.find_element("id", "apply-norm").click()
        fixed_text = wait_until(driver, "const t = document.getElementById('ack-list').innerText; "
                                        "return t.includes('normalize/fixed') && t")
        fixed_from = int(re.search(r"normalize/fixed 1000 -1000: from frame (\d+)", fixed_text).group(1))
        time.sleep(2)  # a dozen frames with the fixed range
        driver.find_element("id", "pause").click()
        pause_text = wait_until(driver, "const t = document.getElementById('ack-list').innerText; "
                                        "return t.includes('pause true') && t")
        paused_from = int(re.search(r"pause true: from frame (\d+)", pause_text).group(1))
        wait_until(driver, "return document.getElementById('headline').innerText.includes('PAUSED')", 10)
        time.sleep(2)
        shot = Path(os.environ.get("RDSTREAM_SCREENSHOT") or tmp_path / "monitor.png")
        assert driver.save_screenshot(str(shot)) and shot.stat().st_size > 10_000

        # Stop from the page (its confirm dialog accepted, as a person would).
        driver.find_element("id", "stop").click()
        driver.switch_to.alert.accept()
        assert process.wait(60) == 0, "".join(stderr)
    finally:
        if driver is not None:
            driver.quit()
        if process.poll() is None:
            process.kill()
            process.wait()

    depth = np.load(work / "depth.npy")
    indices = np.round(np.load(work / "depth.timestamps.npy") * RATE).astype(int)
    position = {int(index): k for k, index in enumerate(indices)}
    before = depth[[k for k, i in enumerate(indices) if i < fixed_from]]
    fixed = depth[position[fixed_from]:position[paused_from]]
    held = depth[position[paused_from]:]
    assert before.max() - before.min() > 0.5  # the running range spreads the picture over [0, 1]
    assert len(fixed) >= 3 and np.abs(fixed - 0.5).max() < 0.01  # NEAR..FAR so wide: all ~0.5
    assert len(held) >= 3 and all(np.array_equal(frame, held[0]) for frame in held)
    assert np.array_equal(held[0], depth[position[paused_from] - 1])  # the picture held is the last before
