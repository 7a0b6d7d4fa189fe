"""``rdstream dev compare-decoders``: depth with another decoder (the tiny one) against the full VAE decoder.

Steps: check the options and resolve the decoder (before the model loads) -> read the first
frames of the clip -> encode them and run every snippet (preset ``fast``'s dilations 1 and 25) once
-> decode the same depth latents with each decoder, timed -> co-align each set the same way
(exact, balanced) -> compare. Prints one JSON document:

- ``abs_rel``: AbsRel of the other decoder's depth against the full decoder's, after one global
  affine fit; both are the normalised inverse depth mapped from [-1, 1] to [0.1, 1] (AbsRel
  divides by the reference, so its far end is kept off zero).
- ``temporal_error``: the frame-to-frame error of the same pair (``pipeline.depth_metrics``).
- ``decoders``: seconds per decoded frame and frames per second of each decoder.
- ``fit_path_half_error``: the live node's cheap fit path with the full decoder: fit samples taken
  from the decode of the 2x pooled latent against the same samples of the full-resolution decode,
  mean absolute difference over the mean absolute deviation of the latter (0 = identical).

Only meaningful with the real weights: with a random checkpoint or a random decoder the numbers
measure nothing about depth, and the document says so.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass

import numpy as np
import torch

from pipeline.errors import BadInputError
from pipeline.presets import get_preset

# The snippets of the offline default (preset fast): the decoders are compared on what users run.
_FAST = get_preset("fast")
DILATIONS, SNIP_LEN = _FAST.dilations, _FAST.snip_len


@dataclass
class CompareOptions:
    """The command line of ``rdstream dev compare-decoders``."""

    clip: str
    checkpoint: str
    decoder: str = "tiny"
    frame_count: int = 30
    res: int = 384
    device: str = "auto"
    dtype: str | None = None


def _to_unit_interval(depth: torch.Tensor) -> torch.Tensor:
    """[-1, 1] normalised inverse depth -> [0.1, 1] (AbsRel needs a positive reference)."""
    return (depth.double() + 1.0) / 2.0 * 0.9 + 0.1


def _timed_decode(model, latents: torch.Tensor, decoder) -> tuple[torch.Tensor, float]:
    from pipeline.inference import decode_depth
    from pipeline.offline import synchronize

    decode_depth(model, latents[:1], 1, decoder=decoder)  # warm-up: first-call set-up is not decoding speed
    synchronize(model.device)
    start = time.perf_counter()
    depth = decode_depth(model, latents, 4, decoder=decoder)
    synchronize(model.device)
    return depth.cpu(), time.perf_counter() - start


@torch.no_grad()
def compare_decoders(model, other, frames: np.ndarray, res: int) -> dict:
    """Depth latents of every snippet of ``frames`` (uint8 [N, H, W, 3]) decoded by ``model.decoder``
    and by ``other``; returns the comparison (module docstring)."""
    from pipeline.coalign import align_snippets, normalize_to_unit_range
    from pipeline.depth_metrics import abs_rel, temporal_error
    from pipeline.inference import encode_rgb, make_shared_noise, predict_snippets, prepare_frames_on
    from pipeline.preprocess import processing_size
    from pipeline.snippets import plan_snippets

    num_frames = frames.shape[0]
    plans = plan_snippets(num_frames, DILATIONS, SNIP_LEN, cap=True)
    size = processing_size(frames.shape[1], frames.shape[2], res)
    noise = make_shared_noise(model, (size[0] // model.vae_scale, size[1] // model.vae_scale), seed=0)
    rgb_latents = torch.cat([encode_rgb(model, prepare_frames_on(model.device, frames[i : i + 4], size))
                             for i in range(0, num_frames, 4)])
    indices = [f for plan in plans for f in plan.frames]
    latents = torch.cat([predict_snippets(model, rgb_latents[torch.tensor(indices[i : i + 4])], noise).flatten(0, 1)
                         for i in range(0, len(indices), 4)])
    results, merged = {}, {}
    for name, decoder in (("full", model.decoder), (other.name, other)):
        depth, seconds = _timed_decode(model, latents, decoder)
        snippets = list(depth.unflatten(0, (len(indices), SNIP_LEN)))
        aligned = align_snippets(snippets, indices, num_frames, method="exact", quality="balanced")
        merged[name] = _to_unit_interval(normalize_to_unit_range(aligned.depth.float()))
        results[name] = {"seconds_per_frame": round(seconds / depth.shape[0], 5),
                         "frames_per_second": round(depth.shape[0] / seconds, 2)}
    reference, candidate = merged["full"], merged[other.name]
    return {
        "fit_path_half_error": round(fit_path_error(model, latents), 5),
        "frames": num_frames,
        "size": list(size),
        "decoded_frames": len(indices) * SNIP_LEN,
        "abs_rel": round(abs_rel(candidate, reference), 5),
        "temporal_error": round(temporal_error(candidate, reference), 5),
        "decoders": results,
        "speedup": round(results["full"]["seconds_per_frame"] / results[other.name]["seconds_per_frame"], 2),
    }


@torch.no_grad()
def fit_path_error(model, latents: torch.Tensor) -> float:
    """Fit samples of the 2x pooled decode against those of the full decode (module docstring)."""
    from pipeline.coalign.fit_grid import fit_grid
    from pipeline.coalign.quality import online_settings
    from pipeline.inference import decode_depth

    full = decode_depth(model, latents, 4)
    grid = fit_grid(full.shape[-2], full.shape[-1], online_settings("fast").stride)
    # float64 only on the host: MPS has no float64 (the samples are small, the copy is cheap)
    reference = grid.take(full).float().cpu().double()
    cheap = grid.sample(decode_depth(model, latents, 4, pool=2), 2).cpu().double()
    spread = (reference - reference.mean(dim=1, keepdim=True)).abs().mean()
    return float((cheap - reference).abs().mean() / spread.clamp_min(1e-12))


def run_compare(opts: CompareOptions) -> int:
    """Check, load, compare, print the JSON document; returns the exit code (0)."""
    from io_adapters.video_file import iter_video_frames, probe_video
    from pipeline.checkpoint import choose_dtype, load_rolling_depth, resolve_device
    from pipeline.preprocess import check_res
    from pipeline.tiny_decoder import load_decoder, resolve_decoder

    # 1. Everything that needs no model.
    if opts.frame_count < SNIP_LEN:
        raise BadInputError(f"--frame-count {opts.frame_count}: needs at least {SNIP_LEN} frames")
    check_res(opts.res)
    if opts.decoder == "full":
        raise BadInputError("--decoder full: compare the full decoder with another one: tiny, a folder or a hub id")
    probe_video(opts.clip)
    choice = resolve_decoder(opts.decoder)
    device = resolve_device(opts.device)
    dtype = choose_dtype(opts.dtype, "fp16", device)
    # 2. The model (with its full decoder) and the other decoder.
    model = load_rolling_depth(opts.checkpoint, device, dtype)
    other = load_decoder(choice, model.vae, model.vae_scale, device, dtype)
    frames = np.stack(list(iter_video_frames(opts.clip, 0, opts.frame_count)))
    if frames.shape[0] < SNIP_LEN:
        raise BadInputError(f"{opts.clip}: has {frames.shape[0]} frames, needs at least {SNIP_LEN}")
    # 3. Compare and print.
    report = {"clip": opts.clip, "checkpoint": opts.checkpoint, "decoder": opts.decoder, "device": device.type,
              "dtype": str(dtype).removeprefix("torch."), **compare_decoders(model, other, frames, opts.res)}
    if model.is_tiny or other.is_random:
        report["note"] = ("random weights (tiny test checkpoint or random decoder): these numbers say nothing "
                          "about depth quality; run this with the real checkpoint and decoder")
        print(f"rdstream: {report['note']}", file=sys.stderr)
    json.dump(report, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0
