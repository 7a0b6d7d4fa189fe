"""Streaming node benchmark: prints ONE JSON document on stdout (progress on stderr).

Sections (``--sections abcdefg``, all by default):
(a) runtime overhead: ``test:`` -> node -> ``null:`` at 384 px with a model-free stand-in for the
    model steps (defined here, used only here). ``runtime_only`` also stands in for the aligner
    (plain mean), which isolates the node's own cost; ``with_online_aligner`` runs the real one.
    Target >= 300 fps (runtime_only).
(b) the tiny random model: node fps against the same steps run in a plain loop (no node, no
    aligner, no sinks). Target node >= 90 % of isolated. Also the model thread's own CPU seconds per
    frame in both (``--threads 1`` puts all of the model's work on that thread).
(c) per output frame, stream against offline for the fast preset (dilations 1, 25, capped to the
    clip as offline caps them) with the full-size RANDOM model on a short clip at 128 px, in one
    process: counts of VAE encodes, UNet frame-passes and VAE decodes, and seconds.
    Targets: stream/offline seconds <= 1.0 and exactly 1 encode per frame.
(d) RSS after 100 frames and after ``--d-frames`` frames (tiny model, 64 px). Target growth < 50 MB.
(f) --realtime with a stand-in model slower than the source (test: at 30 fps, 0.25 s a frame):
    end-to-end latency p50/p95 in processing periods. Target <= lookahead + 2 (lookahead 2).
(g) the node's order against the benchmark's: a model double on a simulated GPU (queueing a predict
    costs the host ``--g-host-ms``, the work then takes ``--g-device-ms`` on one device queue) through
    the whole node, against ``bench.gpu_timing.pipelined_fps`` (the next frame queued before the
    previous result is read) and the order that awaits each result first (1 / (host + device)).
    Target: node >= 90 % of the pipelined order.
(e) depth of the node (lookahead 2) against the offline pipeline on the same clip and tiny
    checkpoint: AbsRel of the node's aligned depth after one global affine fit to the offline
    depth, with the offline depth mapped from [-1, 1] to [1, 2] (AbsRel needs a positive
    reference). Target: within 0.01 (1 AbsRel point).

Random weights give no depth: only timings, counts and memory mean something; (e) compares two
alignments of the same (meaningless) snippets.
Defaults suit a 2-core CPU (a few minutes, mostly (c)); ``--d-frames 10000`` is the full (d).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import sys
import tempfile
import time

import anyio
import numpy as np
import torch

from bench.models import build_random_sd2_model, load_tiny_model
from bench.support.synthetic_depth import abs_rel
from bench.support.stream_doubles import ArraySource
from io_adapters.base import Sink
from io_adapters.registry import open_sink, open_source
from stream.stages.display_normalizer import parse_normalize
from pipeline.offline import OfflinePipeline, OfflineSettings
from pipeline.coalign import OnlineAligner
from pipeline.snippets import SnippetPlan
from pipeline.snippets import plan_snippets
from stream.model.depth_steps import StepCounts
from stream.model.model_thread import ModelThread
from stream.node import NodeConfig, NodeResult, StreamNode
from stream.model.rolling_depth_steps import RollingDepthSteps

FAST_DILATIONS = (1, 25)
RANDOM_WEIGHTS_NOTE = "random weights: the output is not depth; timings, counts and memory are what is measured"


def log(message: str) -> None:
    print(f"[bench.stream] {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- helpers

class StandInSteps:
    """Model-free stand-in for the model steps (benchmark (a) only): the runtime's own cost.

    encode: the frame itself is the display image; a [H/8, W/8] grey thumbnail is the "latent".
    predict: a fixed depth pattern at the processing size, offset by each frame's mean grey
    level, so snippets differ and the aligner has real work.
    """

    def __init__(self) -> None:
        self.counts = StepCounts()
        self._base: np.ndarray | None = None

    def encode(self, rgb: np.ndarray):
        self.counts.encodes += 1
        if self._base is None:
            h, w = rgb.shape[:2]
            y, x = np.mgrid[0:h, 0:w]
            self._base = (x / w - y / h).astype(np.float32)
        return rgb, rgb[::8, ::8, 1].astype(np.float32) / 127.5 - 1.0

    def predict(self, latents, merged=None):
        from pipeline.coalign.snippet_depth import SnippetDepth

        b, length = len(latents), len(latents[0])
        levels = np.array([[latent.mean() for latent in snippet] for snippet in latents], dtype=np.float32)
        self.counts.unet_frame_passes += b * length
        self.counts.decodes_full += b * length
        depth = self._base[None, None] + 0.05 * levels[:, :, None, None]
        return [SnippetDepth.from_full(torch.from_numpy(d)) for d in depth]


class MeanAlignerStandIn:
    """Benchmark-only stand-in for the aligner in (a): a frame is the plain mean of the snippets
    covering it, ready ``lookahead`` frames behind the newest. It isolates the runtime's own cost
    from the online co-alignment's (which (a) also reports with the real ``OnlineAligner``)."""

    def __init__(self, lookahead: int) -> None:
        self.lookahead = lookahead
        self.sums: dict[int, np.ndarray] = {}
        self.counts: dict[int, int] = {}
        self.newest = -1
        self.emitted_through = -1
        self.flushed = False

    def push(self, depth, frame_indices) -> None:
        for d, n in zip(depth.full.numpy(), frame_indices):  # StandInSteps hands every frame over whole
            if n <= self.emitted_through:
                continue  # already out (the real aligner keeps it only as an anchor)
            self.sums[n] = self.sums[n] + d if n in self.sums else d.copy()
            self.counts[n] = self.counts.get(n, 0) + 1
        self.newest = max(self.newest, frame_indices[-1])

    def advance(self, newest: int) -> None:
        self.newest = max(self.newest, newest)

    def ready_frames(self) -> list[int]:
        limit = self.newest if self.flushed else self.newest - self.lookahead
        return sorted(n for n in self.sums if n <= limit)

    def emit(self, frame_index: int) -> np.ndarray:
        self.emitted_through = frame_index
        return self.sums.pop(frame_index) / self.counts.pop(frame_index)

    def flush(self) -> list[tuple[int, np.ndarray]]:
        self.flushed = True
        return [(n, self.emit(n)) for n in self.ready_frames()]


