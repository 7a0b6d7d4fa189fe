"""The maths of ``--fill flow`` on rendered scenes with known depth; prints JSON to stdout.

    python -m bench.fill_maths            # the full run (about a minute on the 2-core build machine)
    python -m bench.fill_maths --quick    # small sizes and few frames (tests)

No model and no node: the TRUE depth of every ``interval``-th frame is the keyframe depth, and the
frames between get it carried by optical flow (``pipeline.flow_carry.DepthCarrier``) or repeated
(``hold``). That isolates what filling itself costs in accuracy. ``python -m bench.fill`` measures the
same through the live node.

Reported (``bench.support.rendered_scenes``: two texture levels, two camera speeds):
- ``carry``: AbsRel and temporal error of every frame (after one affine fit, as every benchmark
  here) for ``flow``, ``flow`` with the forward-backward occlusion hold, and ``hold``, at keyframe
  intervals 1, 2, 4, 8, and the ratios to ``hold``;
- ``presets_at_interval_4``: flow's ratios to hold for each DIS preset (how the default was chosen);
- ``timing``: flow (one DIS flow) and flow + warp (a whole ``push_frame`` with depth to carry) in ms
  per frame, median, at 384x216 and 640x360, on one CPU core (OpenCV and torch at one thread); CPU
  time is the figure judged (wall time on the shared machine includes waits for a core);
- ``upsample``: 384x216 -> 1280x720, ms per frame for bilinear (OpenCV, and torch on the CPU) and the
  fast guided filter (two guides), and AbsRel within 3 px of true depth edges and inside surfaces;
- ``targets_met``: issue 23's targets that this benchmark can judge.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import cv2
import numpy as np
import torch

from bench.support.fill_metrics import carry_truth, edge_band, region_abs_rel, sequence_errors
from bench.support.guided_upsample import fast_guided_upsample
from bench.support.machine import load_average, print_report
from bench.support.rendered_scenes import TEXTURES, render_frame, render_scene
from pipeline.flow_carry import DepthCarrier
from pipeline.optical_flow import DEFAULT_PRESET, FLOW_PRESETS, create_flow
from pipeline.upsample import upsample_depth

INTERVALS = (1, 2, 4, 8)
SPEEDS = ("slow", "fast")
TARGET_INTERVAL = 4  # the case: the model at a quarter of the camera's rate
STARTED = time.perf_counter()


def progress(message: str) -> None:
    """One line on stderr per step; stdout carries only the JSON."""
    print(f"bench.fill_maths [{time.perf_counter() - STARTED:5.0f} s] {message}", file=sys.stderr, flush=True)


def _rounded(errors: dict) -> dict:
    return {key: round(value, 5) for key, value in errors.items()}


def _ratios(errors: dict, hold: dict) -> dict:
    return {f"{key}_vs_hold": round(errors[key] / hold[key], 3) if hold[key] > 0 else None for key in errors}


def carry_report(frames: int, size: tuple[int, int], textures, check_presets: bool) -> dict:
    """Flow, flow with the occlusion hold, and hold, for every scene and interval."""
    scenes = {}
    for texture in textures:
        for speed in SPEEDS:
            name = f"{texture}_{speed}"
            progress(f"carry: rendering {name}, {frames} frames at {size[0]}x{size[1]}")
            scene = render_scene(frames, size, texture, speed)
            report = {}
            for interval in INTERVALS:
                hold = sequence_errors(carry_truth(scene.rgb, scene.inverse_depth, interval, "hold"), scene.inverse_depth)
                flow = sequence_errors(carry_truth(scene.rgb, scene.inverse_depth, interval, "flow"), scene.inverse_depth)
                checked = sequence_errors(carry_truth(scene.rgb, scene.inverse_depth, interval, "flow",
                                                      DepthCarrier(occlusion_check=True)), scene.inverse_depth)
                report[f"interval_{interval}"] = {
                    "hold": _rounded(hold),
                    "flow": {**_rounded(flow), **_ratios(flow, hold)},
                    "flow_occlusion_hold": {**_rounded(checked), **_ratios(checked, hold)},
                }
            if check_presets:
                hold = sequence_errors(carry_truth(scene.rgb, scene.inverse_depth, TARGET_INTERVAL, "hold"),
                                       scene.inverse_depth)
                report["presets_at_interval_4"] = {}
                for preset in FLOW_PRESETS:
                    flow = sequence_errors(carry_truth(scene.rgb, scene.inverse_depth, TARGET_INTERVAL, "flow",
                                                       DepthCarrier(preset)), scene.inverse_depth)
                    report["presets_at_interval_4"][preset] = _ratios(flow, hold)
            scenes[name] = report
    return {"frames": frames, "size": list(size), "scenes": scenes}


def _median_ms(samples: list[float]) -> float:
    return round(1e3 * statistics.median(samples), 3)


def timing_report(frames: int, sizes, presets) -> dict:
    """Median ms per frame of one DIS flow and of a whole ``push_frame`` carrying depth."""
    report = {}
    for width, height in sizes:
        progress(f"timing at {width}x{height}")
        scene = render_scene(frames, (width, height), "heavy", "fast")
        greys = [cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY) for frame in scene.rgb]
        by_preset = {}
        for preset in presets:
            dis = create_flow(preset)
            flow_wall, flow_cpu = [], []
            for t in range(1, frames):
                wall, cpu = time.perf_counter(), time.thread_time()
                dis.calc(greys[t], greys[t - 1], None)
                flow_cpu.append(time.thread_time() - cpu)
                flow_wall.append(time.perf_counter() - wall)
            entry = {"flow_ms": _median_ms(flow_wall), "flow_cpu_ms": _median_ms(flow_cpu)}
            for check in (False, True):
                carrier = DepthCarrier(preset, occlusion_check=check)
                carrier.push_frame(0, scene.rgb[0])
                carrier.set_keyframe(0, scene.inverse_depth[0])
                wall_ms, cpu_ms = [], []
                for t in range(1, frames):
                    wall, cpu = time.perf_counter(), time.thread_time()
                    carrier.push_frame(t, scene.rgb[t])
                    cpu_ms.append(time.thread_time() - cpu)
                    wall_ms.append(time.perf_counter() - wall)
                suffix = "_with_occlusion_check" if check else ""
                entry[f"flow_warp_ms{suffix}"] = _median_ms(wall_ms)
                entry[f"flow_warp_cpu_ms{suffix}"] = _median_ms(cpu_ms)
            by_preset[preset] = entry
        report[f"{width}x{height}"] = by_preset
    return report


def _time(function, repeats: int) -> tuple[float, float]:
    wall, cpu = [], []
    for _ in range(repeats):
        start_wall, start_cpu = time.perf_counter(), time.thread_time()
        function()
        cpu.append(time.thread_time() - start_cpu)
        wall.append(time.perf_counter() - start_wall)
    return _median_ms(wall), _median_ms(cpu)


def upsample_report(low: tuple[int, int], high: tuple[int, int], frames: tuple[int, ...], repeats: int) -> dict:
    """Bilinear against the fast guided filter: error near depth edges and inside surfaces, and cost."""
    methods = {
        "bilinear": lambda depth, rgb: upsample_depth(depth, high),
        "guided_grey": lambda depth, rgb: fast_guided_upsample(depth, rgb, radius=1, eps=1e-4),
        "guided_smoothed_guide": lambda depth, rgb: fast_guided_upsample(depth, rgb, radius=1, eps=1e-4, guide_blur=2.0),
    }
    report = {"from": list(low), "to": list(high), "frames": list(frames), "scenes": {}}
    for texture in TEXTURES:
        progress(f"upsampling, {texture} texture, {low[0]}x{low[1]} -> {high[0]}x{high[1]}")
        sums = {name: [0.0, 0.0] for name in methods}
        for frame in frames:
            rgb, truth = render_frame(frame, high, texture)
            _, depth = render_frame(frame, low, texture)  # the truth as the model would see it: at processing size
            band = edge_band(truth)
            for name, method in methods.items():
                upsampled = method(depth, rgb)
                sums[name][0] += region_abs_rel(upsampled, truth, band) / len(frames)
                sums[name][1] += region_abs_rel(upsampled, truth, ~band) / len(frames)
        scene = {name: {"edge_abs_rel": round(edge, 5), "inside_abs_rel": round(inside, 6)} for name, (edge, inside) in sums.items()}
        bilinear = scene["bilinear"]
        for name in methods:
            if name != "bilinear":
                scene[name]["edge_vs_bilinear"] = round(scene[name]["edge_abs_rel"] / bilinear["edge_abs_rel"], 3)
        report["scenes"][texture] = scene
    rgb, truth = render_frame(frames[0], high, "heavy")
    _, depth = render_frame(frames[0], low, "heavy")
    tensor = torch.from_numpy(depth)
    cost = {name: _time(lambda m=method: m(depth, rgb), repeats) for name, method in methods.items()}
    cost["bilinear_torch_cpu"] = _time(lambda: upsample_depth(tensor, high), repeats)
    report["ms_per_frame"] = {name: {"wall": wall, "cpu": cpu} for name, (wall, cpu) in cost.items()}
    return report


def targets(carry: dict, timing: dict, upsample: dict) -> dict:
    """Issue 23's targets that the maths alone can judge (the node-level ones are ``bench.fill``'s)."""
    at_4 = [scene[f"interval_{TARGET_INTERVAL}"]["flow"] for scene in carry["scenes"].values()]
    at_1 = [scene["interval_1"]["flow"]["abs_rel"] for scene in carry["scenes"].values()]
    default = DEFAULT_PRESET
    small = timing.get("384x216", {}).get(default)
    edge_aware_wins = all(
        scene[name]["edge_abs_rel"] < scene["bilinear"]["edge_abs_rel"]
        and scene[name]["inside_abs_rel"] <= scene["bilinear"]["inside_abs_rel"]
        for scene in upsample["scenes"].values() for name in scene if name != "bilinear"
    )
    return {
        "interval_4_abs_rel_le_half_of_hold": all(f["abs_rel_vs_hold"] <= 0.5 for f in at_4),
        "interval_4_temporal_error_le_half_of_hold": all(f["temporal_error_vs_hold"] <= 0.5 for f in at_4),
        "interval_1_abs_rel_le_1e-3": all(value <= 1e-3 for value in at_1),
        "flow_warp_le_4ms_at_384x216_one_core": small is not None and small["flow_warp_cpu_ms"] <= 4.0,
        "bilinear_upsample_le_5ms_at_1280x720_one_core": upsample["ms_per_frame"]["bilinear"]["cpu"] <= 5.0,
        "edge_aware_upsampling_wins_near_edges_without_losing_inside": edge_aware_wins,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fill_maths", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, few frames, one texture (tests)")
    args = parser.parse_args(argv)
    load_at_start = load_average()
    cv2.setNumThreads(1)  # one CPU core, as the targets say
    torch.set_num_threads(1)
    if args.quick:
        carry = carry_report(9, (192, 108), ("heavy",), check_presets=False)
        timing = timing_report(4, [(384, 216)], (DEFAULT_PRESET,))
        upsample = upsample_report((96, 54), (320, 180), (0,), repeats=3)
    else:
        carry = carry_report(25, (384, 216), TEXTURES, check_presets=True)
        timing = timing_report(25, [(384, 216), (640, 360)], tuple(FLOW_PRESETS))
        upsample = upsample_report((384, 216), (1280, 720), (0, 12), repeats=15)
    report = {
        "machine": {"cpus": os.cpu_count(), "threads": 1, "load_average_at_start": load_at_start},
        "quick": args.quick,
        "default_preset": DEFAULT_PRESET,
        "default_occlusion_check": DepthCarrier().occlusion_check,
        "carry": carry,
        "timing": timing,
        "upsample": upsample,
        "targets_met": targets(carry, timing, upsample),
    }
    return print_report(report, STARTED)


if __name__ == "__main__":
    raise SystemExit(main())
