"""The fit grid: which pixels of a frame the online aligner fits scales and shifts on, and how
those samples are read from full-resolution depth or from a cheaper pooled decode (bilinear at the
grid's pixel centres)."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch

from pipeline.coalign.snippet_set import FIT_CROP_PX, stride_for_min_pixels

#: Fewest fit pixels per frame; smaller frames are subsampled less.
MIN_FIT_PIXELS = 64


@dataclass(frozen=True)
class FitGrid:
    """The pixels the aligner's fit reads from an ``[H, W]`` frame: rows and columns
    ``crop, crop + stride, ...`` up to ``H - crop`` / ``W - crop`` (the reference's crop and stride)."""

    height: int
    width: int
    crop: int
    stride: int

    @property
    def pixels(self) -> int:
        """P, fit samples per frame."""
        return len(range(self.crop, self.height - self.crop, self.stride)) * len(range(self.crop, self.width - self.crop, self.stride))

    def take(self, depth: torch.Tensor) -> torch.Tensor:
        """Full-resolution depth ``[M, H, W]`` -> its fit samples ``[M, P]`` (same dtype and device)."""
        c, s = self.crop, self.stride
        return depth[:, c : self.height - c : s, c : self.width - c : s].reshape(depth.shape[0], -1)

    def sample(self, coarse: torch.Tensor, factor: int, scale: int = 8) -> torch.Tensor:
        """Depth decoded from a ``factor``-pooled latent ``[M, h, w]`` -> float32 ``[M, P]``, bilinear at the
        grid's pixel centres.

        Coarse pixel i covers full-resolution pixels ``factor * i`` to ``factor * i + factor - 1``, except
        where the latent (``scale`` pixels per latent) had an odd edge: its last latent was pooled alone
        (``pipeline.inference.pool_latents``) and decodes to ``scale`` coarse pixels for ``scale`` full
        ones, so there the mapping is 1:1 (e.g. 216 rows, latent 27: rows 208-215 read coarse 104-111).
        """
        grid = _sampling_grid(self, tuple(coarse.shape[-2:]), factor, scale, coarse.device)
        grid = grid.expand(coarse.shape[0], -1, -1, -1)
        sampled = torch.nn.functional.grid_sample(coarse.float()[:, None], grid, mode="bilinear",
                                                  padding_mode="border", align_corners=False)
        return sampled.reshape(coarse.shape[0], -1)


@functools.lru_cache(maxsize=16)
def _sampling_grid(grid: FitGrid, coarse_hw: tuple[int, int], factor: int, scale: int,
                   device: torch.device) -> torch.Tensor:
    """grid_sample's grid [1, rows, cols, 2] (x, y in [-1, 1]) for ``FitGrid.sample``: made once per
    stream shape and device, not per call."""
    ys = torch.arange(grid.crop, grid.height - grid.crop, grid.stride, dtype=torch.float32)
    xs = torch.arange(grid.crop, grid.width - grid.crop, grid.stride, dtype=torch.float32)
    h, w = coarse_hw
    # grid_sample (align_corners=False) addresses pixel centres: coordinate c -> (c / size) * 2 - 1
    gy = _coarse_position(ys + 0.5, grid.height, factor, scale) / h * 2.0 - 1.0
    gx = _coarse_position(xs + 0.5, grid.width, factor, scale) / w * 2.0 - 1.0
    return torch.stack(torch.meshgrid(gx, gy, indexing="xy"), dim=-1)[None].to(device)


def _coarse_position(position: torch.Tensor, full: int, factor: int, scale: int) -> torch.Tensor:
    """Full-resolution coordinates (pixel units, centres at i + 0.5) along an edge of ``full`` pixels ->
    coordinates in the decode of the ``factor``-pooled latent: ``/ factor`` where whole windows were
    pooled, 1 : ``rest`` after them (the ``rest`` latents of a partial window decode to ``scale`` pixels)."""
    latents = full // scale
    rest = latents % factor
    paired = scale * factor * (latents // factor)  # full-resolution pixels covered by whole windows
    if not rest:
        return position / factor
    return torch.where(position < paired, position / factor, paired / factor + (position - paired) / rest)


def fit_grid(height: int, width: int, stride: int) -> FitGrid:
    """The fit grid of an ``OnlineAligner`` with fit ``stride`` (its quality's) for ``[height, width]`` frames;
    small frames get a denser grid so each still has ``MIN_FIT_PIXELS``."""
    return FitGrid(height, width, FIT_CROP_PX, stride_for_min_pixels(height, width, stride, MIN_FIT_PIXELS))
