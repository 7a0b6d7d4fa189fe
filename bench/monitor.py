"""The monitor's cost: output fps of the node with an open page against the same run without
``--monitor``. Prints ONE JSON document on stdout (progress on stderr).

The tiny RANDOM model processes every frame (``--no-drop``) on the CPU, so its output fps is what
the machine gives; one run with the monitor and a client doing what the page does (both pictures
at 10 fps, the numbers once a second, plus a /metrics scrape every 5 s) in another process, as a
browser is, one without, alternated
``--repeats`` times so both see the same load on a shared machine. Target: the best run with
the page within 5 % of the best without. Also reported: the medians, and the process's CPU time
per output frame (the monitor's share of the work, much steadier than fps on a shared machine). Random weights: the output is not depth, only speed is
measured.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import statistics
import tempfile
import time

import anyio
import torch

from bench.models import load_tiny_model
from bench.stream import CollectSink, test_pattern
from bench.support.stream_doubles import ArraySource
from pipeline.coalign import OnlineAligner
from pipeline.snippets import SnippetPlan
from stream.stages.display_normalizer import parse_normalize
from stream.model.model_thread import ModelThread
from stream.monitor.endpoint import parse_monitor
from stream.monitor.server import Monitor
from stream.node import NodeConfig, StreamNode
from stream.model.rolling_depth_steps import RollingDepthSteps

TARGET_DROP = 0.05
PLAN = SnippetPlan(3, (1, 25))


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def one_run(tiny, frames, res: int, model_thread: ModelThread, with_page: bool) -> dict:
    port = free_port()
    monitor = Monitor(parse_monitor(str(port), None)) if with_page else None
    steps = RollingDepthSteps(tiny, res, seed=0)
    node = StreamNode(ArraySource(frames), [("collect:", CollectSink())], steps, OnlineAligner.for_plan(PLAN, 2),
                      parse_normalize("running"), NodeConfig(plan=PLAN, lookahead=2, drop_frames=False),
                      report=log, model_thread=model_thread, monitor=monitor,
                      on_stats=monitor.record_stats if monitor else None)
    client = subprocess.Popen([sys.executable, "-m", "bench.support.page_client", str(port)],
                              stdout=subprocess.PIPE, text=True) if monitor else None
    cpu_start = time.process_time()
    result = anyio.run(node.run)
    cpu_s = time.process_time() - cpu_start  # every thread of this process: loop, model, aligner, encoder
    out = {"fps": round(result.frames_out / result.elapsed_s, 2), "frames": result.frames_out,
           "seconds": result.elapsed_s, "cpu_ms_per_frame": round(1000 * cpu_s / result.frames_out, 2)}
    if client:
        client.send_signal(signal.SIGTERM)
        counts = json.loads(client.communicate(timeout=10)[0] or "{}")
        out |= counts | {"previews_encoded": monitor.preview.encoded}
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
    median_drop = 1.0 - statistics.median(r["fps"] for r in with_page) / statistics.median(r["fps"] for r in without)
    # CPU time per frame is far less sensitive than fps to other programs on a shared machine: the
    # monitor's extra CPU per frame over the node's own is the fps it would cost a CPU-bound node.
    cpu_without = round(statistics.median(r["cpu_ms_per_frame"] for r in without), 2)
    cpu_with = round(statistics.median(r["cpu_ms_per_frame"] for r in with_page), 2)
    report |= {"without_monitor": without, "with_open_page": with_page, "best_fps_without": best_without,
               "best_fps_with_page": best_with, "fps_drop": round(drop, 4), "median_fps_drop": round(median_drop, 4),
               "median_cpu_ms_per_frame_without": cpu_without, "median_cpu_ms_per_frame_with_page": cpu_with,
               "cpu_cost_fraction": round(cpu_with / cpu_without - 1.0, 4),
               "target_drop": TARGET_DROP, "meets_target": drop <= TARGET_DROP}
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
