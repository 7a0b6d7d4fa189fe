"""Depth from processing size to a sink's size (``?size=`` / ``--output-size``).

Bilinear: ``cv2.resize`` for numpy arrays, ``torch.nn.functional.interpolate`` on the tensor's own
device for torch tensors (on a GPU the depth never leaves it). Both place pixel centres the same way
(half-pixel, no corner alignment), so a constant stays exactly constant and the two agree.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F

METHODS = ("bilinear",)
MAX_SIDE = 8192  # the largest output side a sink may ask for


def upsample_depth(depth, size: tuple[int, int], method: str = "bilinear"):
    """Resize depth to ``size``.

    Args:
        depth: float32 ``[h, w]``, a numpy array or a torch tensor (any device), any units.
        size: ``(W, H)`` of the output, each in ``[1, 8192]``.
        method: ``bilinear``, the only method (no edge-aware one is offered: the fast guided
            filter measured worse inside surfaces, and near edges too on textured scenes;
            docs/streaming.md, "Carrying depth between keyframes").

    Returns:
        float32 ``[H, W]`` of the same kind (numpy, or a tensor on the same device), values within
        the input's range.
    """
    width, height = (int(v) for v in size)
    if not (1 <= width <= MAX_SIDE and 1 <= height <= MAX_SIDE):
        raise ValueError(f"output size {width}x{height} is outside 1..{MAX_SIDE} on a side")
    if method not in METHODS:
        raise ValueError(f"unknown upsampling method {method!r}; use one of {', '.join(METHODS)}")
    if depth.ndim != 2:
        raise ValueError(f"expected depth [H, W], got shape {tuple(depth.shape)}")
    if isinstance(depth, torch.Tensor):
        if tuple(depth.shape) == (height, width):
            return depth.float()
        resized = F.interpolate(depth.float()[None, None], size=(height, width), mode="bilinear", align_corners=False)
        return resized[0, 0]
    depth = np.asarray(depth, dtype=np.float32)
    if depth.shape == (height, width):
        return depth.copy()
    return cv2.resize(depth, (width, height), interpolation=cv2.INTER_LINEAR)