class IdentityDisplay:
    """Keeps the aligned depth as it is (benchmark (e) compares depth, not display ranges)."""

    current_range = None

    def __call__(self, depth: np.ndarray) -> np.ndarray:
        return depth


class CollectSink(Sink):
    """Keeps what it is sent, optionally recording RSS at given frame counts."""

    def __init__(self, rss_at: tuple[int, ...] = ()) -> None:
        self.uri = "collect:"
        self.depth: list[np.ndarray] = []
        self.keep = True
        self.rss_at = set(rss_at)
        self.rss_mb: dict[int, float] = {}
        self.count = 0

    def send(self, frame) -> None:
        self.count += 1
        if self.keep:
            self.depth.append(frame.depth)
        if self.count in self.rss_at:
            gc.collect()
            self.rss_mb[self.count] = rss_mb()

    def close(self) -> None:
        pass


def rss_mb() -> float:
    """Current resident set size in MB (Linux /proc; macOS the peak from getrusage; 0.0 on Windows)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        if sys.platform != "win32":  # neither /proc nor getrusage on Windows
            import resource

            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            return peak / 2**20 if sys.platform == "darwin" else peak / 1024
        return 0.0


def test_pattern(frames: int, width: int, height: int) -> np.ndarray:
    import av

    out = []
    graph = f"testsrc2=size={width}x{height}:rate=30:duration={frames / 30 + 1}"
    with av.open(graph, format="lavfi") as container:
        for frame in container.decode(video=0):
            out.append(frame.to_ndarray(format="rgb24"))
            if len(out) == frames:
                break
    return np.stack(out)


def run_node(source, sinks, steps, plan: SnippetPlan, lookahead: int, normalizer=None, aligner=None,
             model_thread: ModelThread | None = None) -> NodeResult:
    aligner = aligner or OnlineAligner.for_plan(plan, lookahead)
    node = StreamNode(source, sinks, steps, aligner, normalizer or parse_normalize("running"),
                      NodeConfig(plan=plan, lookahead=lookahead, drop_frames=False), report=log,
                      model_thread=model_thread)
    return anyio.run(node.run)


def run_rig_of_one(source, sinks, steps, plan: SnippetPlan, lookahead: int) -> tuple[NodeResult, float]:
    """``run_node`` the way ``rdstream run`` runs a stream: a rig of one (stream.rig), its model calls
    on the batcher's thread -> (the node's result, CPU seconds of the batcher's thread during the run)."""
    from stream.model.batcher import Batcher
    from stream.rig import Rig, RigStream

    batcher = Batcher(None, 1)
    stream = RigStream("", source, sinks, steps, OnlineAligner.for_plan(plan, lookahead), parse_normalize("running"),
                       NodeConfig(plan=plan, lookahead=lookahead, drop_frames=False))
    rig = Rig([stream], report=log, batcher=batcher, named=False)
    batched, last = batcher.run_batch, []

    def timed(key, payloads):  # the batcher's thread ends with the run: its CPU time is read as it goes
        out = batched(key, payloads)
        last[:] = [time.thread_time()]
        return out

    batcher.run_batch = timed
    start = batcher.run_on_thread(time.thread_time)
    outcome = anyio.run(rig.run, False)[0]
    if outcome.error is not None:
        raise outcome.error
    return outcome.result, last[0] - start


