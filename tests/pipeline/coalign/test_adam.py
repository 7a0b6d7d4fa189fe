"""The section-5 objective, the reference Adam solver, the merge and the final normalisation;
reading the loss every 16 steps stops where reading it every step would."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pipeline.coalign import AlignResult, align_snippets, normalize_to_unit_range, objective
from pipeline.coalign.quality import adam_early_stop


def _random_snippets(num_frames=7, size=(14, 23), seed=0):
    """Dilation 1 and 2 snippets of L=3 with random per-snippet scale and shift of one scene."""
    gen = torch.Generator().manual_seed(seed)
    scene = torch.rand(num_frames, *size, generator=gen) + 0.5
    depths, frames = [], []
    for dilation in (1, 2):
        for start in range(num_frames - 2 * dilation):
            idx = [start, start + dilation, start + 2 * dilation]
            scale = 0.5 + torch.rand(1, generator=gen).item()
            shift = torch.rand(1, generator=gen).item() - 0.5
            noise = 0.01 * torch.randn(3, *size, generator=gen)
            depths.append(scene[idx] * scale + shift + noise)
            frames.append(idx)
    return depths, frames, num_frames


def _naive_objective(depths, frames, num_frames, scales, shifts):
    """Loop-by-loop transcription of docs/method.md, section 5 (padded [slots, N, P] means, per-level regulariser)."""
    low = min(float(d.min()) for d in depths)
    fit = [(d.double() - low)[:, 2:-2:10, 2:-2:10].reshape(d.shape[0], -1) for d in depths]
    pixels = fit[0].shape[1]
    covering = {n: [] for n in range(num_frames)}
    for k, idx in enumerate(frames):
        for pos, n in enumerate(idx):
            covering[n].append((k, pos))
    # the reference pads to one slot per (dilation level, position in the snippet)
    level_length = {}
    for idx in frames:
        level_length[tuple(np.diff(idx))] = len(idx)
    slots = sum(level_length.values())

    def data_term(transform):
        total = 0.0
        for n in range(num_frames):
            preds = [[transform(scales[k] * float(fit[k][pos, p]) + shifts[k]) for p in range(pixels)] for k, pos in covering[n]]
            target = [sum(pr[p] for pr in preds) / len(preds) for p in range(pixels)]
            magnitude = sum(abs(v) for v in target) / pixels
            for pr in preds:
                total += sum(abs(pr[p] - target[p]) / magnitude for p in range(pixels))
        return total / (slots * num_frames * pixels)

    linear = data_term(lambda a: a)
    inverse = data_term(lambda a: 1.0 / max(a, 1e-3))
    levels = {}
    for k, idx in enumerate(frames):
        levels.setdefault(tuple(np.diff(idx)), []).append(k)
    reg = 0.0
    for members in levels.values():
        reg += 0.1 * sum(max(0.0, 1 - scales[k]) ** 2 for k in members) / len(members)
        reg += 10.0 * sum(shifts[k] ** 2 for k in members) / len(members)
    return linear + 1.0 * inverse + reg


def test_objective_matches_naive_transcription():
    depths, frames, n = _random_snippets()
    gen = np.random.default_rng(3)
    scales = gen.uniform(0.5, 1.5, len(depths)).tolist()
    shifts = gen.uniform(-0.3, 0.3, len(depths)).tolist()
    ours = objective(depths, frames, n, scales, shifts)
    naive = _naive_objective(depths, frames, n, scales, shifts)
    assert ours == pytest.approx(naive, rel=1e-5)
    # the clamp of the inverse term matters: push some aligned values below 1e-3
    shifts_low = [-0.4] * len(depths)
    assert objective(depths, frames, n, scales, shifts_low) == pytest.approx(
        _naive_objective(depths, frames, n, scales, shifts_low), rel=1e-5
    )


def test_objective_counts_every_snippet_slot_even_where_no_frame_fills_it():
    # N=100, L=3, dilations 1 and 25: no frame is covered by all 3 dilation-25 snippets (at most
    # 3 + 2 = 5 snippets cover a frame), but the reference's mean runs over 3 + 3 = 6 slots
    gen = torch.Generator().manual_seed(1)
    num_frames = 100
    scene = torch.rand(num_frames, 12, 12, generator=gen) + 0.5
    depths, frames = [], []
    for dilation in (1, 25):
        for start in range(num_frames - 2 * dilation):
            idx = [start, start + dilation, start + 2 * dilation]
            depths.append(scene[idx] * (0.5 + torch.rand(1, generator=gen).item()))
            frames.append(idx)
    k = len(depths)
    scales, shifts = [1.0] * k, [0.0] * k
    covering = np.zeros(num_frames, dtype=int)
    for idx in frames:
        covering[idx] += 1
    assert covering.max() == 5
    ours = objective(depths, frames, num_frames, scales, shifts)
    assert ours == pytest.approx(_naive_objective(depths, frames, num_frames, scales, shifts), rel=1e-5)


def test_adam_lowers_objective_and_reports_it():
    depths, frames, n = _random_snippets()
    result = align_snippets(depths, frames, n, method="adam", quality="fast", max_iter=150)
    assert isinstance(result, AlignResult)
    k = len(depths)
    assert result.scales.shape == (k,) and result.shifts.shape == (k,)
    assert result.scales.dtype == torch.float32 and result.depth.dtype == torch.float32
    assert result.depth.shape == (n, 14, 23)
    assert result.iterations == 150
    start = objective(depths, frames, n, [1.0] * k, [0.0] * k)
    assert result.loss < start
    assert result.loss == pytest.approx(objective(depths, frames, n, result.scales, result.shifts), rel=1e-5)
    assert result.seconds > 0


def test_adam_is_deterministic_and_accepts_fp16():
    depths, frames, n = _random_snippets(num_frames=6)
    half = [d.half() for d in depths]
    a = align_snippets(half, frames, n, method="adam", max_iter=40)
    b = align_snippets(half, frames, n, method="adam", max_iter=40)
    assert torch.equal(a.scales, b.scales) and torch.equal(a.depth, b.depth)


def test_early_stop_rule_stops_when_calm():
    # identical snippets: the loss is flat from the start, so it stops right after min_iter + patience
    scene = torch.rand(5, 12, 12) + 1.0
    depths = [scene[i : i + 3].clone() for i in range(3)]
    frames = [[i, i + 1, i + 2] for i in range(3)]
    stop = adam_early_stop("fast")
    result = align_snippets(depths, frames, 5, method="adam", quality="fast")
    assert stop.min_iter <= result.iterations < stop.max_iter


def test_quality_tables_follow_the_method_notes():  # docs/method.md, section 5
    assert adam_early_stop("fast", "cpu") == adam_early_stop("fast", "mps")
    assert (adam_early_stop("balanced").patience, adam_early_stop("balanced").min_iter) == (50, 800)
    cuda = adam_early_stop("quality", "cuda")
    assert (cuda.patience, cuda.min_iter, cuda.threshold, cuda.max_iter) == (300, 1800, 1e-7, 2000)
    assert adam_early_stop("reference").max_iter == 2000


def test_merge_is_plain_mean_of_aligned_snippets():
    depths, frames, n = _random_snippets(num_frames=6)
    result = align_snippets(depths, frames, n, method="adam", max_iter=5)
    low = min(float(d.min()) for d in depths)
    frame = 2
    preds = [
        float(result.scales[k]) * (depths[k][idx.index(frame)] - low) + float(result.shifts[k])
        for k, idx in enumerate(frames)
        if frame in idx
    ]
    torch.testing.assert_close(result.depth[frame], torch.stack(preds).mean(0))


def test_normalize_to_unit_range_is_exact():
    depth = torch.randn(4, 9, 11) * 3 + 7
    out = normalize_to_unit_range(depth)
    assert out.min().item() == -1.0 and out.max().item() == 1.0
    assert math.isclose(float(out.flatten()[5]), float((depth.flatten()[5] - depth.min()) / (depth.max() - depth.min()) * 2 - 1), rel_tol=1e-6)
    assert torch.equal(normalize_to_unit_range(torch.full((2, 5, 5), 3.0)), torch.zeros(2, 5, 5))


def test_adam_reading_the_loss_every_16_steps_stops_where_every_step_would():
    from pipeline.coalign.adam import solve_adam
    from pipeline.coalign.quality import EarlyStop
    from pipeline.coalign.snippet_set import fit_samples, validate_snippets

    torch.manual_seed(0)
    base = torch.rand(8, 24, 24)
    depths = [base[i : i + 3] * (1 + 0.1 * i) + 0.05 * i for i in range(6)]
    snippets = validate_snippets(depths, [tuple(range(i, i + 3)) for i in range(6)], 8)
    samples = fit_samples(snippets, stride=4)
    stop = EarlyStop(patience=3, min_iter=5, threshold=1e-4, max_iter=300)
    every = solve_adam(samples, stop, read_every=1)
    batched = solve_adam(samples, stop, read_every=16)
    assert every.iterations == batched.iterations < 300
    torch.testing.assert_close(every.scales, batched.scales, rtol=0, atol=0)
    torch.testing.assert_close(every.shifts, batched.shifts, rtol=0, atol=0)
