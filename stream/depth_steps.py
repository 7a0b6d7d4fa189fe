"""What the node needs from a depth model, as a small protocol (the runtime never imports torch models).

The real implementation is ``stream.rolling_depth_steps.RollingDepthSteps``; benchmarks and
tests may pass their own object with the same two methods.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np



@dataclass
class StepCounts:
    """Model work done so far, in frames: VAE encodes, UNet frame-passes, VAE decodes."""

    encodes: int = 0
    unet_frame_passes: int = 0
    decodes: int = 0

    def as_dict(self) -> dict:
        return {"encodes": self.encodes, "unet_frame_passes": self.unet_frame_passes, "decodes": self.decodes}


class DepthSteps(Protocol):
    """Model steps the node calls from a worker thread (blocking calls)."""

    counts: StepCounts

    def encode(self, rgb: np.ndarray) -> tuple[np.ndarray, Any]:
        """Preprocess and encode one frame, uint8 [H, W, 3] -> (display rgb uint8 [H', W', 3], latent [4, h, w])."""
        ...

    def predict(self, latents: list[list[Any]]) -> np.ndarray:
        """Depth of B snippets of L frames each (latents[b][l] as returned by ``encode``).

        Returns float32 [B, L, H', W'], roughly [-1, 1], inverse depth.
        """
        ...