def isolated_fps(steps, frames: np.ndarray, plan: SnippetPlan, lookahead: int = 2) -> float:
    """The same model steps as the node runs, in a plain loop: encode each frame, run its snippets
    (decoding at full resolution what the node's aligner at ``lookahead`` still merges)."""
    from pipeline.coalign.snippet_depth import still_merged

    latents = {}
    start = time.perf_counter()
    for t, rgb in enumerate(frames):
        latents[t] = steps.encode(rgb)[1]
        snippets = plan.snippets_ending_at(t)
        if snippets:
            steps.predict([[latents[i] for i in s] for s in snippets],
                          [still_merged(s, lookahead, plan.snip_len) for s in snippets])
        latents.pop(t - plan.span + 1, None)  # the oldest frame no later snippet reaches
    return len(frames) / (time.perf_counter() - start)


# --------------------------------------------------------------------------- sections

def section_a(args) -> dict:
    out = {"size": "384x216", "target_fps": 300}
    for label, make_aligner in (("runtime_only", lambda: MeanAlignerStandIn(2)), ("with_online_aligner", lambda: None)):
        log(f"(a) {label}: test: -> null: at 384 px, {args.a_frames} frames, model-free stand-in steps")
        source = open_source(f"test:?frames={args.a_frames}&size=384x216&rate=30", realtime=False)
        sink = open_sink("null:", fps=30.0)
        result = run_node(source, [("null:", sink)], StandInSteps(), SnippetPlan(3, FAST_DILATIONS), lookahead=2,
                          aligner=make_aligner())
        fps = result.frames_out / result.elapsed_s
        out[label] = {"frames": result.frames_out, "seconds": result.elapsed_s, "fps": round(fps, 1),
                      "latency_p50_ms": result.latency_p50_ms, "latency_p95_ms": result.latency_p95_ms,
                      "stage_busy_s": {k: v["busy_s"] for k, v in result.stages.items()}}
    out["meets_target"] = out["runtime_only"]["fps"] >= 300
    return out


