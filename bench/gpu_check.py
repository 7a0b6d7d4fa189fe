"""The Python side of ``bench/gpu_check.sh``: each measuring step writes its JSON as soon as it has
a figure, and ``summary`` joins what the steps left into ``gpu_check.json``.

    python -m bench.gpu_check machine OUT      # GPU, torch, CUDA, cuDNN; fp16/bf16 matmul TFLOP/s -> machine.json
    python -m bench.gpu_check eager OUT        # 384 px 16:9, every --speed rung, both decoders    -> eager.json
    python -m bench.gpu_check compiled OUT     # the default and the cheapest rung, --compile      -> compiled.json
    python -m bench.gpu_check summary OUT      # tests.json from tests.log, then gpu_check.json and table.md

Figures per config (``bench.gpu_timing.measure``; full-size random model, fp16, lookahead 2):
throughput fps (the benchmark's pipelined order) and ``node_order_fps`` (the node's own encode and
snippet stages), latency p50/p95, GPU ms per stage (CUDA events), peak memory; the summary adds
TFLOP per output frame (``bench.flops`` at the processing size), TFLOP/s achieved and its share of
the matmul peak measured by ``machine``. A config that did not finish is "not measured" with why.
``--device cpu --quick`` runs the same code with the tiny random checkpoint (the tests).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import sys
import tempfile
import time
from pathlib import Path

RES, ASPECT, LOOKAHEAD = 384, "16:9", 2
DILATIONS = (1, 25)
#: Step name -> (rung, decoder) per config, the most telling first (a step may be cut short).
EAGER = (("standard", "full"), ("lite", "tiny"), ("standard", "tiny"), ("pair", "full"), ("stride2", "full"),
         ("pair", "tiny"), ("stride2", "tiny"))
COMPILED = (("lite", "tiny"), ("standard", "full"))  # lite first: its compiles are the short ones
GOALS_FPS = {"standard/full": 30, "lite/tiny": 80}
#: The measuring steps of gpu_check.sh and the JSON file each writes.
STEP_FILES = {"machine": "machine.json", "eager": "eager.json", "compiled": "compiled.json", "rig": "rig.json"}


def log(message: str) -> None:
    print(f"[bench.gpu_check] {message}", file=sys.stderr, flush=True)


def write_json(path: Path, data: dict) -> None:
    """Replace ``path`` at once (a step killed mid-write leaves the previous version, never half a file)."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)


def configs(step: str, res: int = RES) -> list:
    from bench.gpu_timing import Config

    pairs = EAGER if step == "eager" else COMPILED
    return [Config(res, ASPECT, decoder, LOOKAHEAD, step == "compiled", rung=rung) for rung, decoder in pairs]


# --------------------------------------------------------------------------- machine
def _matmul_tflops(dtype, size: int = 8192, reps: int = 20) -> float:
    import torch

    a = torch.randn(size, size, device="cuda", dtype=dtype)
    b = torch.randn(size, size, device="cuda", dtype=dtype)
    for _ in range(3):
        a @ b
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(reps):
        a @ b
    end.record()
    end.synchronize()
    return 2 * size**3 * reps / (start.elapsed_time(end) / 1000) / 1e12


def machine(out: Path, device: str) -> int:
    import torch

    info = {"python": platform.python_version(), "torch": torch.__version__, "cuda": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None}
    if device == "cuda":
        if not torch.cuda.is_available():
            print("gpu_check: torch sees no CUDA GPU here (torch.cuda.is_available() is False)", file=sys.stderr)
            return 1
        props = torch.cuda.get_device_properties(0)
        info.update(gpu=props.name, gpu_memory_gib=round(props.total_memory / 2**30, 1),
                    compute_capability=f"{props.major}.{props.minor}", multiprocessors=props.multi_processor_count)
        info["matmul_tflops_measured"] = {"fp16": round(_matmul_tflops(torch.float16), 1),
                                          "bf16": round(_matmul_tflops(torch.bfloat16), 1)}
    write_json(out / STEP_FILES["machine"], info)
    print(json.dumps(info))
    return 0


