"""What the node needs from a depth model, as a small protocol (the runtime never imports torch models).

The real implementation is ``stream.model.rolling_depth_steps.RollingDepthSteps``; benchmarks and
tests may pass their own object with the same two methods. An object may also offer
``start_predict(latents, merged)``: queue the work and return a callable that waits for it and
returns what ``predict`` would; the snippet stage then waits outside the model thread. An object
with ``takes_frame_index = True`` (the oracle model, ``stream.model.oracle_model``) gets the source frame
index as a second argument of ``encode``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from pipeline.coalign.snippet_depth import SnippetDepth


@dataclass
class StepCounts:
    """Model work done so far, in frames: VAE encodes, UNet frame-passes, full-resolution decodes
    (frames that reach the output) and fit decodes (frames only the aligner's fit reads, decoded by
    the cheap fit path)."""

    encodes: int = 0
    unet_frame_passes: int = 0
    decodes_full: int = 0
    decodes_fit: int = 0

    def as_dict(self) -> dict:
        return {"encodes": self.encodes, "unet_frame_passes": self.unet_frame_passes,
                "decodes_full": self.decodes_full, "decodes_fit": self.decodes_fit}


class DepthSteps(Protocol):
    """Model steps the node calls from a worker thread (blocking calls)."""

    counts: StepCounts

    def encode(self, rgb: np.ndarray) -> tuple[np.ndarray, Any]:
        """Preprocess and encode one frame, uint8 [H, W, 3] -> (display rgb uint8 [H', W', 3], latent [4, h, w])."""
        ...

    def predict(self, latents: list[list[Any]], merged: Sequence[tuple[bool, ...]]) -> list[SnippetDepth]:
        """Depth of B snippets of L frames each (latents[b][l] as returned by ``encode``).

        merged[b][l]: True when the aligner will still merge that frame (``still_merged``): it must
        come at full resolution; the others need only fit samples (``SnippetDepth``), which a model
        may decode cheaply. Depth is roughly [-1, 1], inverse depth, at the processing size [H', W'].
        """
        ...
