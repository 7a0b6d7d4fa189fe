"""How close filled depth is to the truth: the measures of ``bench.fill_maths`` (and ``bench.fill``).

Sequences are scored with ``pipeline.depth_metrics`` (AbsRel and temporal error after one global
affine fit, as every benchmark here); single upsampled frames, already in the truth's units, with a
plain AbsRel inside a region: near depth edges or inside surfaces.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

from pipeline.depth_metrics import abs_rel, temporal_error
from pipeline.flow_carry import DepthCarrier

FILL_MODES = ("flow", "hold")


def sequence_errors(prediction: np.ndarray, truth: np.ndarray) -> dict:
    """AbsRel and temporal error of depth ``[N, H, W]`` against positive truth ``[N, H, W]``."""
    p, g = torch.from_numpy(np.asarray(prediction, np.float32)), torch.from_numpy(np.asarray(truth, np.float32))
    return {"abs_rel": abs_rel(p, g), "temporal_error": temporal_error(p, g)}


def carry_truth(rgb: np.ndarray, truth: np.ndarray, interval: int, mode: str = "flow",
                carrier: DepthCarrier | None = None) -> np.ndarray:
    """What the node sends when a perfect model answers every ``interval``-th frame at once: the
    true depth on keyframes, carried by ``carrier`` (``flow``) or repeated (``hold``) in between.
    rgb uint8 ``[N, H, W, 3]``, truth float32 ``[N, H, W]``; returns float32 ``[N, H, W]``."""
    if mode not in FILL_MODES:
        raise ValueError(f"mode must be one of {FILL_MODES}, got {mode!r}")
    carrier = carrier if carrier is not None else DepthCarrier()
    out = np.empty_like(truth, dtype=np.float32)
    held = truth[0]
    for t in range(truth.shape[0]):
        keyframe = t % interval == 0
        if mode == "hold":
            held = truth[t] if keyframe else held
            out[t] = held
            continue
        carried = carrier.push_frame(t, rgb[t])
        if keyframe:
            carried = carrier.set_keyframe(t, truth[t])
        out[t] = carried.depth
    return out


def edge_band(truth: np.ndarray, radius: int = 3, jump: float = 0.05) -> np.ndarray:
    """bool ``[H, W]``: pixels within ``radius`` px of a depth edge of ``truth [H, W]`` (a step of
    more than ``jump``, relative, between neighbouring pixels: object outlines, not the ground's
    smooth slope)."""
    near = np.minimum
    across = np.abs(np.diff(truth, axis=1)) / near(truth[:, 1:], truth[:, :-1]) > jump
    down = np.abs(np.diff(truth, axis=0)) / near(truth[1:], truth[:-1]) > jump
    edges = np.zeros(truth.shape, bool)
    edges[:, 1:] |= across
    edges[:, :-1] |= across
    edges[1:] |= down
    edges[:-1] |= down
    kernel = np.ones((2 * radius + 1, 2 * radius + 1), np.uint8)
    return cv2.dilate(edges.astype(np.uint8), kernel) > 0


def region_abs_rel(prediction: np.ndarray, truth: np.ndarray, mask: np.ndarray) -> float:
    """``mean |p - g| / g`` over ``mask`` (no fit: for depth already in the truth's units)."""
    p, g = prediction[mask].astype(np.float64), truth[mask].astype(np.float64)
    return float((np.abs(p - g) / g).mean())