# --------------------------------------------------------------------------- eager / compiled figures
def _models(device: str, quick: bool, folder: str):
    """(model, tiny encoder, tiny decoder): the full-size random model in fp16 with TAESD-shaped random
    tiny halves, or with --quick the tiny random checkpoint (fp32) and its tiny halves."""
    import torch
    from diffusers import AutoencoderTiny

    from bench.models import build_random_sd2_model, load_tiny_model
    from pipeline.tiny_decoder import TinyVaeDecoder
    from pipeline.tiny_encoder import TinyVaeEncoder

    if quick:
        model = load_tiny_model(Path(folder) / "ckpt", device)
        taesd = AutoencoderTiny(encoder_block_out_channels=(8, 8, 8, 8),
                                decoder_block_out_channels=(8, 8, 8, 8), num_encoder_blocks=(1, 1, 1, 1),
                                num_decoder_blocks=(1, 1, 1, 1))
    else:
        from pipeline.device import configure_backends

        configure_backends(torch.device(device), torch.float16)
        model = build_random_sd2_model(device, torch.float16)
        torch.manual_seed(0)
        taesd = AutoencoderTiny()
    taesd = taesd.to(device=model.device, dtype=model.dtype).eval().requires_grad_(False)
    return (model, TinyVaeEncoder(taesd, "tiny (random)", True),
            TinyVaeDecoder(taesd, "tiny (TAESD shapes, random weights)", is_random=True))


def figures(step: str, out: Path, device: str, quick: bool) -> int:
    import torch

    import bench.gpu_timing as gpu_timing
    from pipeline.snippets import SnippetPlan

    res = 64 if quick else RES
    dilations = (1, 3) if quick else DILATIONS
    if quick:  # a small input keeps the CPU's resize quick; the measurement is the same code
        gpu_timing.INPUTS = {"16:9": (72, 128), "4:3": (96, 128)}
    path = out / STEP_FILES[step]
    planned = configs(step, res)
    report = {"step": step, "device": device, "dtype": "fp32" if quick else "fp16", "res": res, "aspect": ASPECT,
              "lookahead": LOOKAHEAD, "dilations": list(dilations), "torch": torch.__version__,
              "model": "tiny random checkpoint" if quick else "full-size random SD2-shaped model (speed only)",
              "planned": [c.name for c in planned], "configs": {}, "started": time.strftime("%H:%M:%S")}
    write_json(path, report)
    counts = dict(latency_frames=2, throughput_frames=4, node_frames=4) if quick else \
        dict(latency_frames=10, throughput_frames=30, node_frames=0 if step == "compiled" else 20)

    def keep(name: str, entry: dict) -> None:
        report["configs"][name] = entry
        write_json(path, report)

    with tempfile.TemporaryDirectory(prefix="rdstream-gpu-check-") as folder:
        model, tiny_encoder, tiny_decoder = _models(device, quick, folder)
        results = gpu_timing.measure_all(model, tiny_decoder, planned, SnippetPlan(3, dilations), log,
                                         tiny_encoder=tiny_encoder, steady_only=True, on_entry=keep, **counts)
    report["compile_messages"] = results.get("compile_messages", [])
    report["finished"] = time.strftime("%H:%M:%S")
    write_json(path, report)
    return 0


# --------------------------------------------------------------------------- summary
TEST_LINE = re.compile(r"^(\S+::\S+)\s+(PASSED|FAILED|SKIPPED|ERROR|XFAIL|XPASS)\b")


def tests_from_log(text: str) -> dict:
    """{test id: outcome} from ``pytest -v`` output (as far as it got)."""
    return {m.group(1): m.group(2).lower() for m in map(TEST_LINE.match, text.splitlines()) if m}


def read_steps(out: Path) -> dict:
    """steps.txt lines "NAME EXIT SECONDS LIMIT" -> {name: {...}}."""
    steps = {}
    path = out / "steps.txt"
    for line in path.read_text().splitlines() if path.exists() else []:
        name, rc, seconds, limit = line.split()
        steps[name] = {"exit": int(rc), "seconds": int(seconds), "limit_s": int(limit),
                       "timed_out": int(rc) in (124, 137)}
    return steps


def not_measured(step: str, steps: dict) -> str:
    state = steps.get(step)
    if state is None:
        return f"not measured: the step '{step}' did not run"
    if state["timed_out"]:
        return f"not measured: the step '{step}' reached its {state['limit_s']} s limit first"
    if state["exit"]:
        return f"not measured: the step '{step}' failed (exit {state['exit']}; see {step}.log)"
    return f"not measured: the step '{step}' ended without it (see {step}.log)"


