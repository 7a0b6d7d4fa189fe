"""pipeline.coalign.fit_grid: the pixels the co-alignment fits on, read from a full or a pooled decode."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from pipeline.coalign.fit_grid import fit_grid


def test_fit_samples_of_an_odd_latent_read_the_right_rows():
    # 216 x 104 px (latent 27 x 13): a decode of the pooled latent shows whole windows at half
    # resolution and the unpaired last latent (8 px) at full resolution, 8 coarse px for 8 px.
    height, width = 216, 104
    y, x = torch.meshgrid(torch.arange(height, dtype=torch.float32), torch.arange(width, dtype=torch.float32),
                          indexing="ij")
    full = (0.5 * y + 0.25 * x)[None]  # a ramp: any misplaced row shows as an error
    paired = F.avg_pool2d(full[:, None, :208, :96], 2)[:, 0]  # rows 0-207, cols 0-95 at half resolution
    coarse = torch.zeros(1, 112, 56)
    coarse[:, :104, :48] = paired
    coarse[:, 104:, :48] = F.avg_pool2d(full[:, None, 208:, :96], (1, 2))[:, 0]  # last latent row, 1:1 in y
    coarse[:, :104, 48:] = F.avg_pool2d(full[:, None, :208, 96:], (2, 1))[:, 0]  # last latent column, 1:1 in x
    coarse[:, 104:, 48:] = full[:, 208:, 96:]
    grid = fit_grid(height, width, 3)
    expected = grid.take(full)
    np.testing.assert_allclose(grid.sample(coarse, 2).numpy(), expected.numpy(), atol=0.05)
    # the old mapping (factor 2 everywhere) reads the last rows about 2 px off: well outside that
    ys = torch.arange(grid.crop, height - grid.crop, grid.stride)
    assert ys.max() >= 208  # the grid does reach the unpaired rows


def test_fit_grid_samples_a_half_resolution_decode_at_the_full_resolution_pixels():
    y, x = torch.meshgrid(torch.arange(30.0), torch.arange(44.0), indexing="ij")
    ramp = (0.3 * y + 0.7 * x)[None]
    coarse = torch.nn.functional.avg_pool2d(ramp[:, None], 2, ceil_mode=True)[:, 0]
    grid = fit_grid(30, 44, 3)
    # bilinear sampling of a pooled linear ramp at the same pixel centres is exact (inside the border);
    # the ramp is pooled per pixel, so a "latent" is one pixel (scale 1)
    np.testing.assert_allclose(grid.sample(coarse, 2, scale=1).numpy(), grid.take(ramp).numpy(), atol=1e-4)
