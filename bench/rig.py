"""Several streams, one model (``rdstream rig``): equality, model calls, memory and throughput, as JSON.

Sections (``--sections``, default ``equality,calls,memory,fps``; ``gpu`` runs only with CUDA):

- equality: each stream of a ``--streams``-stream rig against its own single-stream run with the same
  seed and clip (tiny RANDOM checkpoint, fp32 CPU): the largest absolute difference of the depth the
  sinks get (display range [0, 1]) and of the aligned depth before it.
- calls: model calls (encoder + UNet + decoder invocations) per output frame, the rig against
  ``--streams`` separate single-stream runs of the same clips, and their ratio.
- memory: peak RSS of a process running the rig with ``--streams`` streams against one running one
  stream (``rdstream run``'s node), with the full-size RANDOM model at ``--res`` px.
- fps: aggregate output fps of the rig against ``--streams`` single-stream processes run at the same
  time (each process builds its model, then all start together), full-size RANDOM model,
  ``--no-drop`` sources, every process with torch's default threads.
- gpu: the same on CUDA at 384 px, fp16: aggregate fps of the rig against one stream alone (target
  >= 2.5x on an H200); says why it did not run elsewhere.

The random models' depth is meaningless: only counts, memory and speed are measured.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import anyio
import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def NullSink(keep: bool = False):
    """A sink that counts frames (and keeps their depth with ``keep``; else memory stays flat)."""
    from io_adapters.base import Sink

    class _NullSink(Sink):
        uri = "null:"

        def __init__(self) -> None:
            self.frames = 0
            self.depths: list | None = [] if keep else None

        def send(self, frame) -> None:
            self.frames += 1
            if self.depths is not None:
                self.depths.append(frame.depth.copy())

        def close(self) -> None:
            pass

    return _NullSink()


def clip(k: int, frames: int, height: int, width: int) -> np.ndarray:
    """A different moving pattern per stream."""
    y, x = np.mgrid[0:height, 0:width]
    out = np.empty((frames, height, width, 3), np.uint8)
    for i in range(frames):
        out[i, ..., 0] = (x * 255 // max(1, width - 1) + 3 * i + 40 * k) % 256
        out[i, ..., 1] = (y * 255 // max(1, height - 1) + 17 * k) % 256
        out[i, ..., 2] = 60 + 30 * k
        top, left = (i * 2 + 5 * k) % max(1, height - 8), (i * 3 + 7 * k) % max(1, width - 8)
        out[i, top : top + 8, left : left + 8] = 255
    return out


class Passthrough:
    current_range = None

    def __call__(self, depth):
        return depth


def _parts(model, res: int, seed: int, lookahead: int = 2, display=None):
    from pipeline.coalign import OnlineAligner
    from pipeline.snippets import SnippetPlan
    from stream.stages.display_normalizer import parse_normalize
    from stream.node import NodeConfig
    from stream.model.rolling_depth_steps import RollingDepthSteps

    plan = SnippetPlan(3, (1, 5))
    aligner = OnlineAligner.for_plan(plan, lookahead)
    return (RollingDepthSteps(model, res, seed=seed), aligner, display or parse_normalize("running"),
            NodeConfig(plan=plan, lookahead=lookahead))


def run_single(model, frames: np.ndarray, res: int, seed: int, display=None, keep: bool = False):
    from bench.support.stream_doubles import ArraySource
    from stream.node import StreamNode

    steps, aligner, normalizer, config = _parts(model, res, seed, display=display)
    sink = NullSink(keep)
    node = StreamNode(ArraySource(frames), [("null:", sink)], steps, aligner, normalizer, config, report=lambda m: None)
    result = anyio.run(node.run)
    return sink, result


def run_rig(model, clips: list[np.ndarray], res: int, display=None, keep: bool = False):
    from bench.support.stream_doubles import ArraySource
    from stream.rig import Rig, RigStream

    streams, sinks = [], []
    for k, frames in enumerate(clips):
        steps, aligner, normalizer, config = _parts(model, res, seed=k, display=display() if display else None)
        sinks.append(NullSink(keep))
        streams.append(RigStream(f"s{k}", ArraySource(frames), [("null:", sinks[-1])], steps, aligner, normalizer,
                                 config))
    rig = Rig(streams, report=lambda m: None)
    started = time.perf_counter()
    outcomes = anyio.run(rig.run, False)
    return sinks, outcomes, time.perf_counter() - started, rig


def tiny_model():
    from bench.models import load_tiny_model
    from pipeline.tiny_checkpoint import write_tiny_checkpoint

    folder = Path(tempfile.mkdtemp(prefix="rig-bench-"))
    return load_tiny_model(write_tiny_checkpoint(folder / "ckpt"))


def section_equality(args) -> dict:
    from stream.stages.display_normalizer import parse_normalize

    model = tiny_model()
    clips = [clip(k, args.frames, 64, 96) for k in range(args.streams)]
    out = {}
    for label, display in (("display_depth", lambda: parse_normalize("running")), ("aligned_depth", Passthrough)):
        singles = [np.stack(run_single(model, clips[k], 64, k, display(), keep=True)[0].depths)
                   for k in range(args.streams)]
        sinks, _, _, _ = run_rig(model, clips, 64, display=display, keep=True)
        diffs = [float(np.abs(np.stack(s.depths) - singles[k]).max()) for k, s in enumerate(sinks)]
        out[label] = {"max_abs_diff_per_stream": diffs, "max_abs_diff": max(diffs)}
    out["target"] = "display depth max abs diff <= 1e-5 (fp32 CPU, tiny checkpoint)"
    out["met"] = out["display_depth"]["max_abs_diff"] <= 1e-5
    return out


def section_calls(args) -> dict:
    from bench.rig_counts import counting_model_calls

    model = tiny_model()
    clips = [clip(k, args.frames, 64, 96) for k in range(args.streams)]
    separate, frames_separate = {"encoder": 0, "unet": 0, "decoder": 0}, 0
    for k in range(args.streams):
        with counting_model_calls(model) as calls:
            sink, _ = run_single(model, clips[k], 64, k)
        frames_separate += sink.frames
        for key in separate:
            separate[key] += calls[key]
    with counting_model_calls(model) as rig_calls:
        sinks, _, _, rig = run_rig(model, clips, 64)
    frames_rig = sum(s.frames for s in sinks)
    per_separate = sum(separate.values()) / frames_separate
    per_rig = sum(rig_calls.values()) / frames_rig
    return {"streams": args.streams, "frames_per_stream": args.frames,
            "separate": {"calls": separate, "output_frames": frames_separate, "calls_per_output_frame": round(per_separate, 3)},
            "rig": {"calls": rig_calls, "output_frames": frames_rig, "calls_per_output_frame": round(per_rig, 3),
                    "batch_sizes_mean": round(float(np.mean(rig.batcher.sizes)), 2)},
            "ratio": round(per_rig / per_separate, 3), "target": "<= 0.35 with 4 streams",
            "met": per_rig / per_separate <= 0.35}


# ---------------------------------------------------------------------- child processes (full-size model)
def child(args) -> None:
    """One measured process: build the full-size random model, say 'ready', wait for 'go', run, print JSON."""
    import torch

    from bench.models import build_random_sd2_model

    device = args.device
    dtype = torch.float16 if device == "cuda" else torch.float32
    model = build_random_sd2_model(device=device, dtype=dtype)
    clips = [clip(k, args.frames, args.height, args.width) for k in range(args.child_streams)]
    print("ready", flush=True)
    sys.stdin.readline()  # the parent starts every process at once
    started = time.perf_counter()
    if args.child == "single":
        sink, _ = run_single(model, clips[0], args.res, 0)
        frames = sink.frames
    else:
        sinks, _, _, _ = run_rig(model, clips, args.res)
        frames = sum(s.frames for s in sinks)
    elapsed = time.perf_counter() - started
    print(json.dumps({"frames_out": frames, "elapsed_s": round(elapsed, 2), "fps": round(frames / elapsed, 3),
                      "peak_rss_mb": peak_rss_mb()}), flush=True)


def peak_rss_mb() -> float | None:
    """This process's peak resident set size in MB (None on Windows, which has no getrusage)."""
    if sys.platform != "win32":
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KB on Linux, bytes on macOS
        return round(peak / 2**20 if sys.platform == "darwin" else peak / 1024, 1)
    return None


