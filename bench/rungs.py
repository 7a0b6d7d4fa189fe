"""The cost ladder (``--speed`` rungs): model work, TFLOP and synthetic accuracy per rung; prints ONE JSON document.

    python -m bench.rungs                # counts and TFLOP per output frame at 384 px, synthetic accuracy
    python -m bench.rungs --frames 300   # a longer synthetic clip
    python -m bench.rungs --cpu-seconds  # also CPU seconds per output frame (full-size random model, 128 px)

Per rung of ``pipeline.presets.SPEEDS`` (dilations 1 and 25, L=3 unless named), at lookahead 0 and 2:

- counts per output frame in steady state: the snippets a live node runs (``SnippetPlan``), with the
  full-resolution / fit-only split of ``still_merged`` exactly as ``stream.stages.snippet_stage`` computes
  it, averaged over one period of the strides (the node's own counts agree: tests/pipeline/test_presets.py);
- TFLOP per output frame at 384x384 px: those counts times ``bench.flops.flops_per_call`` (SD2
  and TAESD shapes on the meta device);
- synthetic AbsRel and temporal error at lookahead 2 (``bench.support.synthetic_depth``: snippets
  with random scale and shift, noise and outlier blobs, replayed through the real ``OnlineAligner``
  on the node's cheap fit path). It models snippet noise and outliers only, not the tiny
  encoder's or decoder's approximations: a rung with them scores as its strides do. Only
  ``rdstream dev evaluate`` with the real weights measures those.
- with ``--cpu-seconds``: CPU seconds per output frame of the real ``RollingDepthSteps`` over one
  stride period in steady state, on the full-size random model (SD2 shapes; TAESD's shapes for the
  tiny encoder and decoder) at 128 px on one torch thread, rungs interleaved so machine load hits
  all alike.
``bench.live_cost`` and ``bench.coalign`` include the cost and accuracy sections in their own reports.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time

import numpy as np
import torch

from bench.flops import flops_per_call, tflop_per_frame
from pipeline.coalign.snippet_depth import still_merged
from pipeline.presets import SPEEDS, SpeedRung
from pipeline.snippets import SnippetPlan

DILATIONS = (1, 25)
#: Configurations counted besides the rungs: snippet length 2 (the reference's --snip-len 2).
EXTRA = {"standard/snip_len_2": ("standard", 2)}
TARGETS = {"cheapest_tflop_le": 2.0, "middle_full_decoder_tflop_le": 6.5,
           "middle_abs_rel_gap_points_le": 0.5, "middle_temporal_ratio_le": 1.2}
MIDDLE, CHEAPEST, DEFAULT = "pair", "lite", "standard"


def log(message: str) -> None:
    print(f"[bench.rungs] {message}", file=sys.stderr, flush=True)


def rung_plan(rung: SpeedRung, snip_len: int = 3, dilations=DILATIONS) -> SnippetPlan:
    return SnippetPlan(snip_len, tuple(dilations), rung.strides(dilations, snip_len))


def plan_counts(plan: SnippetPlan, lookahead: int) -> dict:
    """Model work per output frame in steady state (every level active), as the node's snippet stage counts it."""
    period = math.lcm(*plan.strides)
    first = plan.span + 10
    counts = {"encodes": 0, "unet_frame_passes": 0, "decodes_full": 0, "decodes_fit": 0}
    for t in range(first, first + period):
        counts["encodes"] += 1
        covered = plan.covered_before(t)
        for snippet in plan.snippets_ending_at(t):
            merged = still_merged(snippet, lookahead, plan.snip_len, covered_through=covered)
            counts["unet_frame_passes"] += len(snippet)
            counts["decodes_full"] += sum(merged)
            counts["decodes_fit"] += len(snippet) - sum(merged)
    return {k: v / period for k, v in counts.items()}


def tflop(counts: dict, flops: dict, encoder: str, decoder: str) -> float:
    """TFLOP of one output frame from its counts, with the rung's encoder and decoder."""
    return tflop_per_frame(counts, flops, decoder, encoder)


def _configs() -> dict[str, tuple[SpeedRung, int]]:
    configs = {name: (rung, rung.snip_len or 3) for name, rung in SPEEDS.items()}
    configs.update({name: (SPEEDS[rung], snip_len) for name, (rung, snip_len) in EXTRA.items()})
    return configs


