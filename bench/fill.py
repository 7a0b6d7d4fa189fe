"""``python -m bench.fill``: depth at the camera's rate through the real node (issue 23); prints ONE JSON document.

Rendered scenes with known depth (``bench.support.rendered_scenes``: textured ground, a back wall,
spheres crossing each other, a camera travelling sideways at two speeds) play at 30 fps from memory
into the real ``StreamNode`` with the oracle model (``stream.model.oracle_model.OracleSteps``: the true
inverse depth of each frame, after ``--delay-ms`` on the model thread). The keyframe interval is
set by ``--model-fps`` (30 / interval); snippets of 3 frames at dilation 1, lookahead 0 (the
lowest latency). For intervals 1, 2, 4, 8 and each speed it runs ``--fill flow`` and ``--fill hold``
(and ``--fill drop`` at interval 1: today's output) and reports, over every output frame against
the truth (after one global affine fit, so the fixed display range does not matter):
AbsRel, temporal error, frames in / out, output fps, the keyframe interval it got, capture-to-send
latency and keyframe depth age (p50 / p95, ms). Then each issue-23 target, met true/false.

Defaults take about 1.5 min on a loaded 2-core machine (rendering is half of it); ``--quick`` is a
few seconds (a test runs it).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import anyio
import numpy as np
import torch

from bench.support.rendered_scenes import render_scene
from bench.support.stream_doubles import RecordingSink, make_aligner
from io_adapters.frames import EndOfStream, VideoFrame
from pipeline.depth_metrics import abs_rel, temporal_error
from pipeline.snippets import SnippetPlan
from stream.stages.display_normalizer import FixedRangeNormalizer
from stream.node import NodeConfig, NodeResult, StreamNode
from stream.model.oracle_model import OracleSteps

SOURCE_FPS = 30.0
INTERVALS = (1, 2, 4, 8)
SPEEDS = ("slow", "fast")
WARM_UP_S = 0.5  # steady latencies leave out frames captured this soon after the first output frame


def steady_latency_ms(sink: RecordingSink, warm_up_s: float) -> tuple[float | None, float | None]:
    """Capture-to-send p50 / p95 (ms) of the frames captured ``warm_up_s`` after the first output
    frame: the start (a burst of frames waiting for the first depth) left out."""
    if not sink.frames:
        return None, None
    start = sink.frames[0].received_at + warm_up_s
    values = [(at - f.received_at) * 1000 for f, at in zip(sink.frames, sink.arrived) if f.received_at >= start]
    if not values:
        return None, None
    p50, p95 = np.percentile(values, [50, 95])
    return round(float(p50), 1), round(float(p95), 1)


class PacedFrames:
    """A blocking source of in-memory frames (uint8 [N, H, W, 3]) at ``fps``, on a fixed clock (no drift)."""

    uri = "rendered:"

    def __init__(self, rgb: np.ndarray, fps: float = SOURCE_FPS) -> None:
        self.rgb, self.fps, self.nominal_fps = rgb, fps, fps
        self.sent = 0
        self.started: float | None = None

    def recv(self) -> VideoFrame:
        if self.sent >= len(self.rgb):
            raise EndOfStream()
        if self.started is None:
            self.started = time.perf_counter()
        due = self.started + self.sent / self.fps
        time.sleep(max(0.0, due - time.perf_counter()))
        i = self.sent
        self.sent += 1
        return VideoFrame(index=i, timestamp=i / self.fps, rgb=self.rgb[i])

    def close(self) -> None:
        pass


def run_once(rgb: np.ndarray, truth: np.ndarray, fill: str, interval: int, delay_ms: float) -> tuple[NodeResult, list]:
    """One run of the node; returns its result and the frames the sink got."""
    plan = SnippetPlan(3, (1,))
    config = NodeConfig(plan=plan, lookahead=0, drop_frames=True, fill=fill,
                        model_fps=None if interval == 1 else SOURCE_FPS / interval, idle_fps=None)
    steps = OracleSteps(truth, res=0, delay_s=delay_ms / 1000.0, fit_stride=10)
    sink = RecordingSink()
    near, far = float(truth.max()) * 1.05, 0.0  # a fixed display range: one affine map for the whole run
    node = StreamNode(PacedFrames(rgb), [("memory:", sink)], steps, make_aligner(plan, 0),
                      FixedRangeNormalizer(near=near, far=far), config, report=lambda line: print(line, file=sys.stderr))
    return anyio.run(node.run), sink


def measure(rgb: np.ndarray, truth: np.ndarray, fill: str, interval: int, delay_ms: float) -> dict:
    result, sink = run_once(rgb, truth, fill, interval, delay_ms)
    frames = sink.frames
    steady_p50, steady_p95 = steady_latency_ms(sink, WARM_UP_S)
    out = torch.from_numpy(np.stack([f.depth for f in frames]).astype(np.float32))
    true = torch.from_numpy(np.stack([truth[f.index] for f in frames]))
    fill_info = result.fill or {}
    keyframes = fill_info.get("keyframes", result.step_counts.get("encodes", 0))
    return {
        "abs_rel": round(abs_rel(out, true), 5),
        "temporal_error": round(temporal_error(out, true), 5) if len(frames) > 1 else None,
        "frames_in": result.frames_in,
        "frames_out": result.frames_out,
        "before_first_depth": fill_info.get("before_first_depth"),
        # from the first output frame on (the start, before any depth, is not the output's rate)
        "output_fps": round((len(frames) - 1) / (sink.arrived[-1] - sink.arrived[0]), 2) if len(frames) > 2 else None,
        "keyframe_interval": round(result.frames_in / keyframes, 2) if keyframes else None,
        "capture_to_send_p50_ms": result.latency_p50_ms,
        "capture_to_send_p95_ms": result.latency_p95_ms,
        "steady_capture_to_send_p50_ms": steady_p50,
        "steady_capture_to_send_p95_ms": steady_p95,
        "fill_ms_per_frame": round(1000 * result.stages["fill"]["busy_s"] / max(1, result.stages["fill"]["in"]), 1)
        if "fill" in result.stages else None,
        "depth_age_p50_ms": fill_info.get("depth_age_p50_ms"),
        "depth_age_p95_ms": fill_info.get("depth_age_p95_ms"),
    }


def targets(results: dict) -> dict:
    """Issue 23's targets from the runs (interval 4 is the model at a quarter of the camera's rate)."""
    out = {}
    for speed, runs in results.items():
        flow4, hold4 = runs.get("flow@4"), runs.get("hold@4")
        if flow4 and hold4:
            out[f"{speed}: frames out = frames in after the first depth (interval 4)"] = (
                flow4["frames_out"] == flow4["frames_in"] - flow4["before_first_depth"])
            out[f"{speed}: AbsRel flow <= 0.5 x hold (interval 4)"] = flow4["abs_rel"] <= 0.5 * hold4["abs_rel"]
            out[f"{speed}: temporal error flow <= 0.5 x hold (interval 4)"] = (
                flow4["temporal_error"] <= 0.5 * hold4["temporal_error"])
        flow1, drop1 = runs.get("flow@1"), runs.get("drop@1")
        if flow1 and drop1:
            out[f"{speed}: AbsRel at interval 1 within 1e-3 of today's (--fill drop)"] = (
                abs(flow1["abs_rel"] - drop1["abs_rel"]) <= 1e-3)
        p50s = [run["steady_capture_to_send_p50_ms"] for key, run in runs.items() if key.startswith("flow@")]
        out[f"{speed}: capture-to-send p50 after the warm-up <= one source frame ({1000 / SOURCE_FPS:.1f} ms), "
            "every flow run"] = all(p is not None and p <= 1000 / SOURCE_FPS for p in p50s)
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=40, help="frames per run (default 40: 1.3 s at 30 fps)")
    parser.add_argument("--size", default="384x216", help="rendered size WxH (default 384x216, the live preset's)")
    parser.add_argument("--delay-ms", type=float, default=5.0, help="the oracle's time per model call (default 5)")
    parser.add_argument("--texture", default="heavy", choices=("smooth", "heavy"))
    parser.add_argument("--quick", action="store_true", help="a few seconds: 12 frames at 128x72, slow, intervals 1 and 4")
    args = parser.parse_args(argv)
    width, height = (int(v) for v in args.size.lower().split("x"))
    speeds, intervals, frames = SPEEDS, INTERVALS, args.frames
    if args.quick:
        speeds, intervals, frames, width, height = ("slow",), (1, 4), 12, 128, 72
    torch.set_num_threads(1)
    started = time.perf_counter()
    results: dict = {}
    for speed in speeds:
        print(f"bench.fill: rendering {frames} frames ({speed})...", file=sys.stderr)
        scene = render_scene(frames, (width, height), args.texture, speed)
        runs = {}
        for interval in intervals:
            modes = ("flow", "hold", "drop") if interval == 1 else ("flow", "hold")
            for fill in modes:
                runs[f"{fill}@{interval}"] = measure(scene.rgb, scene.inverse_depth, fill, interval, args.delay_ms)
                print(f"bench.fill: {speed} {fill}@{interval}: {runs[f'{fill}@{interval}']}", file=sys.stderr)
        results[speed] = runs
    document = {
        "benchmark": "bench.fill",
        "source_fps": SOURCE_FPS,
        "size": f"{width}x{height}",
        "texture": args.texture,
        "oracle_delay_ms": args.delay_ms,
        "plan": "snippets of 3 at dilation 1, lookahead 0; keyframe interval set by --model-fps",
        "runs": results,
        "targets_met": targets(results),
        "seconds": round(time.perf_counter() - started, 1),
    }
    print(json.dumps(document, indent=1))
    return document


if __name__ == "__main__":
    main()
