"""Bad input to the offline co-alignment: one clear BadInputError each, or a documented result."""

from __future__ import annotations

import pytest
import torch

from pipeline.coalign import align_snippets, normalize_to_unit_range, objective
from pipeline.errors import BadInputError


def _snippets(count=3, size=(12, 12)):
    depths = [torch.rand(3, *size) + k for k in range(count)]
    frames = [[k, k + 1, k + 2] for k in range(count)]
    return depths, frames, count + 2


@pytest.mark.parametrize("method", ["exact", "adam"])
def test_empty_snippet_list(method):
    with pytest.raises(BadInputError, match="no snippets"):
        align_snippets([], [], 5, method=method)


def test_mismatched_frame_sizes():
    depths, frames, n = _snippets()
    depths[1] = torch.rand(3, 12, 13)
    with pytest.raises(BadInputError, match="snippet 1 is 12x13 px"):
        align_snippets(depths, frames, n)


def test_wrong_rank_and_length_mismatch():
    depths, frames, n = _snippets()
    with pytest.raises(BadInputError, match=r"\[L, H, W\]"):
        align_snippets([depths[0][0]] + depths[1:], frames, n)
    with pytest.raises(BadInputError, match="3 frames but 2 frame indices"):
        align_snippets(depths, [[0, 1]] + frames[1:], n)
    with pytest.raises(BadInputError, match="frame-index lists"):
        align_snippets(depths, frames[:2], n)


def test_bad_frame_indices():
    depths, frames, n = _snippets()
    with pytest.raises(BadInputError, match="strictly increase"):
        align_snippets(depths, [[0, 2, 1]] + frames[1:], n)
    with pytest.raises(BadInputError, match="outside"):
        align_snippets(depths, frames, 4)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_values_are_rejected(bad):
    depths, frames, n = _snippets()
    depths[2][1, 3, 4] = bad
    with pytest.raises(BadInputError, match="snippet 2 contains NaN or Inf"):
        align_snippets(depths, frames, n)
    with pytest.raises(BadInputError, match="NaN or Inf"):
        objective(depths, frames, n, [1.0] * 3, [0.0] * 3)


def test_uncovered_frame():
    depths, frames, _ = _snippets()
    with pytest.raises(BadInputError, match="frames 5, 6 are covered by no snippet"):
        align_snippets(depths, frames, 7)


def test_too_small_frames_and_bad_options():
    depths, frames, n = _snippets(size=(4, 12))
    with pytest.raises(BadInputError, match="too small"):
        align_snippets(depths, frames, n)
    depths, frames, n = _snippets()
    with pytest.raises(BadInputError, match="method 'lbfgs'"):
        align_snippets(depths, frames, n, method="lbfgs")
    with pytest.raises(BadInputError, match="quality best"):
        align_snippets(depths, frames, n, quality="best")
    with pytest.raises(BadInputError, match="device_type"):
        align_snippets(depths, frames, n, method="adam", device_type="tpu")
    with pytest.raises(BadInputError, match="num_frames"):
        align_snippets(depths, frames, 0)
    with pytest.raises(BadInputError, match="max_iter"):
        align_snippets(depths, frames, n, method="adam", max_iter="many")
    with pytest.raises(BadInputError, match="need 3 scales"):
        objective(depths, frames, n, [1.0], [0.0])


@pytest.mark.parametrize("method", ["exact", "adam"])
def test_constant_snippet_keeps_scale_one_and_is_still_aligned(method):
    """Documented result: a constant snippet carries no scale information; exact holds its scale
    at 1 and fits its shift, Adam simply runs; the merge stays finite."""
    scene = torch.rand(6, 12, 12) + 1.0
    depths = [scene[0:3].clone(), torch.full((3, 12, 12), 0.7), scene[2:5] * 2.0, scene[3:6].clone()]
    frames = [[0, 1, 2], [1, 2, 3], [2, 3, 4], [3, 4, 5]]
    result = align_snippets(depths, frames, 6, method=method, max_iter=20)
    assert torch.isfinite(result.depth).all() and torch.isfinite(result.scales).all()
    if method == "exact":
        assert float(result.scales[1]) == 1.0
        # the others are aligned among themselves as if the constant snippet were absent
        assert float(result.scales[0]) == pytest.approx(2.0 * float(result.scales[2]), rel=1e-4)
        assert float(result.scales[0]) == pytest.approx(float(result.scales[3]), rel=1e-4)
        # and it sits at the consensus level of its frames
        level = result.depth[1:4].mean()
        assert float(0.7 - min(float(d.min()) for d in depths) + result.shifts[1]) == pytest.approx(float(level), rel=0.2)


def test_all_constant_video_normalises_to_zeros():
    depths = [torch.full((3, 10, 10), 0.5) for _ in range(2)]
    result = align_snippets(depths, [[0, 1, 2], [1, 2, 3]], 4)
    assert torch.isfinite(result.depth).all()
    assert torch.equal(normalize_to_unit_range(result.depth), torch.zeros(4, 10, 10))
