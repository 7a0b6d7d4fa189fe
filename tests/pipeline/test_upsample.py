"""pipeline.upsample: depth from processing size to a sink's size."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from bench.support.guided_upsample import fast_guided_upsample
from pipeline.upsample import upsample_depth


def test_bilinear_gives_the_asked_size_and_stays_within_the_input_range():
    rng = np.random.default_rng(0)
    depth = rng.uniform(0.2, 0.9, (54, 96)).astype(np.float32)
    out = upsample_depth(depth, (320, 180))
    assert out.shape == (180, 320) and out.dtype == np.float32
    assert depth.min() - 1e-6 <= out.min() and out.max() <= depth.max() + 1e-6
    assert np.isclose(out.mean(), depth.mean(), rtol=0.02)


@pytest.mark.parametrize("kind", ["numpy", "torch"])
def test_bilinear_keeps_a_constant_exact(kind):
    depth = np.full((27, 48), 0.375, np.float32)
    given = torch.from_numpy(depth) if kind == "torch" else depth
    out = upsample_depth(given, (1280, 720))
    out = out.numpy() if kind == "torch" else out
    np.testing.assert_allclose(out, 0.375, atol=1e-7)


def test_torch_stays_on_its_device_and_matches_opencv():
    rng = np.random.default_rng(1)
    depth = rng.uniform(0.0, 1.0, (54, 96)).astype(np.float32)
    on_torch = upsample_depth(torch.from_numpy(depth), (384, 216))
    assert isinstance(on_torch, torch.Tensor) and on_torch.shape == (216, 384)
    np.testing.assert_allclose(on_torch.numpy(), upsample_depth(depth, (384, 216)), atol=1e-4)


def test_a_ramp_is_interpolated_not_stepped():
    depth = np.tile(np.arange(8, dtype=np.float32), (4, 1))  # 0..7 across
    out = upsample_depth(depth, (32, 4))
    steps = np.diff(out[0, 4:-4])
    assert steps.min() > 0  # strictly increasing inside: no repeated (nearest) values
    np.testing.assert_allclose(steps, 0.25, atol=1e-5)


def test_bad_sizes_and_methods_are_refused():
    depth = np.zeros((4, 4), np.float32)
    with pytest.raises(ValueError, match="outside 1..8192"):
        upsample_depth(depth, (0, 10))
    with pytest.raises(ValueError, match="outside 1..8192"):
        upsample_depth(depth, (8193, 10))
    with pytest.raises(ValueError, match="bilinear"):
        upsample_depth(depth, (8, 8), method="guided")
    with pytest.raises(ValueError, match=r"\[H, W\]"):
        upsample_depth(np.zeros((1, 4, 4), np.float32), (8, 8))


def test_the_measured_guided_filter_follows_a_colour_edge_that_is_a_depth_edge():
    # the bench's edge-aware candidate: a step in colour and depth at the same place stays sharp
    rgb = np.zeros((64, 64, 3), np.uint8)
    rgb[:, 34:] = 255
    truth = np.where(np.arange(64) < 34, 0.2, 0.8).astype(np.float32)[None, :].repeat(64, 0)
    low = cv2.resize(truth, (16, 16), interpolation=cv2.INTER_AREA)  # one column straddles the edge
    guided = fast_guided_upsample(low, rgb)
    bilinear = upsample_depth(low, (64, 64))
    band = slice(28, 40)
    assert np.abs(guided[:, band] - truth[:, band]).mean() < 0.5 * np.abs(bilinear[:, band] - truth[:, band]).mean()
