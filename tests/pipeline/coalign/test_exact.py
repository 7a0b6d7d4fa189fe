"""The exact (IRLS) co-alignment: recovery of the true maps, robustness, gauge."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bench.support.synthetic_depth import make_clip
from pipeline.depth_metrics import abs_rel, temporal_error
from pipeline.coalign import align_snippets, merge_snippets, objective
from pipeline.coalign.exact import solve_exact
from pipeline.coalign.quality import IrlsSettings
from pipeline.coalign.snippet_set import fit_samples, validate_snippets


def _global_affine_residual(result, clip):
    """How far the recovered maps are from ``true map followed by one global affine``."""
    low = min(float(d.min()) for d in clip.depths)
    s = result.scales.double()
    gain = s * clip.scales  # must be one constant alpha
    offset = s * (clip.shifts - low) + result.shifts.double()  # must be one constant beta
    return float(gain.std() / gain.mean().abs()), float(offset.std() / gain.mean().abs())


@pytest.mark.parametrize("quality", ["fast", "balanced", "quality"])
def test_exact_recovers_true_maps_on_noise_free_data(quality):
    clip = make_clip(num_frames=40, height=24, width=32, dilations=(1, 10), noise=0.0, outlier_fraction=0.0, seed=3)
    result = align_snippets(clip.depths, clip.frame_indices, 40, method="exact", quality=quality)
    gain_spread, offset_spread = _global_affine_residual(result, clip)
    assert gain_spread < 1e-4 and offset_spread < 1e-4
    assert abs_rel(result.depth, clip.truth) < 1e-4


def test_exact_resists_noise_and_outlier_blobs_better_than_plain_least_squares():
    clip = make_clip(num_frames=60, height=48, width=64, dilations=(1, 25), noise=0.01, outlier_fraction=0.4, seed=5)
    result = align_snippets(clip.depths, clip.frame_indices, 60, method="exact", quality="balanced")
    assert result.iterations > 1
    assert abs_rel(result.depth, clip.truth) < 0.03
    assert temporal_error(result.depth, clip.truth) < 0.03
    # a single solve is plain least squares: the outlier blobs pull it off
    snippets = validate_snippets(clip.depths, clip.frame_indices, 60)
    plain = solve_exact(fit_samples(snippets), IrlsSettings(stride=10, max_solves=1, tolerance=0.0))
    plain_depth = merge_snippets(snippets, plain.scales, plain.shifts, fit_samples(snippets).global_min)
    assert abs_rel(result.depth, clip.truth) < 0.8 * abs_rel(plain_depth, clip.truth)


def test_exact_reports_the_section5_objective_of_its_solution():
    clip = make_clip(num_frames=30, height=20, width=24, dilations=(1, 5), seed=1)
    result = align_snippets(clip.depths, clip.frame_indices, 30, method="exact")
    assert result.loss == pytest.approx(objective(clip.depths, clip.frame_indices, 30, result.scales, result.shifts), rel=1e-5)
    assert result.scales.dtype == torch.float32 and result.shifts.shape == (len(clip.depths),)
    assert result.depth.shape == (30, 20, 24) and result.depth.dtype == torch.float32


def test_exact_is_deterministic_and_device_dtype_agnostic():
    clip = make_clip(num_frames=30, height=20, width=24, dilations=(1, 5), seed=2)
    a = align_snippets(clip.depths, clip.frame_indices, 30)
    b = align_snippets([d.numpy() for d in clip.depths], clip.frame_indices, 30)
    assert torch.equal(a.scales, b.scales) and torch.equal(a.depth, b.depth)
    half = align_snippets([d.half() for d in clip.depths], clip.frame_indices, 30)
    assert np.allclose(half.scales.numpy(), a.scales.numpy(), rtol=0.05, atol=0.05)


def test_exact_fixes_the_gauge_of_each_disconnected_group():
    # frames 0-5 and 6-11 share no snippet: each group gets its own gauge, no singular system
    clip = make_clip(num_frames=12, height=16, width=16, noise=0.0, outlier_fraction=0.0, seed=4,
                     frame_indices=[(0, 1, 2), (2, 3, 4), (3, 4, 5), (6, 7, 8), (8, 9, 10), (9, 10, 11)])
    result = align_snippets(clip.depths, clip.frame_indices, 12)
    assert torch.isfinite(result.depth).all()
    first, second = slice(0, 3), slice(3, 6)
    for group in (first, second):
        gain = result.scales.double()[group] * clip.scales[group]
        assert float(gain.std() / gain.mean()) < 1e-4


def test_exact_is_more_accurate_than_adam_on_the_same_input():
    """The bench's claim in small: per-snippet shifts that Adam's 10 t^2 penalty keeps it from removing."""
    clip = make_clip(num_frames=30, height=32, width=40, dilations=(1, 8), seed=6)
    exact = align_snippets(clip.depths, clip.frame_indices, 30, method="exact")
    adam = align_snippets(clip.depths, clip.frame_indices, 30, method="adam", quality="fast", max_iter=300)
    assert abs_rel(exact.depth, clip.truth) < abs_rel(adam.depth, clip.truth)
    assert temporal_error(exact.depth, clip.truth) < temporal_error(adam.depth, clip.truth)
