"""The monitor's cost: output fps of the node with an open page against the same run without
``--monitor``. Prints ONE JSON document on stdout (progress on stderr).

The tiny RANDOM model processes every frame (``--no-drop``) on the CPU, so its output fps is what
the machine gives; one run with the monitor and a client doing what the page does (both pictures
at 10 fps, the numbers once a second, plus a /metrics scrape every 5 s), one without, alternated
``--repeats`` times so both see the same load on a shared machine. Target: the best run with
the page within 5 % of the best without. Random weights: the output is not depth, only speed is
measured.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import socket
import sys
import tempfile
import threading
import time

import anyio
import torch

from bench.models import load_tiny_model
from bench.stream import CollectSink, test_pattern
from bench.support.stream_doubles import ArraySource
from pipeline.coalign import OnlineAligner
from pipeline.snippets import SnippetPlan
from stream.display_normalizer import parse_normalize
from stream.model_thread import ModelThread
from stream.monitor.endpoint import parse_monitor
from stream.monitor.server import Monitor
from stream.node import NodeConfig, StreamNode
from stream.rolling_depth_steps import RollingDepthSteps

TARGET_DROP = 0.05
PLAN = SnippetPlan(3, (1, 25))


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class PageClient(threading.Thread):
    """What an open monitor page asks for, on the same schedule, until ``stop``."""

    def __init__(self, port: int, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.port, self.stop = port, stop
        self.requests = 0
        self.pictures = 0

    def run(self) -> None:
        conn = None
        next_stats = next_scrape = 0.0
        first = True
        while not self.stop.is_set():
            try:
                conn = conn or http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                started = time.monotonic()
                for which in ("input", "depth"):
                    if self._get(conn, f"/preview/{which}.jpg") == 200:
                        self.pictures += 1
                if started >= next_stats:
                    self._get(conn, "/live.json?history=1" if first else "/live.json")
                    first, next_stats = False, started + 1.0
                if started >= next_scrape:
                    self._get(conn, "/metrics")
                    next_scrape = started + 5.0
                self.stop.wait(max(0.0, 0.1 - (time.monotonic() - started)))
            except (OSError, http.client.HTTPException):
                conn = None  # not listening yet, or between runs
                self.stop.wait(0.05)

    def _get(self, conn: http.client.HTTPConnection, path: str) -> int:
        conn.request("GET", path)
        reply = conn.getresponse()
        reply.read()
        self.requests += 1
        return reply.status


def one_run(tiny, frames, res: int, model_thread: ModelThread, with_page: bool) -> dict:
    monitor = Monitor(parse_monitor(str(free_port()), None)) if with_page else None
    steps = RollingDepthSteps(tiny, res, seed=0)
    node = StreamNode(ArraySource(frames), [("collect:", CollectSink())], steps, OnlineAligner.for_plan(PLAN, 2),
                      parse_normalize("running"), NodeConfig(plan=PLAN, lookahead=2, drop_frames=False),
                      report=log, model_thread=model_thread, monitor=monitor,
                      on_stats=monitor.record_stats if monitor else None)
    stop = threading.Event()
    client = PageClient(monitor.endpoint.port, stop) if monitor else None
    if client:
        client.start()
    result = anyio.run(node.run, False)
    stop.set()
    if client:
        client.join(5)
    out = {"fps": round(result.frames_out / result.elapsed_s, 2), "frames": result.frames_out,
           "seconds": result.elapsed_s}
    if client:
        out |= {"requests": client.requests, "pictures_served": client.pictures,
                "previews_encoded": monitor.preview.encoded}
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.monitor", description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=90)
    parser.add_argument("--res", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    report = {"machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                          "torch_threads": torch.get_num_threads()},
              "note": "random weights: the output is not depth; only frames per second are measured",
              "frames": args.frames, "res": args.res}
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.setdefault("RDSTREAM_CACHE_DIR", os.path.join(tmp, "cache"))
        model_thread = ModelThread()
        tiny = model_thread.call(load_tiny_model, os.path.join(tmp, "tiny"))
        frames = test_pattern(args.frames, 640, 360)
        one_run(tiny, frames[:12], args.res, model_thread, with_page=False)  # warm-up
        without, with_page = [], []
        for i in range(args.repeats):  # alternated: both see the same load
            without.append(one_run(tiny, frames, args.res, model_thread, with_page=False))
            with_page.append(one_run(tiny, frames, args.res, model_thread, with_page=True))
            log(f"repeat {i + 1}: without {without[-1]['fps']} fps, with a page {with_page[-1]['fps']} fps")
        model_thread.close()
    best_without = max(r["fps"] for r in without)
    best_with = max(r["fps"] for r in with_page)
    drop = 1.0 - best_with / best_without
    report |= {"without_monitor": without, "with_open_page": with_page, "best_fps_without": best_without,
               "best_fps_with_page": best_with, "fps_drop": round(drop, 4), "target_drop": TARGET_DROP,
               "meets_target": drop <= TARGET_DROP}
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
