"""What one output frame of the live node costs, decoding only what reaches the output; prints ONE JSON document.

    python -m bench.live_cost                     # counts, TFLOP at 384 px, CPU seconds (full-size random model, 128 px)
    python -m bench.live_cost --quick             # the same with the tiny random checkpoint for the timing (a test)
    python -m bench.live_cost --device cuda       # also the GPU section: 384 and 512 px, fp16 (bench.gpu_timing)
    python -m bench.live_cost --device cuda --skip-cpu --compile   # GPU only, eager and compiled (bench/gpu_check.sh)

Variants, all measured in the same run on the same model: the old path (every snippet frame decoded
at full resolution: ``RollingDepthSteps(decode_everything=True)``), and the new one at lookahead 0
and 2 with the full and the tiny decoder (fit-only frames from a 2x pooled latent, the default).

- counts per output frame in steady state (both dilations active): one tick of the node's model
  steps (encode the new frame, run the snippets ending at it) with the real ``RollingDepthSteps``.
- TFLOP per output frame at 384x384 px: those counts times per-call FLOPs (``bench.flops``: the SD2
  shapes on the meta device, no weights; the tiny decoder with TAESD's shapes).
- CPU seconds per output frame: the same ticks timed with the full-size random model (SD2 shapes,
  random weights) at a small resolution, variants interleaved so machine load hits all alike.
  Model steps only (the aligner's work is milliseconds, see bench.coalign).
Random weights give no depth: counts, FLOPs and seconds are what is measured.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import time

import numpy as np
import torch

from bench.flops import flops_per_call, tflop_per_frame
from bench.support.machine import load_average
from pipeline.coalign.snippet_depth import still_merged
from pipeline.offline import synchronize
from pipeline.tiny_decoder import TinyVaeDecoder
from stream.model.rolling_depth_steps import RollingDepthSteps
from pipeline.snippets import SnippetPlan

DILATIONS = (1, 25)
SNIP_LEN = 3
#: A steady-state tick: both dilations active and every earlier frame emitted as the node would.
STEADY_TICK = (SNIP_LEN - 1) * max(DILATIONS) + 10
OLD = "old_decode_everything"
VARIANTS = (OLD, "lookahead_0/full", "lookahead_2/full", "lookahead_0/tiny", "lookahead_2/tiny")
TARGETS = {"lookahead_0/full": 0.65, "lookahead_2/full": 0.85, "lookahead_2/tiny": 0.35}


def log(message: str) -> None:
    print(f"[bench.live_cost] {message}", file=sys.stderr, flush=True)


def _variant(name: str) -> tuple[int, str, bool]:
    """(lookahead, decoder, decode_everything) of a variant name."""
    if name == OLD:
        return 0, "full", True
    lookahead, decoder = name.split("/")
    return int(lookahead.split("_")[1]), decoder, False


# --------------------------------------------------------------------------- timed steady-state ticks

class SteadyTicks:
    """Runs one steady-state tick of the node's model steps for each variant on one model."""

    def __init__(self, model, tiny_decoder, res: int, seed: int = 0) -> None:
        self.models = {"full": model, "tiny": dataclasses.replace(model, decoder=tiny_decoder)}
        self.res = res
        gen = torch.Generator().manual_seed(seed)
        self.frame = torch.randint(0, 256, (res * 3 // 4, res, 3), generator=gen, dtype=torch.uint8).numpy()
        self.steps = {}
        for name in VARIANTS:
            lookahead, decoder, everything = _variant(name)
            self.steps[name] = RollingDepthSteps(self.models[decoder], res, seed=seed, decode_everything=everything)
        # The window's latents: real encodes of the same frame (values do not change the cost).
        first = self.steps[OLD]
        display, latent = first.encode(self.frame)
        self.size = display.shape[:2]  # the processing size (H', W'), e.g. 288x384 at 384 px
        self.latents = {i: latent for i in range(STEADY_TICK + 1)}

    def tick(self, name: str) -> tuple[dict, float, float]:
        """One output frame's model work: (counts, wall s, CPU s)."""
        lookahead, _, _ = _variant(name)
        steps = self.steps[name]
        before = steps.counts.as_dict()
        snippets = SnippetPlan(SNIP_LEN, DILATIONS).snippets_ending_at(STEADY_TICK)
        merged = [still_merged(s, lookahead, SNIP_LEN) for s in snippets]
        device = steps.model.device
        synchronize(device)
        wall, cpu = time.perf_counter(), time.process_time()
        steps.encode(self.frame)
        steps.predict([[self.latents[i] for i in s] for s in snippets], merged)
        synchronize(device)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        after = steps.counts.as_dict()
        return {k: after[k] - before[k] for k in after}, wall, cpu


def time_variants(ticks: SteadyTicks, rounds: int) -> dict:
    """Counts per output frame and median seconds per output frame of each variant (first round warms up)."""
    walls = {n: [] for n in VARIANTS}
    cpus = {n: [] for n in VARIANTS}
    counts = {}
    for r in range(rounds + 1):
        for name in VARIANTS:
            counts[name], wall, cpu = ticks.tick(name)
            if r:
                walls[name].append(wall)
                cpus[name].append(cpu)
        log(f"round {r} done" + (" (warm-up)" if not r else ""))
    return {name: {"counts_per_frame": counts[name], "wall_s": round(float(np.median(walls[name])), 4),
                   "cpu_s": round(float(np.median(cpus[name])), 4)} for name in VARIANTS}


def _tiny_decoder_for(model, quick: bool, folder: str):
    """TAESD's shapes with random weights (the tiny test decoder in quick mode), on the model's device."""
    from diffusers import AutoencoderTiny

    from pipeline.tiny_decoder import load_decoder, resolve_decoder, write_tiny_decoder

    if quick:
        return load_decoder(resolve_decoder(str(write_tiny_decoder(folder))), model.vae, model.vae_scale,
                            model.device, model.dtype)
    torch.manual_seed(0)
    taesd = AutoencoderTiny().to(device=model.device, dtype=model.dtype).eval().requires_grad_(False)
    return TinyVaeDecoder(taesd, "tiny (TAESD shapes, random weights)", is_random=True)


def cpu_section(args, flops: dict, folder: str) -> dict:
    from bench.models import build_random_sd2_model, load_tiny_model

    if args.quick:
        model = load_tiny_model(os.path.join(folder, "ckpt"))
        label = "tiny random test checkpoint"
    else:
        log(f"building the full-size random model (CPU, fp32), {args.cpu_res} px")
        model = build_random_sd2_model()
        label = "full-size random SD2-shaped model"
    ticks = SteadyTicks(model, _tiny_decoder_for(model, args.quick, os.path.join(folder, "decoder")), args.cpu_res)
    results = time_variants(ticks, args.rounds)
    old = results[OLD]
    for name, entry in results.items():
        _, decoder, everything = _variant(name)
        entry["tflop_per_frame_384px"] = round(tflop_per_frame(entry["counts_per_frame"], flops,
                                                               "full" if everything else decoder), 3)
    old_tflop = old["tflop_per_frame_384px"]
    for name, entry in results.items():
        entry["tflop_ratio_vs_old"] = round(entry["tflop_per_frame_384px"] / old_tflop, 3)
        entry["cpu_s_ratio_vs_old"] = round(entry["cpu_s"] / old["cpu_s"], 3)
        entry["wall_s_ratio_vs_old"] = round(entry["wall_s"] / old["wall_s"], 3)
    return {"model": label, "res": args.cpu_res, "frame": list(ticks.size), "timed_rounds": args.rounds,
            "threads": torch.get_num_threads(), "variants": results}


def cpu_report(cpu: dict) -> dict:
    """The CPU section's entries of the JSON document: counts and TFLOP per output frame, the timings, targets."""
    variants = cpu["variants"]
    return {
        "per_output_frame": {name: {"counts": v["counts_per_frame"], "tflop_384px": v["tflop_per_frame_384px"],
                                    "tflop_ratio_vs_old": v["tflop_ratio_vs_old"]} for name, v in variants.items()},
        "cpu": cpu,
        "targets_met": {
            "full_decodes_2_at_lookahead_0": variants["lookahead_0/full"]["counts_per_frame"]["decodes_full"] == 2,
            "full_decodes_4_at_lookahead_2": variants["lookahead_2/full"]["counts_per_frame"]["decodes_full"] == 4,
            **{f"tflop_{name.replace('/', '_')}_le_{limit}x": variants[name]["tflop_ratio_vs_old"] <= limit
               for name, limit in TARGETS.items()},
            "cpu_s_lookahead_0_at_least_15pct_below_old": variants["lookahead_0/full"]["cpu_s_ratio_vs_old"] <= 0.85,
        },
    }


def gpu_configs(args) -> list:
    """The GPU section's configurations (bench.gpu_timing), the most telling first (a short GPU slot
    may end early): the first size eager, its 16:9 compiled (``--compile``; compiling takes minutes
    per shape, so only there), then the other sizes eager."""
    from bench.gpu_timing import Config

    def eager(res: int) -> list:
        return [Config(res, aspect, decoder, lookahead, False) for aspect in ("16:9", "4:3")
                for decoder in ("full", "tiny") for lookahead in (0, 2)]

    first, *others = args.gpu_res
    configs = eager(first)
    if args.compile:
        configs += [Config(first, "16:9", decoder, lookahead, True) for decoder in ("full", "tiny") for lookahead in (0, 2)]
    for res in others:
        configs += eager(res)
    if args.channels_last:
        configs += [Config(first, "16:9", decoder, 2, False, True) for decoder in ("full", "tiny")]
    return configs


def gpu_section(args, folder: str) -> dict:
    """Latency, pipelined throughput, per-stage GPU time and peak memory on ``args.device``, fp16,
    full-size random model (bench.gpu_timing)."""
    from bench.gpu_timing import measure_all
    from bench.models import build_random_sd2_model
    from pipeline.device import configure_backends

    device = torch.device(args.device)
    configure_backends(device, torch.float16)
    model = build_random_sd2_model(device, torch.float16)
    tiny = _tiny_decoder_for(model, False, folder)
    report = {"device": str(device), "dtype": "fp16", "model": "full-size random SD2-shaped model",
              "torch": torch.__version__}
    if device.type == "cuda":
        report["gpu"] = torch.cuda.get_device_name(device)
    report["configs"] = measure_all(model, tiny, gpu_configs(args), SnippetPlan(SNIP_LEN, DILATIONS), log,
                                    latency_frames=args.gpu_rounds, throughput_frames=3 * args.gpu_rounds,
                                    node_frames=2 * args.gpu_rounds)
    return report


def rungs_section(flops: dict) -> dict:
    """Counts and TFLOP per output frame at 384 px of every ``--speed`` rung (``bench.rungs``)."""
    from bench.rungs import rung_costs, targets

    costs = rung_costs(flops)
    return {"per_output_frame": costs, "targets_met": targets(costs, None)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.live_cost", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="time the tiny random checkpoint instead of the full-size model")
    parser.add_argument("--cpu-res", type=int, default=None, help="CPU timing resolution (default 128; 64 with --quick)")
    parser.add_argument("--rounds", type=int, default=2, help="timed steady-state ticks per variant (after one warm-up)")
    parser.add_argument("--device", choices=("cpu", "cuda", "mps"), default="cpu", help="cuda/mps: also fps at 384 and 512 px, fp16")
    parser.add_argument("--gpu-rounds", type=int, default=10, help="one-frame ticks per GPU config (3x as many pipelined frames)")
    parser.add_argument("--gpu-res", type=int, nargs="+", default=[384, 512], help="GPU processing sizes (longer edge)")
    parser.add_argument("--compile", action="store_true", help="GPU section: also the --compile configs (first --gpu-res, 16:9)")
    parser.add_argument("--channels-last", action="store_true", help="GPU section: also the first size, 16:9, lookahead 2, "
                        "eager, with the model's weights in channels_last (the layout is contiguous otherwise)")
    parser.add_argument("--skip-cpu", action="store_true", help="only the GPU section (and the FLOP counts): for a short GPU slot")
    parser.add_argument("--threads", type=int, default=1, help="torch threads on the CPU (default 1: on a shared "
                        "machine contended OpenMP threads spin and inflate CPU time for every variant)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    args.cpu_res = args.cpu_res or (64 if args.quick else 128)
    started = time.perf_counter()
    log("counting FLOPs on the meta device (SD2 shapes, 384x384 px)")
    flops = flops_per_call(384)
    with tempfile.TemporaryDirectory(prefix="rdstream-live-cost-") as folder:
        report = {
            "note": "random weights: the output is not depth; counts, FLOPs and seconds are what is measured",
            "dilations": list(DILATIONS), "snippet_length": SNIP_LEN, "steady_state_tick": STEADY_TICK,
            "gflop_per_call_384px": {k: round(v, 1) for k, v in flops.items()},
        }
        report["rungs"] = rungs_section(flops)
        if not args.skip_cpu:
            report.update(cpu_report(cpu_section(args, flops, folder)))
        if args.device != "cpu":
            report["gpu"] = gpu_section(args, folder)
    report["machine"] = {"cpus": os.cpu_count(), "load_average": load_average()}
    report["total_seconds"] = round(time.perf_counter() - started, 1)
    json.dump(report, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