def section_b(args, tiny, model_thread: ModelThread) -> dict:
    log(f"(b) tiny model at {args.b_res} px: node vs isolated, {args.b_frames} frames, best of {args.b_repeats}")
    frames = test_pattern(args.b_frames, 640, 360)
    plan = SnippetPlan(3, FAST_DILATIONS)
    # Both run on the thread the model was loaded on (as rdstream run does; see stream.model.model_thread).
    isolated = lambda: model_thread.call(isolated_fps, RollingDepthSteps(tiny, args.b_res, seed=0), frames, plan)
    model_thread.call(isolated_fps, RollingDepthSteps(tiny, args.b_res, seed=0), frames[:6], plan)  # warm-up
    # CPU seconds of the model thread itself (time.thread_time on it): with --threads 1 all of the
    # model's work, so the cost of the Python around the model calls shows, whatever the load
    thread_cpu = lambda: model_thread.call(time.thread_time)
    iso_runs, node, iso_cpu, node_cpu, rig_cpu, last = [], [], [], [], [], None
    for _ in range(args.b_repeats):  # interleaved, so both see the same load on a shared machine
        cpu = thread_cpu()
        iso_runs.append(isolated())
        iso_cpu.append((thread_cpu() - cpu) / len(frames))
        cpu = thread_cpu()
        last = run_node(ArraySource(frames), [("null:", CollectSink())], RollingDepthSteps(tiny, args.b_res, seed=0),
                        plan, lookahead=2, model_thread=model_thread)
        node_cpu.append((thread_cpu() - cpu) / last.frames_out)
        node.append(last.frames_out / last.elapsed_s)
        one, cpu_s = run_rig_of_one(ArraySource(frames), [("null:", CollectSink())],
                                    RollingDepthSteps(tiny, args.b_res, seed=0), plan, lookahead=2)
        rig_cpu.append(cpu_s / one.frames_out)
    ratio = max(node) / max(iso_runs)
    return {"frames": last.frames_out, "res": args.b_res, "isolated_fps_runs": [round(v, 2) for v in iso_runs],
            "node_fps_runs": [round(v, 2) for v in node], "isolated_fps": round(max(iso_runs), 2),
            # rig_of_one: the node as rdstream run runs it, its model calls on a batcher's thread
            "model_thread_cpu_s_per_frame": {"isolated": round(min(iso_cpu), 5), "node": round(min(node_cpu), 5),
                                             "rig_of_one": round(min(rig_cpu), 5)},
            "node_fps": round(max(node), 2), "node_over_isolated": round(ratio, 3), "target": 0.9,
            "meets_target": ratio >= 0.9, "latency_p50_ms": last.latency_p50_ms,
            "stage_busy_s": {k: v["busy_s"] for k, v in last.stages.items()}}


def section_c(args, model_thread: ModelThread) -> dict:
    log(f"(c) full-size random model, fast preset, {args.c_frames} frames at {args.c_res} px: stream vs offline")
    frames = test_pattern(args.c_frames, 640, 360)
    model = model_thread.call(build_random_sd2_model, "cpu", torch.float32)
    plans = plan_snippets(len(frames), FAST_DILATIONS, 3, True)
    effective = tuple(sorted({p.dilation for p in plans}))
    settings = OfflineSettings(dilations=FAST_DILATIONS, res=args.c_res, seed=0, coalign="exact", quality="fast")
    pipeline = OfflinePipeline(model, settings)
    # warm-up at the same size, so neither path pays the first calls' allocations
    model_thread.call(isolated_fps, RollingDepthSteps(model, args.c_res, seed=0), frames[:3], SnippetPlan(3, (1,)))
    start, cpu = time.perf_counter(), time.process_time()
    offline = model_thread.call(pipeline, frames)
    offline_s, offline_cpu = time.perf_counter() - start, time.process_time() - cpu
    steps = RollingDepthSteps(model, args.c_res, seed=0)
    start, cpu = time.perf_counter(), time.process_time()
    result = run_node(ArraySource(frames), [("collect:", CollectSink())], steps, SnippetPlan(3, effective), lookahead=2,
                      model_thread=model_thread)
    stream_s, stream_cpu = time.perf_counter() - start, time.process_time() - cpu
    n = len(frames)
    off_counts = {"encodes": offline.counts["frames_encoded"], "unet_frame_passes": offline.counts["unet_frame_passes"],
                  "decodes": offline.counts["frames_decoded"]}
    return {
        "frames": n, "res": args.c_res, "dilations_requested": list(FAST_DILATIONS),
        "dilations_used": list(effective),
        "note": "offline caps dilation 25 to the clip; the stream runs the same capped dilations so both do the same snippets",
        "offline": {"seconds": round(offline_s, 2), "cpu_seconds": round(offline_cpu, 2), "seconds_per_frame": round(offline_s / n, 3), "counts": off_counts,
                    "stage_seconds": {k: round(v, 2) for k, v in offline.seconds.items()}},
        "stream": {"seconds": round(stream_s, 2), "cpu_seconds": round(stream_cpu, 2), "seconds_per_frame": round(stream_s / result.frames_out, 3),
                   "frames_out": result.frames_out, "counts": steps.counts.as_dict(),
                   "stage_busy_s": {k: v["busy_s"] for k, v in result.stages.items()}},
        "encodes_per_frame": steps.counts.encodes / n,
        "stream_over_offline_seconds": round(stream_s / offline_s, 3),
        "stream_over_offline_cpu_seconds": round(stream_cpu / offline_cpu, 3),
        "meets_target": stream_s / offline_s <= 1.0 and steps.counts.encodes == n,
    }


