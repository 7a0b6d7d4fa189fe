"""``python -m bench.support.page_client PORT``: what an open monitor page asks for, from its own
process as a browser would be: the picture at the node's output rate (at most 10 a second), the
numbers once a second, a /metrics scrape every 5 s. Runs until SIGTERM, then prints one JSON line of counts. Standard library only,
so it starts in milliseconds and does not load what the node loads.
"""

from __future__ import annotations

import http.client
import json
import signal
import sys
import threading
import time

PICTURE_INTERVAL_S = 0.1
STATS_INTERVAL_S = 1.0
SCRAPE_INTERVAL_S = 5.0


def get(conn: http.client.HTTPConnection, path: str) -> tuple[int, bytes]:
    conn.request("GET", path)
    reply = conn.getresponse()
    return reply.status, reply.read()


def be_the_page(port: int, stop: threading.Event) -> dict:
    counts = {"requests": 0, "pictures_served": 0}
    conn = None
    next_stats = next_scrape = 0.0
    first = True
    interval = PICTURE_INTERVAL_S
    while not stop.is_set():
        try:
            conn = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            started = time.monotonic()
            counts["requests"] += 1
            counts["pictures_served"] += get(conn, "/preview.jpg")[0] == 200
            if started >= next_stats:
                counts["requests"] += 1
                status, body = get(conn, "/live.json?history=1" if first else "/live.json")
                stats = json.loads(body).get("stats") if status == 200 else None
                if stats and stats["output_fps"] > 0:  # as the page: no faster than frames come
                    interval = max(PICTURE_INTERVAL_S, 1.0 / stats["output_fps"])
                first, next_stats = False, started + STATS_INTERVAL_S
            if started >= next_scrape:
                counts["requests"] += 1
                get(conn, "/metrics")
                next_scrape = started + SCRAPE_INTERVAL_S
            stop.wait(max(0.0, interval - (time.monotonic() - started)))
        except (OSError, http.client.HTTPException):
            conn = None  # not listening yet
            stop.wait(0.05)
    return counts


def main() -> int:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print(json.dumps(be_the_page(int(sys.argv[1]), stop)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
