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

import torch


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
    gen = torch.Generator().manual_seed(seed)
    t = torch.arange(num_frames, dtype=torch.float32)[:, None, None]
    y = torch.linspace(0.0, 1.0, height)[None, :, None]
    x = torch.linspace(0.0, 1.0, width)[None, None, :]
    pan = 0.15 * torch.sin(2 * math.pi * t / max(num_frames, 60))  # slow camera pan
    ground = 0.25 + 0.45 * y + 0.1 * torch.sin(2 * math.pi * (x + pan) * 1.5) * y
    scene = ground.expand(num_frames, height, width).clone()
    for _ in range(4):
        cx, cy, r = torch.rand(3, generator=gen).tolist()
        speed = (torch.rand(2, generator=gen) - 0.5) * 0.01
        near = 0.3 + 0.4 * float(torch.rand(1, generator=gen))
        px = (cx + speed[0] * t) % 1.2 - 0.1
        py = 0.3 + 0.6 * cy + speed[1] * t * 0.3
        radius = 0.08 + 0.12 * r
        dist2 = ((x - px) ** 2 + (y - py) ** 2 * (height / width) ** -2 * (height / width) ** 2) / radius**2
        bump = near * torch.clamp(1.0 - dist2, min=0.0).sqrt()  # a rounded object, nearer at its centre
        scene = torch.maximum(scene, ground + bump)
    return scene


def snippet_frames(num_frames: int, dilations=(1, 25), length: int = 3) -> list[tuple[int, ...]]:
    """Offline snippet plan of SPEC.md s.4: every start frame, dilations capped to ``N // L - 1``."""
    cap = max(num_frames // length - 1, 1)
    plan = []
    for dilation in dict.fromkeys(min(d, cap) for d in dilations):
        for start in range(num_frames - (length - 1) * dilation):
            plan.append(tuple(start + i * dilation for i in range(length)))
    return plan


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
    gen = torch.Generator().manual_seed(seed + 1)
    count = len(plan)
    scales = torch.exp(torch.empty(count, dtype=torch.float64).uniform_(math.log(0.5), math.log(2.0), generator=gen))
    shifts = torch.empty(count, dtype=torch.float64).uniform_(-0.5, 0.5, generator=gen)
    y = torch.arange(height, dtype=torch.float32)[:, None]
    x = torch.arange(width, dtype=torch.float32)[None, :]
    depths = []
    for k, frames in enumerate(plan):
        clean = truth[list(frames)]
        wrong = torch.zeros_like(clean[0])
        if float(torch.rand(1, generator=gen)) < outlier_fraction:
            cy, cx = float(torch.rand(1, generator=gen)) * height, float(torch.rand(1, generator=gen)) * width
            radius = (0.05 + 0.1 * float(torch.rand(1, generator=gen))) * min(height, width)
            sign = 1.0 if float(torch.rand(1, generator=gen)) < 0.5 else -1.0
            size = 0.3 + 0.3 * float(torch.rand(1, generator=gen))
            wrong = sign * size * ((y - cy) ** 2 + (x - cx) ** 2 <= radius**2).float()
        noisy = clean + wrong + noise * torch.randn(clean.shape, generator=gen)
        depths.append((noisy * float(scales[k]) + float(shifts[k])).float())
    return SyntheticClip(truth, depths, list(plan), scales, shifts)


def affine_fit(prediction: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """``prediction`` mapped by the one global scale and shift that best fit ``truth`` (least squares)."""
    p = prediction.double().reshape(-1)
    g = truth.double().reshape(-1)
    design = torch.stack([p, torch.ones_like(p)], 1)
    coef = torch.linalg.lstsq(design, g[:, None]).solution[:, 0]
    return (prediction.double() * coef[0] + coef[1]).to(truth.dtype)


def abs_rel(prediction: torch.Tensor, truth: torch.Tensor) -> float:
    """AbsRel after one global affine fit: ``mean |p' - g| / g`` over all frames and pixels."""
    fitted = affine_fit(prediction, truth).double()
    g = truth.double()
    return float(((fitted - g).abs() / g).mean())


def temporal_error(prediction: torch.Tensor, truth: torch.Tensor) -> float:
    """Frame-to-frame error after one global affine fit: ``mean |dp - dg| / mean(g)``, d = t minus t-1."""
    fitted = affine_fit(prediction, truth).double()
    g = truth.double()
    return float(((fitted[1:] - fitted[:-1]) - (g[1:] - g[:-1])).abs().mean() / g.mean())