def section_d(args, tiny, model_thread: ModelThread) -> dict:
    total = args.d_frames
    log(f"(d) RSS after 100 and {total} frames, tiny model at 64 px")
    source = open_source(f"test:?frames={total}&size=96x64&rate=30", realtime=False)
    sink = CollectSink(rss_at=(100, total))
    sink.keep = False
    result = run_node(source, [("probe:", sink)], RollingDepthSteps(tiny, 64, seed=0), SnippetPlan(3, FAST_DILATIONS),
                      lookahead=2, model_thread=model_thread)
    growth = sink.rss_mb.get(total, float("nan")) - sink.rss_mb.get(100, float("nan"))
    return {"frames": result.frames_out, "rss_mb_after_100": round(sink.rss_mb.get(100, float("nan")), 1),
            f"rss_mb_after_{total}": round(sink.rss_mb.get(total, float("nan")), 1), "growth_mb": round(growth, 1),
            "seconds": result.elapsed_s, "target_growth_mb": 50, "meets_target": growth < 50}


class SlowStandInSteps(StandInSteps):
    """Benchmark (f) only: the stand-in steps taking a fixed time on the model thread, as a model
    that is slower than the source (encode ``encode_s``, each snippet batch ``predict_s``)."""

    def __init__(self, encode_s: float, predict_s: float) -> None:
        super().__init__()
        self.encode_s, self.predict_s = encode_s, predict_s

    def encode(self, rgb: np.ndarray):
        time.sleep(self.encode_s)
        return super().encode(rgb)

    def predict(self, latents, merged=None):
        time.sleep(self.predict_s)
        return super().predict(latents, merged)


def section_f(args) -> dict:
    """--realtime with a model slower than the source: end-to-end latency in processing periods.
    Target: p50 and p95 within lookahead + 2 periods (frames must not wait in queues)."""
    lookahead, encode_s, predict_s = 2, args.f_period_s * 0.25, args.f_period_s * 0.75
    log(f"(f) --realtime: test: at 30 fps, a stand-in model taking {args.f_period_s:.2f} s a frame, "
        f"lookahead {lookahead}, {args.f_seconds:.0f} s")
    source = open_source("test:?size=96x64&rate=30", realtime=True)
    plan = SnippetPlan(3, (1, 5))
    node = StreamNode(source, [("collect:", CollectSink())], SlowStandInSteps(encode_s, predict_s),
                      MeanAlignerStandIn(lookahead), parse_normalize("running"),
                      NodeConfig(plan=plan, lookahead=lookahead, drop_frames=True,
                                 max_frames=int(args.f_seconds * 30)), report=log)
    result = anyio.run(node.run)
    # the model thread never idles while frames are dropped: one period per processed frame
    period_ms = 1000.0 * result.elapsed_s / max(result.frames_processed, 1)
    bound = lookahead + 2
    p50, p95 = (None if v is None else round(v / period_ms, 2) for v in (result.latency_p50_ms, result.latency_p95_ms))
    return {"lookahead": lookahead, "frames_in": result.frames_in, "frames_out": result.frames_out,
            "dropped": result.dropped, "processing_period_ms": round(period_ms, 1),
            "latency_p50_ms": result.latency_p50_ms, "latency_p95_ms": result.latency_p95_ms,
            "latency_p50_periods": p50, "latency_p95_periods": p95, "target_periods": bound,
            "meets_target": p95 is not None and p95 <= bound}


def section_e(args, tiny, model_thread: ModelThread) -> dict:
    n = args.e_frames
    log(f"(e) node (lookahead 2) vs offline on the same {n}-frame clip, tiny checkpoint, 64 px")
    frames = test_pattern(n, 96, 64)
    offline = model_thread.call(OfflinePipeline(tiny, OfflineSettings(dilations=FAST_DILATIONS, res=64, seed=0,
                                                                      cap_dilation=False)), frames)
    sink = CollectSink()
    run_node(ArraySource(frames), [("collect:", sink)], RollingDepthSteps(tiny, 64, seed=0),
             SnippetPlan(3, FAST_DILATIONS), lookahead=2, normalizer=IdentityDisplay(), model_thread=model_thread)
    stream = torch.from_numpy(np.stack(sink.depth))
    reference = (torch.from_numpy(offline.depth) + 3.0) / 2.0  # [-1, 1] -> [1, 2]
    value = abs_rel(stream, reference)
    # With random weights the snippets may barely differ; say how much the depth varies at all.
    spread = float(reference.std())
    return {"frames": len(sink.depth), "abs_rel_vs_offline": round(value, 6), "target": 0.01,
            "meets_target": value <= 0.01, "offline_depth_std": round(spread, 4)}


