"""The monitor page in a real browser: headless Chromium (Debian's chromium + chromium-driver) driven
by selenium, against a real ``rdstream run --monitor`` process on 127.0.0.1 (bench.support.monitor_page).

Tiny RANDOM checkpoint: its depth is meaningless; the test checks that the page shows live
pictures and numbers, that a fixed range and a pause pressed on the page reach the stream, that a
refused command is shown with its reason, that the badge says PAUSED, that a page opened later
shows the controls as they are in force, and that a stop from the page says who stopped the run.
The README's picture is made by ``python -m bench.monitor_screenshot docs/monitor.png``.
"""

from __future__ import annotations

import re
import time

import numpy as np
import pytest

from bench.support.monitor_page import CHROMIUM, DRIVER, MISSING_BROWSER, browser, start_node, stop_node, wait_until

pytestmark = pytest.mark.skipif(CHROMIUM is None or DRIVER is None, reason=MISSING_BROWSER)
RATE = 6
NEAR, FAR = 1000.0, -1000.0  # so wide that every pixel maps to ~0.5: visible in the written depth
FORM = ("return {mode: document.getElementById('norm-mode').value, near: document.getElementById('near').value, "
        "far: document.getElementById('far').value, cmap: document.getElementById('cmap').value, "
        "paused: document.getElementById('pause').getAttribute('aria-pressed'), "
        "badge: document.getElementById('connection').innerText}")


def select(driver, element_id: str, text: str) -> None:
    """Choose an option by its text, as a person does."""
    from selenium.webdriver.support.ui import Select

    Select(driver.find_element("id", element_id)).select_by_visible_text(text)


def apply_range(driver, near, far) -> None:
    select(driver, "norm-mode", "fixed")
    for name, value in (("near", near), ("far", far)):
        field = driver.find_element("id", name)
        field.clear()
        field.send_keys(str(value))
    driver.find_element("id", "apply-norm").click()


def test_the_page_shows_the_stream_live_and_its_controls_reach_the_stream(tiny_checkpoint, tmp_path):
    work = tmp_path / "run"
    work.mkdir()
    process, url, stderr = start_node(tiny_checkpoint, work, rate=RATE)
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
        # The charts receive points (one per second from the node); legends name series, no "--".
        wait_until(driver, "return rdMonitor.charts.fps && rdMonitor.charts.fps.data[0].length >= 3", 40)
        assert driver.execute_script("return rdMonitor.charts.latency.data[1].filter(v => v > 0).length") >= 1
        assert "--" not in driver.find_element("css selector", ".charts").text
        assert driver.execute_script("return rdMonitor.charts.busy.data.slice(1).flat().every(v => v === null || v <= 100)")
        assert "rdstream run: test:" in driver.find_element("id", "settings").text
        # Everything the page loaded came from the node itself.
        assert driver.execute_script("return performance.getEntriesByType('resource')"
                                     ".every(e => e.name.startsWith(location.origin + '/'))")
        # LIVE, and the near/far fields start from the range in force (not 1 / -1).
        form = wait_until(driver, "return rdMonitor.now && rdMonitor.now.near !== null && "
                                  "Object.assign(" + FORM[7:] + ", {now: rdMonitor.now})")
        assert form["badge"] == "LIVE" and form["mode"] == "running" and form["paused"] == "false"
        for end in ("near", "far"):  # three significant digits of the range in force
            assert float(form[end]) == pytest.approx(form["now"][end], rel=5e-3), form

        # A refused command is shown with its reason.
        apply_range(driver, -1, 1)
        refused = wait_until(driver, "const r = document.getElementById('control-reply'); "
                                     "return r.className.includes('refused') && r.innerText")
        assert refused.startswith("refused: normalize/fixed: NEAR must be larger than FAR"), refused

        # A fixed range, a colour map, then a pause, pressed on the page; each acknowledged.
        apply_range(driver, NEAR, FAR)
        fixed_text = wait_until(driver, "const t = document.getElementById('ack-list').innerText; "
                                        "return t.includes('normalize/fixed') && t")
        fixed_from = int(re.search(r"normalize/fixed 1000 -1000: from frame (\d+)", fixed_text).group(1))
        select(driver, "cmap", "Greys_r")
        driver.find_element("id", "apply-cmap").click()
        wait_until(driver, "return document.getElementById('ack-list').innerText.includes('cmap Greys_r')")
        time.sleep(1)  # frames with the fixed range
        driver.find_element("id", "pause").click()
        pause_text = wait_until(driver, "const t = document.getElementById('ack-list').innerText; "
                                        "return t.includes('pause true') && t")
        paused_from = int(re.search(r"pause true: from frame (\d+)", pause_text).group(1))
        assert wait_until(driver, "const b = document.getElementById('connection'); "
                                  "return b.className.includes('paused') && b.innerText", 10).startswith("PAUSED")

        # A page opened now shows the controls as they are in force.
        driver.get("about:blank")
        driver.get(url)
        form = wait_until(driver, "return rdMonitor.now && (" + FORM[7:] + ")")
        assert {k: form[k] for k in ("mode", "near", "far", "cmap", "paused")} == {
            "mode": "fixed", "near": "1000", "far": "-1000", "cmap": "Greys_r", "paused": "true"}, form
        assert form["badge"].startswith("PAUSED"), form
        time.sleep(1)

        # Stop from the page (its confirm dialog accepted, as a person would): it says who stopped it.
        driver.find_element("id", "stop").click()
        driver.switch_to.alert.accept()
        badge = wait_until(driver, "const t = document.getElementById('connection').innerText; "
                                   "return /^(STOPPING|ENDED)/.test(t) && t", 30)
        assert "monitor page from 127.0.0.1" in badge
        assert process.wait(60) == 0, "".join(stderr)
    finally:
        if driver is not None:
            driver.quit()
        stop_node(process)
    assert "interrupted: stopped by monitor page from 127.0.0.1;" in "".join(stderr)

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
