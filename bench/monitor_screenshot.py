"""The README's picture of the monitor page, made from the page as it is now, so it cannot go stale:

    python -m bench.monitor_screenshot docs/monitor.png

Runs ``rdstream run --monitor`` on a test pattern with the tiny RANDOM test checkpoint (its depth is
not depth, and the picture carries the NOT-DEPTH band that says so), opens the page in headless
Chromium (chromium and chromium-driver; ``apt-get install chromium chromium-driver``), waits until
the charts hold ``--seconds`` of samples, and saves the window as PNG. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from bench.support.monitor_page import CHROMIUM, DRIVER, MISSING_BROWSER, browser, start_node, stop_node, wait_until


def make_screenshot(target: Path, seconds: int = 20) -> dict:
    from pipeline.tiny_checkpoint import write_tiny_checkpoint

    with tempfile.TemporaryDirectory(prefix="rdstream-screenshot-") as tmp:
        work = Path(tmp)
        checkpoint = write_tiny_checkpoint(work / "ckpt")
        process, url, _ = start_node(checkpoint, work)
        driver = None
        try:
            driver = browser(work / "chromium-profile")
            driver.get(url)
            wait_until(driver, "return document.getElementById('preview-img').dataset.frame", 60)
            wait_until(driver, f"return rdMonitor.charts.fps && rdMonitor.charts.fps.data[0].length >= {seconds}",
                       seconds + 60)
            time.sleep(0.5)  # the newest picture drawn
            target.parent.mkdir(parents=True, exist_ok=True)
            if not driver.save_screenshot(str(target)):
                raise RuntimeError(f"the browser could not save {target}")
        finally:
            if driver is not None:
                driver.quit()
            stop_node(process)
    return {"screenshot": str(target), "bytes": target.stat().st_size, "samples": seconds}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("target", type=Path, help="where to write the PNG, e.g. docs/monitor.png")
    parser.add_argument("--seconds", type=int, default=20, help="seconds of samples on the charts (default 20)")
    args = parser.parse_args(argv)
    if CHROMIUM is None or DRIVER is None:
        print(f"bench.monitor_screenshot: {MISSING_BROWSER}", file=sys.stderr)
        return 2
    if args.seconds < 1:
        print("bench.monitor_screenshot: --seconds must be 1 or more", file=sys.stderr)
        return 2
    print(json.dumps(make_screenshot(args.target, args.seconds)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
