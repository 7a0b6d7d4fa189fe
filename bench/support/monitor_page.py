"""The monitor page in a real browser: a real ``rdstream run --monitor`` process on 127.0.0.1 and
headless Chromium (Debian's ``chromium`` and ``chromium-driver``) driven by selenium. Used by
tests/stream/monitor/test_static_page.py and by ``python -m bench.monitor_screenshot`` (the README's picture),
so the picture is always of the page as it is now."""

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

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
MISSING_BROWSER = "needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver; .ci/run does)"
WINDOW = (1400, 1100)


def free_tcp_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_node(checkpoint: Path, work: Path, *, rate: int = 6, seconds: int = 120, res: int = 96,
               extra: tuple[str, ...] = ()) -> tuple[subprocess.Popen, str, list[str]]:
    """``rdstream run`` of a 320x180 test pattern at ``rate`` fps with the monitor on a free port;
    returns (process, the page's address with its token, the stderr lines so far and to come)."""
    command = [sys.executable, "-m", "stream.cli", "run", "--source",
               f"test:?frames={rate * seconds}&size=320x180&rate={rate}", "--realtime", "--sink", "npy:depth.npy",
               "-c", str(checkpoint), "--res", str(res), "-d", "1", "-d", "5", "--no-status",
               "--monitor", str(free_tcp_port()), *extra]
    process = subprocess.Popen(command, cwd=work, env={**os.environ, "PYTHONPATH": str(ROOT)},
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seen: list[str] = []
    while True:
        line = process.stderr.readline()
        if not line:
            raise RuntimeError("the run ended before its monitor listened:\n" + "".join(seen))
        seen.append(line)
        found = re.search(r"monitor page: (http://127\.0\.0\.1:\d+/#token=\S+) ", line)
        if found:
            threading.Thread(target=lambda: seen.extend(process.stderr), daemon=True).start()
            return process, found.group(1), seen


def browser(user_data: Path):
    """Headless Chromium through selenium, with its own profile folder and nothing from outside."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", f"--user-data-dir={user_data}", f"--window-size={WINDOW[0]},{WINDOW[1]}"):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(DRIVER), options=options)


def wait_until(driver, script: str, timeout: float = 30):
    """Run ``script`` in the page until it returns something true; that value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = driver.execute_script(script)
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"not true within {timeout} s: {script}")


def stop_node(process: subprocess.Popen, timeout: float = 60) -> int:
    """SIGTERM (a clean stop: files closed), then its exit code; killed if it does not end in time."""
    if process.poll() is None:
        process.terminate()
    try:
        return process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait()
