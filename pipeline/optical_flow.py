"""Dense optical flow between two frames, for carrying depth (``pipeline.flow_carry``).

OpenCV's DIS flow (no weights, one CPU core) on grey frames at processing size. One ``FlowStep``
says where each pixel of the new frame ``b`` was in the previous frame ``a``: the backward flow
``w_b`` (``b -> a``) added to the pixel grid. With the forward-backward check (the usual occlusion
test, a second flow ``w_f``, ``a -> b``), pixel ``x`` is unreliable where
``|w_b + w_f(x + w_b)|^2 >= 0.01 (|w_b|^2 + |w_f(x + w_b)|^2) + 0.5``.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

# DIS settings by name: OpenCV's three presets, and "fine", ULTRAFAST refined down to half
# resolution (OpenCV's presets stop at a quarter) with a sparser patch grid and fewer descent
# steps to pay for it. On our rendered scenes "fine" carried depth with about 40 % less error
# than ULTRAFAST on smooth surfaces (5-15 % less on heavy texture), close to MEDIUM, for twice
# ULTRAFAST's flow time and a quarter of MEDIUM's (docs/streaming.md has the table).
FLOW_PRESETS = {
    "ultrafast": (cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST, {}),
    "fine": (cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST, {"FinestScale": 1, "PatchStride": 6, "GradientDescentIterations": 8}),
    "fast": (cv2.DISOPTICAL_FLOW_PRESET_FAST, {}),
    "medium": (cv2.DISOPTICAL_FLOW_PRESET_MEDIUM, {}),
}
DEFAULT_PRESET = "fine"
# The forward-backward test's constants (relative and absolute tolerance, px^2)
OCCLUSION_RELATIVE = 0.01
OCCLUSION_ABSOLUTE = 0.5


def create_flow(preset: str) -> cv2.DISOpticalFlow:
    """A DIS optical flow object with the settings named ``preset`` (a key of ``FLOW_PRESETS``)."""
    if preset not in FLOW_PRESETS:
        raise ValueError(f"unknown optical flow preset {preset!r}; use one of {', '.join(FLOW_PRESETS)}")
    base, overrides = FLOW_PRESETS[preset]
    flow = cv2.DISOpticalFlow_create(base)
    for name, value in overrides.items():
        getattr(flow, f"set{name}")(value)
    return flow


@dataclass(frozen=True)
class FlowStep:
    """How pixels move from the previous frame to frame ``index``.

    ``source``: float32 ``[H, W, 2]``, where each pixel of this frame was in the previous one (x, y),
    None when the step holds (its flow failed); ``reliable``: bool ``[H, W]``, the pixels that passed
    the forward-backward check (None without the check); ``reliable_fraction`` in ``[0, 1]``."""

    index: int
    source: np.ndarray | None
    reliable: np.ndarray | None
    reliable_fraction: float


def pixel_grid(shape: tuple[int, int]) -> np.ndarray:
    """float32 ``[H, W, 2]``: each pixel's own (x, y)."""
    height, width = shape
    xs, ys = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    return np.dstack([xs, ys])


def flow_step(flow, index: int, previous: np.ndarray, grey: np.ndarray, grid: np.ndarray,
              occlusion_check: bool) -> FlowStep | None:
    """The step from ``previous`` to ``grey`` (uint8 ``[H, W]``), or None when the flow fails (an
    OpenCV error, a non-finite value). ``flow``: from ``create_flow``; ``grid``: ``pixel_grid``."""
    try:
        backward = flow.calc(grey, previous, None)  # b -> a: where each pixel of b was in a
        forward = flow.calc(previous, grey, None) if occlusion_check else None
    except cv2.error:
        return None
    if not np.isfinite(backward).all() or (forward is not None and not np.isfinite(forward).all()):
        return None
    source = grid + backward
    if forward is None:
        return FlowStep(index, source, None, 1.0)
    # the forward flow at the point each pixel of b came from, against its backward flow
    forward_there = cv2.remap(forward, source, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    reliable = _consistent(backward, forward_there)
    return FlowStep(index, source, reliable, float(reliable.mean()))


def _consistent(backward: np.ndarray, forward_there: np.ndarray) -> np.ndarray:
    """bool ``[H, W]``: the forward-backward test passed (flows float32 ``[H, W, 2]``). Written with
    in-place products and per-channel sums: ``(x**2).sum(axis=2)`` on a last axis of 2 is ~20x slower."""
    mismatch = backward + forward_there
    mismatch *= mismatch
    magnitude = backward * backward
    magnitude += forward_there * forward_there
    return (mismatch[..., 0] + mismatch[..., 1]) < OCCLUSION_RELATIVE * (magnitude[..., 0] + magnitude[..., 1]) + OCCLUSION_ABSOLUTE
