"""Offline pipeline benchmark: per-stage seconds and counts for the tiny and the full-size model.

Run ``python -m bench.offline``. It prints ONE JSON document on stdout (progress goes to stderr):
for each model, the processing size, the per-stage seconds of ``pipeline.offline.OfflinePipeline``
(encode, snippets = UNet + decode, coalign), the time spent inside the UNet, the VAE encoder and the
VAE decoder, the counts (frames encoded, UNet frame-passes, frames decoded, co-alignment
iterations, snippets) and seconds per unit of work.

Models (both have RANDOM weights, so their output is not depth; only the timings mean something):
- ``tiny``: the tiny test checkpoint, written to a temporary folder and loaded with the real loader.
- ``sd2_random``: the full-size SD2-shaped RollingDepth model (865.9M UNet, 83.7M VAE), built in
  memory (``bench.models.build_random_sd2_model``).

The clip is FFmpeg's ``testsrc2`` pattern (via PyAV), so no file is needed. Options: ``--quick``
(tiny model, tiny clip: a few seconds), ``--skip-full``, ``--res``, ``--frames``, ``--coalign``,
``--quality``, ``--dilations``, ``--device``, ``--dtype``, ``--threads``, ``--max-vae-bs``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch

from bench.support.machine import load_average
from bench.models import SD2_UNET_PARAMS_M, SD2_VAE_PARAMS_M, build_random_sd2_model, count_parameters_m, load_tiny_model
from pipeline.checkpoint import CACHE_ENV, DTYPES, RollingDepthModel, resolve_device, resolve_dtype
from pipeline.coalign import METHODS, QUALITIES
from pipeline.errors import BadInputError, RollingDepthError
from pipeline.offline import OfflinePipeline, OfflineSettings, check_settings, synchronize
from pipeline.preprocess import processing_size
from pipeline.snippets import plan_snippets

SOURCE_SIZE = (640, 360)  # width, height of the generated test pattern (16:9, like most video)
SOURCE_RATE = 30
QUICK = dict(frames=9, res=64, dilations=(1, 25))
DEFAULT = dict(frames=12, res=128, dilations=(1, 25))
RANDOM_WEIGHTS_NOTE = "random weights: the output is not depth, only timings and counts are meaningful"


def log(message: str) -> None:
    """Progress for the person watching; stdout is kept for the JSON document."""
    print(f"[bench.offline] {message}", file=sys.stderr, flush=True)


def test_pattern_clip(num_frames: int, width: int = SOURCE_SIZE[0], height: int = SOURCE_SIZE[1]) -> np.ndarray:
    """``num_frames`` frames of FFmpeg's moving testsrc2 pattern: uint8 RGB [N, H, W, 3]."""
    import av

    # lavfi sources never end without a duration; one extra second of margin is plenty.
    duration = num_frames / SOURCE_RATE + 1
    frames = []
    with av.open(f"testsrc2=size={width}x{height}:rate={SOURCE_RATE}:duration={duration}", format="lavfi") as container:
        for frame in container.decode(video=0):
            frames.append(frame.to_ndarray(format="rgb24"))
            if len(frames) == num_frames:
                break
    return np.stack(frames)


@dataclass
class ModuleClock:
    """Wall seconds spent inside given modules, measured with forward hooks (GPU work synchronised)."""

    device: torch.device
    seconds: dict[str, float] = field(default_factory=dict)
    calls: dict[str, int] = field(default_factory=dict)

    @contextmanager
    def watching(self, modules: dict[str, torch.nn.Module]) -> Iterator[ModuleClock]:
        """Time every forward call of each named module while the context is open."""
        handles, started = [], {}

        def before(name):
            def hook(module, args):
                synchronize(self.device)
                started[name] = time.perf_counter()
            return hook

        def after(name):
            def hook(module, args, output):
                synchronize(self.device)
                self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - started.pop(name)
                self.calls[name] = self.calls.get(name, 0) + 1
            return hook

        for name, module in modules.items():
            self.seconds.setdefault(name, 0.0)
            self.calls.setdefault(name, 0)
            handles.append(module.register_forward_pre_hook(before(name)))
            handles.append(module.register_forward_hook(after(name)))
        try:
            yield self
        finally:
            for handle in handles:
                handle.remove()