def _with_root(pythonpath: str | None) -> str:
    """This checkout first, the caller's path after it (bench/gpu_check.sh's installed wheels live there)."""
    return os.pathsep.join([str(ROOT), *([pythonpath] if pythonpath else [])])


def run_children(args, kinds: list[tuple[str, int]], device: str = "cpu", res: int | None = None) -> list[dict]:
    """Start one process per (kind, streams), start them together once all are ready, collect their JSON."""
    procs = []
    for kind, streams in kinds:
        cmd = [sys.executable, "-m", "bench.rig", "--child", kind, "--child-streams", str(streams), "--frames",
               str(args.frames), "--res", str(res or args.res), "--device", device, "--width", str(args.width),
               "--height", str(args.height)]
        procs.append(subprocess.Popen(cmd, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                      env={**os.environ, "PYTHONPATH": _with_root(os.environ.get("PYTHONPATH"))}))
    for proc in procs:
        line = proc.stdout.readline()
        if line.strip() != "ready":
            raise RuntimeError(f"a measured process failed to start: {line!r}")
    started = time.perf_counter()
    for proc in procs:
        proc.stdin.write("go\n")
        proc.stdin.flush()
    results = []
    for proc in procs:
        out, _ = proc.communicate(timeout=3600)
        results.append(json.loads(out.strip().splitlines()[-1]))
    wall = time.perf_counter() - started
    for r in results:
        r["wall_s_all"] = round(wall, 2)
    return results