def rung_costs(flops: dict) -> dict:
    """Per configuration and lookahead (0, 2): counts and TFLOP per output frame at 384 px."""
    out = {}
    for name, (rung, snip_len) in _configs().items():
        plan = rung_plan(rung, snip_len)
        decoder = "tiny" if rung.decoder == "tiny" else "full"
        entry = {"strides": list(plan.strides), "snip_len": snip_len, "encoder": rung.encoder, "decoder": decoder,
                 "trades": rung.trades}
        for lookahead in (0, 2):
            counts = plan_counts(plan, lookahead)
            entry[f"lookahead_{lookahead}"] = {"counts": {k: round(v, 3) for k, v in counts.items()},
                                               "tflop_384px": round(tflop(counts, flops, rung.encoder, decoder), 3)}
        out[name] = entry
    return out


# --------------------------------------------------------------------------- synthetic accuracy

def live_snippets(plan: SnippetPlan, num_frames: int) -> list[tuple[int, ...]]:
    """Every snippet a node runs on a stream of ``num_frames`` frames, the end's tail snippet included."""
    out = [s for t in range(num_frames) for s in plan.snippets_ending_at(t)]
    tail = plan.tail_snippet(num_frames - 1)
    return out + ([tail] if tail else [])


def replay(clip, plan: SnippetPlan, lookahead: int, quality: str = "fast") -> torch.Tensor:
    """The clip's snippets through an ``OnlineAligner`` in stream order as the node feeds it (advance per
    frame, strided flags, the cheap fit path, the tail snippet, flush); emitted depth ``[N, H, W]``."""
    from bench.support.synthetic_depth import cheap_fit_snippet
    from pipeline.coalign import OnlineAligner

    depths = dict(zip(clip.frame_indices, clip.depths))
    num_frames = clip.truth.shape[0]
    aligner = OnlineAligner.for_plan(plan, lookahead, quality)
    out = {}

    def push(frames, merged):
        aligner.push(cheap_fit_snippet(depths[frames], frames, lookahead, aligner.fit_stride, merged=merged), frames)

    for t in range(num_frames):
        aligner.advance(t)
        covered = plan.covered_before(t)
        for frames in plan.snippets_ending_at(t):
            push(frames, still_merged(frames, lookahead, plan.snip_len, covered_through=covered))
        out.update((f, aligner.emit(f)) for f in aligner.ready_frames())
    tail = plan.tail_snippet(num_frames - 1)
    if tail:
        push(tail, still_merged(tail, lookahead, plan.snip_len, covered_through=plan.covered_before(num_frames),
                                newest_seen=num_frames - 1))
    out.update(dict(aligner.flush()))
    return torch.from_numpy(np.stack([out[f] for f in range(num_frames)]))


def rung_accuracy(num_frames: int = 100, size=(96, 128), lookahead: int = 2, quality: str = "fast") -> dict:
    """Synthetic AbsRel and temporal error per configuration at ``lookahead``, and the gaps to ``standard``."""
    from bench.support.synthetic_depth import abs_rel, make_clip, temporal_error

    out = {}
    for name, (rung, snip_len) in _configs().items():
        plan = rung_plan(rung, snip_len)
        clip = make_clip(num_frames, *size, length=snip_len, frame_indices=live_snippets(plan, num_frames))
        merged = replay(clip, plan, lookahead, quality)
        out[name] = {"abs_rel": round(abs_rel(merged, clip.truth), 5),
                     "temporal_error": round(temporal_error(merged, clip.truth), 5),
                     "frames_out": int(merged.shape[0]), "finite": bool(torch.isfinite(merged).all())}
    base = out[DEFAULT]
    for entry in out.values():
        entry["abs_rel_gap_points_vs_standard"] = round(100 * (entry["abs_rel"] - base["abs_rel"]), 3)
        entry["temporal_ratio_vs_standard"] = round(entry["temporal_error"] / base["temporal_error"], 3)
    return out


