"""The node's model steps on a loaded RollingDepth model (the pipeline's functions, one frame at a time).

The shared noise map is drawn once per stream, on the first snippet (when the latent size is
known), exactly as offline draws it once per video. The processing size is fixed by the first
frame: the noise map, the window and the aligner are tied to it. A live source that changes
resolution mid-stream (NDI may) has its later frames resized to that size, so the node goes on.

Per snippet only the frames the aligner will still merge are decoded at full resolution; the
others (already emitted, needed only for the aligner's scale/shift fit) take the fit path:
``half`` decodes the 2x average-pooled latent (a quarter of the decoder's work) and samples the
fit grid from it bilinearly; ``full`` decodes them at full resolution and keeps only the samples.
Fit samples are taken on the model's device, so only [L, P] floats per snippet cross to the host
for them; the full-resolution frames cross in the model's dtype.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from pipeline.checkpoint import RollingDepthModel
from pipeline.coalign.online import FitGrid, SnippetDepth, fit_grid
from pipeline.inference import decode_depth, encode_rgb, make_shared_noise, predict_snippets, prepare_frames_on
from pipeline.preprocess import processing_size
from pipeline.presets import check_fit_path
from stream.depth_steps import StepCounts

#: Resolution factor of each fit path's decode (the paths are ``pipeline.presets.FIT_PATHS``).
FIT_PATH_POOL = {"half": 2, "full": 1}


class RollingDepthSteps:
    """``DepthSteps`` for a ``RollingDepthModel`` (see stream.depth_steps for the contract).

    res: longer edge of the processing size (0 = native; rounded to a multiple of 8).
    seed: seed of the shared noise (None = random). decode_batch: frames per VAE decode call.
    fit_stride: the aligner's fit stride (``OnlineAligner.fit_stride``), so samples land on its grid.
    fit_path: ``half`` or ``full`` (module docstring).
    decode_everything: the old path, kept for benchmarks: every frame decoded at full resolution
        and handed over whole (the aligner then samples the fit itself).
    """

    def __init__(self, model: RollingDepthModel, res: int, seed: int | None = None, decode_batch: int = 4,
                 fit_stride: int = 10, fit_path: str = "half", decode_everything: bool = False) -> None:
        check_fit_path(fit_path)
        self.model = model
        self.res = res
        self.seed = seed
        self.decode_batch = decode_batch
        self.fit_stride = fit_stride
        self.fit_path = fit_path
        self.decode_everything = decode_everything
        self.counts = StepCounts()
        self.noise: torch.Tensor | None = None
        self._size: tuple[int, int] | None = None  # (H', W') of the first frame
        self._grid: FitGrid | None = None  # the aligner's fit grid at that size

    def encode(self, rgb: np.ndarray) -> tuple[np.ndarray, torch.Tensor]:
        """uint8 [H, W, 3] -> (uint8 [H', W', 3] display rgb, latent [4, h, w] on the model's device)."""
        if self._size is None:
            self._size = processing_size(rgb.shape[0], rgb.shape[1], self.res)
            self._grid = fit_grid(*self._size, self.fit_stride)
        image = prepare_frames_on(self.model.device, rgb[None], self._size)
        latent = encode_rgb(self.model, image, batch_size=1)[0]
        self.counts.encodes += 1
        display = ((image[0].permute(1, 2, 0) + 1.0) * 127.5).round_().clamp_(0, 255).to(torch.uint8)
        return display.cpu().numpy(), latent

    @torch.no_grad()
    def predict(self, latents: list[list[torch.Tensor]], merged: Sequence[tuple[bool, ...]]) -> list[SnippetDepth]:
        """B snippets of L latents [4, h, w] -> one ``SnippetDepth`` per snippet (one UNet call).

        Full-resolution frames stay in the model's dtype; fit samples are float32.
        """
        stacked = torch.stack([torch.stack(snippet) for snippet in latents])
        b, length = stacked.shape[:2]
        if self.noise is None:
            self.noise = make_shared_noise(self.model, tuple(stacked.shape[-2:]), self.seed)
        depth_latents = predict_snippets(self.model, stacked, self.noise).flatten(0, 1)
        self.counts.unet_frame_passes += b * length
        if self.decode_everything:
            depth = decode_depth(self.model, depth_latents, self.decode_batch).cpu()
            self.counts.decodes_full += b * length
            return [SnippetDepth.from_full(d) for d in depth.unflatten(0, (b, length))]

        flags = [bool(m) for snippet in merged for m in snippet]
        full_rows = [i for i, m in enumerate(flags) if m]
        fit_rows = [i for i, m in enumerate(flags) if not m]
        grid = self._grid
        fit = torch.empty(b * length, grid.pixels, device=self.model.device, dtype=torch.float32)
        full = decode_depth(self.model, depth_latents[full_rows], self.decode_batch, dtype=None)
        fit[full_rows] = grid.take(full).float()
        if fit_rows:
            pool = FIT_PATH_POOL[self.fit_path]
            coarse = decode_depth(self.model, depth_latents[fit_rows], self.decode_batch, pool=pool, dtype=None)
            fit[fit_rows] = grid.take(coarse).float() if pool == 1 else grid.sample(coarse, pool)
        self.counts.decodes_full += len(full_rows)
        if FIT_PATH_POOL[self.fit_path] == 1:  # --fit-decode full: full decodes, only sampled on the fit grid
            self.counts.decodes_full += len(fit_rows)
        else:
            self.counts.decodes_fit += len(fit_rows)
        full, fit = full.cpu(), fit.cpu()
        out, first = [], 0
        for s in range(b):
            flags_s = tuple(flags[s * length : (s + 1) * length])
            count = sum(flags_s)
            out.append(SnippetDepth(full[first : first + count], flags_s, fit[s * length : (s + 1) * length]))
            first += count
        return out