def section_memory(args) -> dict:
    one = run_children(args, [("single", 1)])[0]
    rig = run_children(args, [("rig", args.streams)])[0]
    if one["peak_rss_mb"] is None:
        return {"ran": False, "why": "no peak RSS on Windows"}
    ratio = rig["peak_rss_mb"] / one["peak_rss_mb"]
    return {"model": "full-size RANDOM SD2-shaped (fp32)", "res": args.res, "one_stream": one,
            f"rig_{args.streams}_streams": rig, "ratio": round(ratio, 3), "target": "<= 1.3", "met": ratio <= 1.3}


def section_fps(args) -> dict:
    separate = run_children(args, [("single", 1)] * args.streams)
    aggregate_separate = sum(r["frames_out"] for r in separate) / max(r["elapsed_s"] for r in separate)
    rig = run_children(args, [("rig", args.streams)])[0]
    aggregate_rig = rig["frames_out"] / rig["elapsed_s"]
    ratio = aggregate_rig / aggregate_separate
    return {"model": "full-size RANDOM SD2-shaped (fp32)", "res": args.res, "cpu_cores": os.cpu_count(),
            "separate_processes": separate, "aggregate_fps_separate": round(aggregate_separate, 3),
            "rig": rig, "aggregate_fps_rig": round(aggregate_rig, 3), "ratio": round(ratio, 3),
            "target": ">= 1.0", "met": ratio >= 1.0}


def section_gpu(args) -> dict:
    import torch

    if not torch.cuda.is_available():
        return {"ran": False, "why": "no CUDA device here; run `python -m bench.rig --sections gpu` on a GPU machine"}
    one = run_children(args, [("single", 1)], device="cuda", res=384)[0]
    rig = run_children(args, [("rig", args.streams)], device="cuda", res=384)[0]
    ratio = rig["fps"] / one["fps"]
    return {"ran": True, "device": torch.cuda.get_device_name(0), "res": 384, "one_stream": one, "rig": rig,
            "ratio": round(ratio, 3), "target": ">= 2.5 on an H200", "met": ratio >= 2.5}


SECTIONS = {"equality": section_equality, "calls": section_calls, "memory": section_memory, "fps": section_fps,
            "gpu": section_gpu}


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="python -m bench.rig", description=__doc__.splitlines()[0])
    parser.add_argument("--sections", default="equality,calls,memory,fps", help="comma-separated: " + ",".join(SECTIONS))
    parser.add_argument("--streams", type=int, default=4)
    parser.add_argument("--frames", type=int, default=12, help="frames per stream")
    parser.add_argument("--res", type=int, default=64, help="processing size of the full-size model's sections")
    parser.add_argument("--width", type=int, default=96)
    parser.add_argument("--height", type=int, default=64)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--child", choices=("single", "rig"), help=argparse.SUPPRESS)
    parser.add_argument("--child-streams", type=int, default=1, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.child:
        child(args)
        return 0
    report = {"benchmark": "bench.rig", "streams": args.streams,
              "note": "random models: counts, memory and speed only, never depth quality"}
    for name in args.sections.split(","):
        started = time.perf_counter()
        report[name] = SECTIONS[name](args)
        report[name]["seconds"] = round(time.perf_counter() - started, 1)
        print(f"bench.rig: {name} done in {report[name]['seconds']} s", file=sys.stderr)
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
