"""Depth accuracy after one global affine fit (depth from RollingDepth is affine-invariant).

Used by the benchmarks against synthetic ground truth and by ``rdstream dev compare-decoders``
against the full decoder's depth. ``truth`` must be positive (AbsRel divides by it).
"""

from __future__ import annotations

import torch


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
