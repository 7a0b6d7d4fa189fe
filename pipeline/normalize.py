"""Final normalisation of merged depth over the whole video (docs/method.md, section 5)."""

from __future__ import annotations

import torch


def normalize_to_unit_range(depth: torch.Tensor) -> torch.Tensor:
    """Map merged depth ``[N, H, W]`` to exactly ``[-1, 1]``: ``(d - min) / (max - min) * 2 - 1``.

    min and max are taken over the whole video, so all frames share one mapping. Computed in float32
    (the result is float32, on the input's device). A constant video has no range: it maps to all
    zeros (the middle of ``[-1, 1]``) instead of dividing by zero.
    """
    depth = depth.to(torch.float32)
    low, high = depth.min(), depth.max()
    if not bool(high > low):
        return torch.zeros_like(depth)
    return ((depth - low) / (high - low) * 2.0 - 1.0).clamp_(-1.0, 1.0)