def cpu_seconds(res: int = 128, rounds: int = 1) -> dict:
    """CPU seconds per output frame of each rung's model steps (module docstring), median over ``rounds``."""
    from diffusers import AutoencoderTiny

    from bench.models import build_random_sd2_model
    from pipeline.tiny_decoder import TinyVaeDecoder
    from pipeline.tiny_encoder import TinyVaeEncoder
    from stream.model.rolling_depth_steps import RollingDepthSteps

    model = build_random_sd2_model()
    torch.manual_seed(0)
    taesd = AutoencoderTiny().eval().requires_grad_(False)
    tiny = {"encoder": TinyVaeEncoder(taesd, "tiny (random)", True), "decoder": TinyVaeDecoder(taesd, "tiny (random)", True)}
    frame = torch.randint(0, 256, (res * 3 // 4, res, 3), generator=torch.Generator().manual_seed(0), dtype=torch.uint8).numpy()
    runs = {}
    for name, rung in SPEEDS.items():
        variant = model
        if rung.encoder == "tiny" or rung.decoder == "tiny":
            import dataclasses

            variant = dataclasses.replace(model, encoder=tiny["encoder"] if rung.encoder == "tiny" else model.encoder,
                                          decoder=tiny["decoder"] if rung.decoder == "tiny" else model.decoder)
        steps = RollingDepthSteps(variant, res, seed=0)
        _, latent = steps.encode(frame)
        runs[name] = (rung_plan(rung, rung.snip_len or 3), steps, latent)
    seconds = {name: [] for name in runs}
    for r in range(rounds + 1):  # the first round warms up
        for name, (plan, steps, latent) in runs.items():
            period = math.lcm(*plan.strides)
            first = plan.span + 10
            cpu = time.process_time()
            for t in range(first, first + period):
                steps.encode(frame)
                snippets = plan.snippets_ending_at(t)
                merged = [still_merged(s, 2, plan.snip_len, covered_through=plan.covered_before(t)) for s in snippets]
                if snippets:  # a strided tick may run none, as in the snippet stage
                    steps.predict([[latent] * len(s) for s in snippets], merged)
            if r:
                seconds[name].append((time.process_time() - cpu) / period)
        log(f"cpu round {r} done" + (" (warm-up)" if not r else ""))
    return {"model": "full-size random SD2-shaped model, TAESD-shaped random tiny encoder/decoder", "res": res,
            "lookahead": 2, "threads": torch.get_num_threads(),
            "cpu_s_per_output_frame": {name: round(float(np.median(v)), 3) for name, v in seconds.items()}}


def targets(costs: dict, accuracy: dict | None) -> dict:
    met = {
        f"cheapest_{CHEAPEST}_tflop_le_2.0": costs[CHEAPEST]["lookahead_2"]["tflop_384px"] <= TARGETS["cheapest_tflop_le"],
        f"middle_{MIDDLE}_full_decoder_tflop_le_6.5": costs[MIDDLE]["lookahead_2"]["tflop_384px"] <= TARGETS["middle_full_decoder_tflop_le"],
    }
    if accuracy:
        met[f"middle_{MIDDLE}_abs_rel_within_0.5_points"] = (
            accuracy[MIDDLE]["abs_rel_gap_points_vs_standard"] <= TARGETS["middle_abs_rel_gap_points_le"])
        met[f"middle_{MIDDLE}_temporal_within_1.2x"] = accuracy[MIDDLE]["temporal_ratio_vs_standard"] <= TARGETS["middle_temporal_ratio_le"]
    return met


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.rungs", description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=100, help="frames of the synthetic clip")
    parser.add_argument("--size", default="96x128", help="synthetic frame size HxW")
    parser.add_argument("--cpu-seconds", action="store_true", help="also time each rung on the full-size random model")
    parser.add_argument("--cpu-res", type=int, default=128, help="resolution of the CPU timing")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    started = time.perf_counter()
    log("counting FLOPs on the meta device (SD2 and TAESD shapes, 384x384 px)")
    flops = flops_per_call(384)
    costs = rung_costs(flops)
    log("replaying the synthetic clip per rung")
    height, width = (int(v) for v in args.size.lower().split("x"))
    accuracy = rung_accuracy(args.frames, (height, width))
    report = {"note": "counts and FLOPs are exact for the plans; synthetic accuracy models snippet noise and outliers "
                      "only (not the tiny encoder/decoder): judge rungs on real footage with rdstream dev evaluate",
              "gflop_per_call_384px": {k: round(v, 1) for k, v in flops.items()},
              "costs_per_output_frame": costs,
              "synthetic_lookahead_2": {"frames": args.frames, "size": [height, width], "rungs": accuracy},
              "targets_met": targets(costs, accuracy),
              **({"cpu": cpu_seconds(args.cpu_res)} if args.cpu_seconds else {}),
              "total_seconds": round(time.perf_counter() - started, 1)}
    json.dump(report, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