@contextmanager
def private_embedding_cache(folder: str) -> Iterator[None]:
    """Point the text-embedding cache at ``folder`` so a bench run leaves nothing in the user's cache."""
    previous = os.environ.get(CACHE_ENV)
    os.environ[CACHE_ENV] = folder
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(CACHE_ENV, None)
        else:
            os.environ[CACHE_ENV] = previous


def _per(seconds: float, count: int) -> float | None:
    return float(f"{seconds / count:.4g}") if count else None  # 4 significant digits, even for milliseconds


def bench_model(name: str, model: RollingDepthModel, frames: np.ndarray, settings: OfflineSettings) -> dict:
    """Run the offline pipeline once on ``frames`` and describe what it did and how long it took."""
    num_frames = frames.shape[0]
    plans = plan_snippets(num_frames, settings.dilations, settings.snip_len, settings.cap_dilation)
    height, width = processing_size(frames.shape[1], frames.shape[2], settings.res)
    pipe = OfflinePipeline(model, settings)
    clock = ModuleClock(model.device)
    watched = {"vae_encoder": model.vae.encoder, "unet": model.unet, "vae_decoder": model.vae.decoder}
    log(f"{name}: {num_frames} frames at {width}x{height}, dilations {[p.dilation for p in plans]}, "
        f"co-alignment {settings.coalign}/{settings.quality}")
    with clock.watching(watched):
        start = time.perf_counter()
        result = pipe(frames)
        total = time.perf_counter() - start
    counts = dict(result.counts)
    seconds = {stage: round(value, 4) for stage, value in result.seconds.items()}
    seconds["total"] = round(total, 4)
    inside = {key: round(value, 4) for key, value in clock.seconds.items()}
    log(f"{name}: {total:.2f} s total ({', '.join(f'{k} {v:.2f} s' for k, v in result.seconds.items())})")
    return {
        "name": name,
        "random_weights": True,
        "weights": RANDOM_WEIGHTS_NOTE,
        "device": str(model.device),
        "dtype": str(model.dtype).removeprefix("torch."),
        "torch_threads": torch.get_num_threads(),
        "params_m": {"unet": count_parameters_m(model.unet), "vae": count_parameters_m(model.vae)},
        "resolution": {"height": height, "width": width},
        "latent": {"height": height // model.vae_scale, "width": width // model.vae_scale},
        "frames": num_frames,
        "dilations": {"requested": [p.requested for p in plans], "used": [p.dilation for p in plans]},
        "coalign": {"method": settings.coalign, "quality": settings.quality},
        "seconds": seconds,
        "module_seconds": inside,
        "module_calls": dict(clock.calls),
        "counts": counts,
        "seconds_per": {
            "encoded_frame": _per(clock.seconds["vae_encoder"], counts["frames_encoded"]),
            "unet_frame_pass": _per(clock.seconds["unet"], counts["unet_frame_passes"]),
            "decoded_frame": _per(clock.seconds["vae_decoder"], counts["frames_decoded"]),
            "snippet_stage_frame_pass": _per(result.seconds["snippets"], counts["unet_frame_passes"]),
            "coalign_iteration": _per(result.seconds["coalign"], counts["coalign_iterations"]),
        },
        "depth_range": [round(float(result.depth.min()), 4), round(float(result.depth.max()), 4)],
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.offline", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny model only, tiny clip (a few seconds; for tests)")
    parser.add_argument("--skip-full", action="store_true", help="do not run the full-size SD2-shaped model")
    parser.add_argument("--skip-tiny", action="store_true", help="do not run the tiny model")
    parser.add_argument("--res", type=int, default=None, help=f"longer edge in pixels (default {DEFAULT['res']}, quick {QUICK['res']})")
    parser.add_argument("--frames", type=int, default=None, help=f"clip length (default {DEFAULT['frames']}, quick {QUICK['frames']})")
    parser.add_argument("--dilations", type=int, nargs="+", default=None, help="snippet dilations, 1 included (default 1 25, capped)")
    parser.add_argument("--coalign", choices=METHODS, default="exact", help="co-alignment solver (default exact)")
    parser.add_argument("--quality", choices=QUALITIES, default="balanced", help="co-alignment quality (default balanced)")
    parser.add_argument("--device", default="cpu", help="auto, cpu, cuda, cuda:N or mps (default cpu)")
    parser.add_argument("--dtype", choices=tuple(DTYPES), default=None, help="model dtype (default fp32 on cpu, fp16 on a GPU)")
    parser.add_argument("--max-vae-bs", type=int, default=4, help="frames per VAE batch (default 4)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (default 0 = torch's choice)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the shared noise (default 0)")
    return parser.parse_args(argv)


def check_args(args: argparse.Namespace) -> None:
    """One message per bad value; the rest is validated by OfflineSettings' own checks."""
    if args.frames is not None and args.frames < 2:
        raise BadInputError(f"--frames {args.frames}: need at least 2 frames")
    if args.threads < 0:
        raise BadInputError(f"--threads {args.threads}: must be 0 (torch's choice) or more")
    if args.quick and args.skip_tiny:
        raise BadInputError("--quick runs only the tiny model; it cannot be combined with --skip-tiny")


def run(args: argparse.Namespace) -> dict:
    """Run the selected models and return the JSON document as a dict."""
    check_args(args)
    preset = QUICK if args.quick else DEFAULT
    num_frames = preset["frames"] if args.frames is None else args.frames
    settings = OfflineSettings(
        dilations=tuple(args.dilations or preset["dilations"]),
        res=preset["res"] if args.res is None else args.res,
        max_vae_bs=args.max_vae_bs,
        seed=args.seed,
        coalign=args.coalign,
        quality=args.quality,
    )
    device = resolve_device(args.device)
    dtype = resolve_dtype(args.dtype, device)
    check_settings(settings)  # a bad value or a clip too short fails before any model is built
    plan_snippets(num_frames, settings.dilations, settings.snip_len, settings.cap_dilation)
    if args.threads:
        torch.set_num_threads(args.threads)
    frames = test_pattern_clip(num_frames)
    load_before = load_average()
    document = {
        "benchmark": "offline",
        "notes": [
            RANDOM_WEIGHTS_NOTE,
            "cold run: one pass per model, first calls include one-time allocations",
            "wall-clock seconds; on a shared machine compare load_average before trusting small differences",
        ],
        "machine": {
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(),
            "load_average_before": load_before,
        },
        "clip": {"source": "lavfi testsrc2", "width": frames.shape[2], "height": frames.shape[1],
                 "frames": num_frames, "rate": SOURCE_RATE},
        "settings": {"res": settings.res, "dilations": list(settings.dilations), "snip_len": settings.snip_len,
                     "cap_dilation": settings.cap_dilation, "max_vae_bs": settings.max_vae_bs,
                     "coalign": settings.coalign, "quality": settings.quality, "seed": settings.seed,
                     "device": str(device), "dtype": str(dtype).removeprefix("torch."),
                     "refine_steps": settings.refine_steps},
        "models": [],
    }

    if not args.skip_tiny:
        with tempfile.TemporaryDirectory(prefix="rdstream-bench-") as tmp, private_embedding_cache(tmp):
            start = time.perf_counter()
            model = load_tiny_model(os.path.join(tmp, "checkpoint"), device=device, dtype=dtype)
            build = time.perf_counter() - start
            entry = bench_model("tiny", model, frames, settings)
            entry["build_seconds"] = round(build, 3)
            entry["build"] = "write_tiny_checkpoint + load_rolling_depth"
            document["models"].append(entry)
            del model

    if not (args.quick or args.skip_full):
        log(f"building the full-size SD2-shaped model with random weights ({str(dtype).removeprefix('torch.')}; ~3.8 GB in fp32)")
        start = time.perf_counter()
        model = build_random_sd2_model(device=device, dtype=dtype, seed=args.seed)
        build = time.perf_counter() - start
        entry = bench_model("sd2_random", model, frames, settings)
        entry["build_seconds"] = round(build, 3)
        entry["build"] = "in memory, random init (text embedding: random [1, 2, 1024])"
        entry["expected_params_m"] = {"unet": SD2_UNET_PARAMS_M, "vae": SD2_VAE_PARAMS_M}
        entry["params_match"] = entry["params_m"] == entry["expected_params_m"]
        document["models"].append(entry)
        del model

    document["machine"]["load_average_after"] = load_average()
    return document


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        document = run(args)
    except RollingDepthError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    print(json.dumps(document, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
