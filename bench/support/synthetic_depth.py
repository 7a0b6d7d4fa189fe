"""Synthetic video depth with ground truth, for co-alignment tests and benchmarks.

The truth is the inverse depth of a moving scene, float32 ``[N, H, W]`` in about ``[0.2, 1.2]``
(positive, larger = nearer): a tilted ground plane under a slowly panning camera plus a few rounded
objects that move across the frame. A snippet is the truth of its frames mapped by its own random
scale and shift (what a RollingDepth snippet's affine-invariant output looks like), plus Gaussian
pixel noise and, in some snippets, an outlier blob: a region whose value is badly wrong in all L
frames of that snippet (the kind of error a single model pass makes).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from pipeline.depth_metrics import abs_rel, affine_fit, temporal_error  # noqa: F401  (the benchmarks' metrics)
from pipeline.snippets import SnippetPlan, snippet_frames


@dataclass(frozen=True)
class SyntheticClip:
    """Ground truth and snippets.

    Attributes:
        truth: float32 ``[N, H, W]``, positive inverse depth.
        depths: K float32 tensors ``[L, H, W]``, the snippets.
        frame_indices: K frame tuples.
        scales, shifts: float64 ``[K]``, the maps applied: ``snippet = scale * truth + shift + noise``.
    """

    truth: torch.Tensor
    depths: list[torch.Tensor]
    frame_indices: list[tuple[int, ...]]
    scales: torch.Tensor
    shifts: torch.Tensor


def moving_scene(num_frames: int, height: int, width: int, seed: int = 0) -> torch.Tensor:
    """Inverse depth of a moving scene: float32 ``[N, H, W]``, values in about ``[0.2, 1.2]``."""
    return scene_frames(range(num_frames), height, width, seed, period=max(num_frames, 60))


def scene_frames(frames, height: int, width: int, seed: int = 0, period: int = 100) -> torch.Tensor:
    """Frames ``frames`` of the moving scene, float32 ``[len(frames), H, W]``; any frame can be
    computed on its own, so long streams need no memory for the whole clip. ``period``: frames of
    one camera-pan cycle."""
    gen = torch.Generator().manual_seed(seed)
    t = torch.as_tensor(list(frames), dtype=torch.float32)[:, None, None]
    y = torch.linspace(0.0, 1.0, height)[None, :, None]
    x = torch.linspace(0.0, 1.0, width)[None, None, :]
    pan = 0.15 * torch.sin(2 * math.pi * t / period)  # slow camera pan
    ground = 0.25 + 0.45 * y + 0.1 * torch.sin(2 * math.pi * (x + pan) * 1.5) * y
    scene = ground.expand(t.shape[0], height, width).clone()
    for _ in range(4):
        cx, cy, r = torch.rand(3, generator=gen).tolist()
        speed = (torch.rand(2, generator=gen) - 0.5) * 0.01
        near = 0.3 + 0.4 * float(torch.rand(1, generator=gen))
        px = (cx + speed[0] * t) % 1.2 - 0.1
        py = 0.3 + 0.6 * cy + 0.1 * torch.sin(speed[1] * 30 * t)
        radius = 0.08 + 0.12 * r
        dist2 = ((x - px) ** 2 + (y - py) ** 2) / radius**2
        bump = near * torch.clamp(1.0 - dist2, min=0.0).sqrt()  # a rounded object, nearer at its centre
        scene = torch.maximum(scene, ground + bump)
    return scene


@dataclass(frozen=True)
class SnippetNoise:
    """How a synthetic snippet departs from the truth (see ``make_clip``)."""

    noise: float = 0.01
    outlier_fraction: float = 0.2


def synthetic_snippet(
    truth: torch.Tensor, frames: tuple[int, ...], noise: SnippetNoise, seed: int
) -> tuple[torch.Tensor, float, float]:
    """One snippet of the truth frames ``truth [L, H, W]`` covering ``frames``:
    ``(depth [L, H, W], scale, shift)``, drawn deterministically from ``seed`` and ``frames``."""
    gen = torch.Generator().manual_seed(seed * 1_000_003 + frames[0] * 7919 + frames[-1])
    scale = math.exp(math.log(0.5) + (math.log(2.0) - math.log(0.5)) * float(torch.rand(1, generator=gen)))
    shift = float(torch.rand(1, generator=gen)) - 0.5
    height, width = truth.shape[1:]
    wrong = torch.zeros(height, width)
    if float(torch.rand(1, generator=gen)) < noise.outlier_fraction:
        cy, cx = float(torch.rand(1, generator=gen)) * height, float(torch.rand(1, generator=gen)) * width
        radius = (0.05 + 0.1 * float(torch.rand(1, generator=gen))) * min(height, width)
        sign = 1.0 if float(torch.rand(1, generator=gen)) < 0.5 else -1.0
        size = 0.3 + 0.3 * float(torch.rand(1, generator=gen))
        y = torch.arange(height, dtype=torch.float32)[:, None]
        x = torch.arange(width, dtype=torch.float32)[None, :]
        wrong = sign * size * ((y - cy) ** 2 + (x - cx) ** 2 <= radius**2).float()
    noisy = truth + wrong + noise.noise * torch.randn(truth.shape, generator=gen)
    return (noisy * scale + shift).float(), scale, shift


def make_clip(
    num_frames: int = 100,
    height: int = 96,
    width: int = 128,
    dilations=(1, 25),
    length: int = 3,
    noise: float = 0.01,
    outlier_fraction: float = 0.2,
    seed: int = 0,
    frame_indices: list[tuple[int, ...]] | None = None,
) -> SyntheticClip:
    """A synthetic clip: truth plus snippets with random scale in ``[0.5, 2]`` (log-uniform), shift in
    ``[-0.5, 0.5]``, Gaussian noise of std ``noise`` (relative to the truth's range) and an outlier
    blob (value off by 0.3 to 0.6 of the range) in ``outlier_fraction`` of the snippets.
    ``frame_indices`` overrides the offline plan."""
    truth = moving_scene(num_frames, height, width, seed)
    plan = frame_indices if frame_indices is not None else snippet_frames(num_frames, dilations, length)
    spec = SnippetNoise(noise, outlier_fraction)
    depths, scales, shifts = [], [], []
    for frames in plan:
        depth, scale, shift = synthetic_snippet(truth[list(frames)], tuple(frames), spec, seed)
        depths.append(depth)
        scales.append(scale)
        shifts.append(shift)
    return SyntheticClip(
        truth, depths, [tuple(f) for f in plan], torch.tensor(scales, dtype=torch.float64), torch.tensor(shifts, dtype=torch.float64)
    )


def stream_frames(t: int, dilations=(1, 25), length: int = 3) -> list[tuple[int, ...]]:
    """Snippets a live node runs when frame t arrives: one per dilation that fits, ending at t."""
    return SnippetPlan(length, tuple(dilations)).snippets_ending_at(t)


def cheap_fit_snippet(depth: torch.Tensor, frames: tuple[int, ...], lookahead: int, stride: int, pool: int = 2,
                      merged: tuple[bool, ...] | None = None):
    """A snippet as the node's cheap fit path hands it over: full depth only for the frames the
    aligner will still merge; the others' fit samples come from the snippet ``pool``x average-pooled
    (what decoding a pooled latent approximates) and sampled bilinearly, exactly as
    ``RollingDepthSteps`` samples its coarse decode. ``merged``: the flags when the caller computed
    them (strided plans); default ``still_merged`` at stride 1. Returns a ``SnippetDepth``."""
    import torch.nn.functional as F

    from pipeline.coalign.fit_grid import fit_grid
    from pipeline.coalign.snippet_depth import SnippetDepth, still_merged

    merged = merged if merged is not None else still_merged(frames, lookahead, len(frames))
    keep = torch.tensor(merged)
    grid = fit_grid(depth.shape[1], depth.shape[2], stride)
    fit = grid.take(depth).float()
    if not all(merged):
        coarse = F.avg_pool2d(depth[~keep][:, None], pool, ceil_mode=True)[:, 0]
        fit[~keep] = grid.sample(coarse, pool, scale=1)  # pooled per pixel: a "latent" is one pixel
    return SnippetDepth(depth[keep].clone(), merged, fit)


def align_stream(depths_by_frames: dict, num_frames: int, dilations, lookahead: int, quality: str = "fast",
                 fit_path: str = "full") -> torch.Tensor:
    """Replay a clip's snippets as a live node would (one per dilation ending at each new frame)
    through an ``OnlineAligner``; returns the emitted depth ``[num_frames, H, W]`` (flushed at the end).

    depths_by_frames: snippet depth ``[3, H, W]`` keyed by its frame-index tuple.
    fit_path: ``full`` = every frame at full resolution (the old path); ``half`` = frames the aligner
        no longer merges reach it only as fit samples of their 2x pooled depth (``cheap_fit_snippet``).
    """
    from pipeline.coalign import OnlineAligner

    aligner = OnlineAligner.for_plan(SnippetPlan(3, tuple(dilations)), lookahead, quality)
    out = {}
    for t in range(num_frames):
        for frames in stream_frames(t, dilations):
            depth = depths_by_frames[frames]
            if fit_path == "half":
                depth = cheap_fit_snippet(depth, frames, lookahead, aligner.fit_stride)
            aligner.push(depth, frames)
        for frame in aligner.ready_frames():
            out[frame] = aligner.emit(frame)
    out.update(dict(aligner.flush()))
    return torch.from_numpy(np.stack([out[f] for f in range(num_frames)]))