def section_g(args) -> dict:
    from bench.gpu_timing import pipelined_and_node_order_fps
    from bench.support.stream_doubles import ListSource, QueuedDeviceSteps

    host_s, device_s = args.g_host_ms / 1000.0, args.g_device_ms / 1000.0
    plan, lookahead, frames = SnippetPlan(3, (1, 5)), 2, args.g_frames
    log(f"(g) node order: simulated GPU, {args.g_host_ms} ms host + {args.g_device_ms} ms device per predict, "
        f"{frames} frames")
    rgb = np.zeros((48, 64, 3), np.uint8)
    steps = QueuedDeviceSteps(host_s, device_s)
    try:
        benchmark, stages = pipelined_and_node_order_fps(steps, rgb, plan, lookahead, frames)
        result = run_node(ListSource(frames + plan.span, size=(48, 64)), [("collect:", CollectSink())], steps, plan,
                          lookahead)
    finally:
        steps.close()
    node = result.frames_out / result.elapsed_s
    return {"host_ms": args.g_host_ms, "device_ms": args.g_device_ms, "frames": frames,
            "pipelined_fps": round(benchmark, 2), "node_stages_fps": round(stages, 2),
            "node_fps_whole_run": round(node, 2), "awaiting_each_result_fps": round(1.0 / (host_s + device_s), 2),
            "node_stages_ratio": round(stages / benchmark, 3), "target_ratio": 0.9,
            "meets_target": stages >= 0.9 * benchmark}


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="python -m bench.stream", description=__doc__.splitlines()[0])
    parser.add_argument("--sections", default="abcdefg", help="which sections to run, e.g. ab")
    parser.add_argument("--a-frames", type=int, default=600)
    parser.add_argument("--b-frames", type=int, default=60)
    parser.add_argument("--b-res", type=int, default=128)
    parser.add_argument("--b-repeats", type=int, default=2)
    parser.add_argument("--c-frames", type=int, default=12)
    parser.add_argument("--c-res", type=int, default=128)
    parser.add_argument("--d-frames", type=int, default=1000, help="frames for the second RSS reading (10000 for the full check)")
    parser.add_argument("--e-frames", type=int, default=90)
    parser.add_argument("--f-period-s", type=float, default=0.25, help="(f) the stand-in model's seconds per frame")
    parser.add_argument("--f-seconds", type=float, default=8.0, help="(f) seconds of the realtime run")
    parser.add_argument("--g-host-ms", type=float, default=15.0, help="(g) host time to queue one predict")
    parser.add_argument("--g-device-ms", type=float, default=30.0, help="(g) device time of one predict")
    parser.add_argument("--g-frames", type=int, default=60, help="(g) frames timed")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
    report = {"machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                          "torch": torch.__version__}, "note": RANDOM_WEIGHTS_NOTE}
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.setdefault("RDSTREAM_CACHE_DIR", os.path.join(tmp, "cache"))
        # every model is built and run on one thread, as rdstream run does (see stream.model.model_thread)
        model_thread = ModelThread()
        tiny = model_thread.call(load_tiny_model, os.path.join(tmp, "tiny")) if set(args.sections) & set("bde") else None
        runners = {"a": lambda: section_a(args), "b": lambda: section_b(args, tiny, model_thread),
                   "c": lambda: section_c(args, model_thread), "d": lambda: section_d(args, tiny, model_thread),
                   "e": lambda: section_e(args, tiny, model_thread), "f": lambda: section_f(args),
                   "g": lambda: section_g(args)}
        for key in "abcdefg":
            if key in args.sections:
                start = time.perf_counter()
                report[key] = runners[key]()
                log(f"({key}) done in {time.perf_counter() - start:.1f} s: {json.dumps(report[key])}")
        model_thread.close()
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
