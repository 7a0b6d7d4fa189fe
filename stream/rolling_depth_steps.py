"""The node's model steps on a loaded RollingDepth model (the pipeline's functions, one frame at a time).

The shared noise map is drawn once per stream, on the first snippet (when the latent size is
known), exactly as offline draws it once per video. The processing size is fixed by the first
frame: the noise map, the window and the aligner are tied to it. A live source that changes
resolution mid-stream (NDI may) has its later frames resized to that size, so the node goes on.
"""

from __future__ import annotations

import numpy as np
import torch

from pipeline.checkpoint import RollingDepthModel
from pipeline.inference import decode_depth, encode_rgb, make_shared_noise, predict_snippets
from pipeline.preprocess import prepare_frames, resize
from stream.depth_steps import StepCounts


class RollingDepthSteps:
    """``DepthSteps`` for a ``RollingDepthModel`` (see stream.depth_steps for the contract).

    res: longer edge of the processing size (0 = native; rounded to a multiple of 8).
    seed: seed of the shared noise (None = random). decode_batch: frames per VAE decode call.
    """

    def __init__(self, model: RollingDepthModel, res: int, seed: int | None = None, decode_batch: int = 4) -> None:
        self.model = model
        self.res = res
        self.seed = seed
        self.decode_batch = decode_batch
        self.counts = StepCounts()
        self.noise: torch.Tensor | None = None
        self._size: tuple[int, int] | None = None  # (H', W') of the first frame

    def encode(self, rgb: np.ndarray) -> tuple[np.ndarray, torch.Tensor]:
        """uint8 [H, W, 3] -> (uint8 [H', W', 3] display rgb, latent [4, h, w] on the model's device)."""
        image = prepare_frames(rgb[None], self.res)
        if self._size is None:
            self._size = tuple(image.shape[-2:])
        elif tuple(image.shape[-2:]) != self._size:
            image = resize(image, self._size)
        latent = encode_rgb(self.model, image, batch_size=1)[0]
        self.counts.encodes += 1
        display = ((image[0].permute(1, 2, 0) + 1.0) * 127.5).round_().clamp_(0, 255).to(torch.uint8).numpy()
        return display, latent

    def predict(self, latents: list[list[torch.Tensor]]) -> np.ndarray:
        """B snippets of L latents [4, h, w] -> depth float32 [B, L, H', W'] (one UNet call)."""
        stacked = torch.stack([torch.stack(snippet) for snippet in latents])
        b, length = stacked.shape[:2]
        if self.noise is None:
            self.noise = make_shared_noise(self.model, tuple(stacked.shape[-2:]), self.seed)
        depth_latents = predict_snippets(self.model, stacked, self.noise)
        self.counts.unet_frame_passes += b * length
        depth = decode_depth(self.model, depth_latents.flatten(0, 1), batch_size=self.decode_batch)
        self.counts.decodes += b * length
        return depth.unflatten(0, (b, length)).cpu().numpy()