def _load(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _tflop(entry: dict, flops: dict | None, decoder: str) -> float | None:
    if flops is None:
        return None
    from bench.flops import tflop_per_frame

    return tflop_per_frame(entry["counts_per_frame"], flops, decoder, entry.get("plan", {}).get("encoder", "full"))


def summary(out: Path, count_flops: bool = True) -> dict:
    steps = read_steps(out)
    tests_log = out / "tests.log"
    tests = tests_from_log(tests_log.read_text(errors="replace")) if tests_log.exists() else {}
    write_json(out / "tests.json", {"outcomes": tests, "step": steps.get("tests")})
    report = {"steps": steps, "machine": _load(out / STEP_FILES["machine"]) or not_measured("machine", steps),
              "tests": {"passed": sum(v == "passed" for v in tests.values()),
                        "failed": sorted(k for k, v in tests.items() if v in ("failed", "error")),
                        "skipped": sorted(k for k, v in tests.items() if v == "skipped")}}
    peak = (report["machine"].get("matmul_tflops_measured", {}).get("fp16")
            if isinstance(report["machine"], dict) else None)
    flops = None
    size = None
    figures_ = {}
    for step in ("eager", "compiled"):
        data = _load(out / STEP_FILES[step])
        planned = data["planned"] if data else [c.name for c in configs(step)]
        done = data["configs"] if data else {}
        if done and count_flops and flops is None:
            from bench.flops import flops_per_call

            size = next(iter(done.values()))["processing_size"]
            flops = flops_per_call(size[1], size[0])
        for name in planned:
            entry = done.get(name)
            if entry is None:
                figures_[name] = not_measured(step, steps)
                continue
            decoder = name.split("/")[3]
            tflop = _tflop(entry, flops, decoder)
            row = {k: entry.get(k) for k in ("throughput_fps", "node_order_fps", "latency_p50_ms", "latency_p95_ms",
                                             "gpu_ms_per_stage", "gpu_ms_sum", "peak_gpu_mib", "counts_per_frame",
                                             "compile_and_first_frames_s", "compile_fell_back_to_eager")
                   if k in entry}
            if tflop is not None:
                row["tflop_per_frame"] = round(tflop, 3)
                row["tflops_achieved"] = round(tflop * entry["throughput_fps"], 1)
                if peak:
                    row["share_of_matmul_peak"] = round(tflop * entry["throughput_fps"] / peak, 3)
            figures_[name] = row
    report["configs"] = figures_
    report["flops_at"] = size
    rig = _load(out / STEP_FILES["rig"])
    report["rig_4_streams"] = (rig or {}).get("gpu") or not_measured("rig", steps)
    goals = {}
    for key, goal in GOALS_FPS.items():
        name = f"{RES}px/{ASPECT}/{key}/lookahead_{LOOKAHEAD}/compile"
        entry = figures_.get(name)
        fps = entry.get("throughput_fps") if isinstance(entry, dict) else None
        goals[name] = {"goal_fps": goal, "measured_fps": fps if fps is not None else entry,
                       "met": fps is not None and fps >= goal}
    report["goals"] = goals
    write_json(out / "gpu_check.json", report)
    (out / "table.md").write_text(table(report))
    return report


def table(report: dict) -> str:
    """The docs/streaming.md table rows of this run (Markdown)."""
    machine = report["machine"] if isinstance(report["machine"], dict) else {}
    lines = [f"GPU: {machine.get('gpu', '?')}, torch {machine.get('torch', '?')}, CUDA {machine.get('cuda', '?')}", "",
             "| config | fps (benchmark / node order) | latency p50 / p95 ms | GPU ms per frame | peak MiB | TFLOP/s (share of matmul peak) |",
             "|---|---|---|---|---|---|"]
    for name, row in report["configs"].items():
        if not isinstance(row, dict):
            lines.append(f"| {name} | {row} | | | | |")
            continue
        node = row.get("node_order_fps")
        node = node if isinstance(node, (int, float)) else "-"
        lines.append(f"| {name} | {row.get('throughput_fps')} / {node} | {row.get('latency_p50_ms')} / "
                     f"{row.get('latency_p95_ms')} | {row.get('gpu_ms_sum')} | {row.get('peak_gpu_mib', '-')} | "
                     f"{row.get('tflops_achieved', '-')} ({row.get('share_of_matmul_peak', '-')}) |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.gpu_check", description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=("machine", "eager", "compiled", "summary", "plan"))
    parser.add_argument("out", nargs="?", type=Path, default=None)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--quick", action="store_true", help="the tiny random checkpoint (tests on the CPU)")
    args = parser.parse_args(argv)
    if args.what == "plan":
        for step in ("eager", "compiled"):
            print(f"{step}: " + ", ".join(c.name for c in configs(step)))
        return 0
    if args.out is None:
        parser.error("OUT is needed")
    args.out.mkdir(parents=True, exist_ok=True)
    if args.what == "machine":
        return machine(args.out, args.device)
    if args.what == "summary":
        print(json.dumps(summary(args.out), indent=2))
        return 0
    return figures(args.what, args.out, args.device, args.quick)


if __name__ == "__main__":
    raise SystemExit(main())
