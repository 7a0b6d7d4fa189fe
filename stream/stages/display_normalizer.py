"""Temporally stable display normalisation of streamed depth (docs/method.md, section 8).

The node's aligned depth is affine-invariant inverse depth (larger = nearer), roughly [-1, 1],
and its range wanders slowly. Display sinks need [0, 1] with 1 = nearest. Per-frame min/max
makes the picture flicker (one bright pixel rescales the whole frame), so every normaliser here
maps with a range that changes slowly or not at all:

- ``running``: an exponential moving average of robust per-frame percentiles (2nd and 98th).
- ``fixed:NEAR,FAR``: a constant range in the aligned depth's own units; NEAR maps to 1, FAR to 0.
- ``window`` or ``window:N``: robust percentiles of the pooled pixels of the last N frames.

Pure numpy, no I/O; one instance per stream (the state is the stream's display range).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from pipeline.errors import BadInputError

# The window normaliser keeps 1/16 of each frame: a few minutes at 30 fps stays a few MB. The
# same limit for --normalize window:N, a rig's normalize and OSC's /rdstream/normalize/window.
MAX_WINDOW_FRAMES = 3600
NORMALIZE_CHOICES = ("running, fixed:NEAR,FAR (two numbers, NEAR > FAR, NEAR maps to 1), window or window:N "
                     f"(N from 1 to {MAX_WINDOW_FRAMES})")

# Percentile estimates on every 4th pixel in both axes: 16x fewer pixels, same robust range.
_SUBSAMPLE = 4
# Keep the mapped range away from zero width on constant frames (avoids a divide by ~0).
_MIN_SPAN = 1e-6
# A fixed range (``--normalize fixed:NEAR,FAR``, OSC ``/rdstream/normalize/fixed``) must lie within
# +-MAX_RANGE_MAGNITUDE. Aligned depth is about [-1, 1]; far larger values are a typing slip, and
# the bound keeps NEAR - FAR and every mapped value finite in float32 (the sinks' precision).
MAX_RANGE_MAGNITUDE = 1e6


@dataclass(frozen=True)
class DisplayRange:
    """The values that map to 0 (``far``) and 1 (``near``) for one frame."""

    far: float
    near: float


class DisplayNormalizer(Protocol):
    """Maps aligned depth [H, W] (inverse depth, any range) to float32 [H, W] in [0, 1]."""

    def __call__(self, depth: np.ndarray) -> np.ndarray: ...

    @property
    def current_range(self) -> DisplayRange | None: ...


def check_fixed_range(near: float, far: float) -> str | None:
    """Why (NEAR, FAR) cannot be a fixed display range, or None when it can: the one rule for
    ``--normalize fixed:NEAR,FAR`` and OSC ``/rdstream/normalize/fixed``.

    Both finite, within +-MAX_RANGE_MAGNITUDE, NEAR > FAR (inverse depth: larger = nearer) and
    still different once rounded to float32, so the mapping never divides by zero or overflows.
    """
    try:
        near, far = float(near), float(far)
    except (TypeError, ValueError, OverflowError):
        return "expects two numbers NEAR FAR"
    if not (np.isfinite(near) and np.isfinite(far)):
        return "NEAR and FAR must be finite numbers"
    if max(abs(near), abs(far)) > MAX_RANGE_MAGNITUDE:
        return f"NEAR and FAR must lie within +-{MAX_RANGE_MAGNITUDE:g} (aligned depth is about -1..1)"
    if not np.float32(near) > np.float32(far):
        return "NEAR must be larger than FAR (inverse depth: larger = nearer; for an inverted picture use a reversed colour map such as gray_r)"
    return None


def apply_range(depth: np.ndarray, display_range: DisplayRange) -> np.ndarray:
    """Map ``depth`` [H, W] linearly so that far -> 0 and near -> 1, clipped to [0, 1], float32.

    Never returns a non-finite value: NaN in ``depth`` (or from a degenerate range) becomes 0, so
    no sink ever receives NaN or inf.
    """
    span = display_range.near - display_range.far
    if not abs(span) >= _MIN_SPAN:
        span = _MIN_SPAN if span >= 0 else -_MIN_SPAN
    with np.errstate(over="ignore", invalid="ignore"):
        out = (np.asarray(depth, dtype=np.float32) - np.float32(display_range.far)) / np.float32(span)
    # fmax/fmin pick the number over a NaN: clipping and NaN removal in two in-place passes.
    np.fmax(out, 0.0, out=out)
    return np.fmin(out, 1.0, out=out)


def robust_range(pixels: np.ndarray, low_pct: float, high_pct: float) -> DisplayRange:
    """Percentile range of ``pixels`` (any shape, finite values only are used)."""
    flat = np.asarray(pixels, dtype=np.float32).ravel()
    flat = flat[np.isfinite(flat)]
    if flat.size == 0:
        return DisplayRange(far=0.0, near=1.0)
    far, near = np.percentile(flat, [low_pct, high_pct])
    return DisplayRange(far=float(far), near=float(near))


def _check_depth(depth: np.ndarray) -> np.ndarray:
    depth = np.asarray(depth)
    if depth.ndim != 2:
        raise ValueError(f"display normalisation expects depth [H, W], got shape {depth.shape}")
    return depth


class _RangeHolder:
    """The range in use, kept by every normaliser (None before the first frame)."""

    _range: DisplayRange | None = None

    @property
    def current_range(self) -> DisplayRange | None:
        return self._range


class RunningRangeNormalizer(_RangeHolder):
    """EMA of the per-frame robust range: ``range = momentum * range + (1 - momentum) * new``.

    The first frame initialises the range, so the stream does not fade in from a made-up range.
    momentum 0.95 at 30 fps follows a change of scene in about 2 seconds without visible pumping.
    """

    def __init__(self, momentum: float = 0.95, low_pct: float = 2.0, high_pct: float = 98.0) -> None:
        if not 0.0 <= momentum < 1.0:
            raise BadInputError(f"running normalisation momentum must be in [0, 1), got {momentum}")
        if not 0.0 <= low_pct < high_pct <= 100.0:
            raise BadInputError(f"percentiles must satisfy 0 <= low < high <= 100, got {low_pct}, {high_pct}")
        self.momentum = momentum
        self.low_pct = low_pct
        self.high_pct = high_pct

    def __call__(self, depth: np.ndarray) -> np.ndarray:
        depth = _check_depth(depth)
        new = robust_range(depth[::_SUBSAMPLE, ::_SUBSAMPLE], self.low_pct, self.high_pct)
        if self._range is None:
            self._range = new
        else:
            m = self.momentum
            self._range = DisplayRange(
                far=m * self._range.far + (1.0 - m) * new.far,
                near=m * self._range.near + (1.0 - m) * new.near,
            )
        return apply_range(depth, self._range)


class FixedRangeNormalizer(_RangeHolder):
    """A constant range: ``near`` maps to 1 and ``far`` to 0 (aligned inverse-depth units)."""

    def __init__(self, near: float, far: float) -> None:
        reason = check_fixed_range(near, far)
        if reason is not None:
            raise BadInputError(f"--normalize fixed:{near:g},{far:g}: {reason}")
        self._range = DisplayRange(far=float(far), near=float(near))

    def __call__(self, depth: np.ndarray) -> np.ndarray:
        return apply_range(_check_depth(depth), self._range)


class WindowRangeNormalizer(_RangeHolder):
    """Robust percentiles of the pooled (subsampled) pixels of the last ``frames`` frames.

    Memory is bounded: ``frames`` subsampled maps (1/16 of a frame each).
    """

    def __init__(self, frames: int = 60, low_pct: float = 2.0, high_pct: float = 98.0) -> None:
        if not 1 <= frames <= MAX_WINDOW_FRAMES:
            raise BadInputError(f"--normalize window:{frames}: N must be 1 to {MAX_WINDOW_FRAMES} frames "
                                "(each one is kept in memory)")
        self.frames = frames
        self.low_pct = low_pct
        self.high_pct = high_pct
        self._recent: deque[np.ndarray] = deque(maxlen=frames)
        self._range: DisplayRange | None = None

    def __call__(self, depth: np.ndarray) -> np.ndarray:
        depth = _check_depth(depth)
        self._recent.append(np.array(depth[::_SUBSAMPLE, ::_SUBSAMPLE], dtype=np.float32))
        self._range = robust_range(np.concatenate([d.ravel() for d in self._recent]), self.low_pct, self.high_pct)
        return apply_range(depth, self._range)


def parse_normalize(spec: str) -> DisplayNormalizer:
    """Build a normaliser from ``--normalize``: ``running``, ``fixed:NEAR,FAR``, ``window[:N]``."""
    text = spec.strip()
    kind, _, arg = text.partition(":")
    kind = kind.strip().lower()
    if kind == "running" and not arg:
        return RunningRangeNormalizer()
    if kind == "fixed":
        parts = arg.split(",")
        try:
            near, far = (float(p) for p in parts)
        except ValueError:
            raise BadInputError(f"--normalize {spec!r}: expected fixed:NEAR,FAR with two numbers, e.g. fixed:1,-1") from None
        return FixedRangeNormalizer(near=near, far=far)
    if kind == "window":
        if not arg:
            return WindowRangeNormalizer()
        try:
            frames = int(arg)
        except ValueError:
            raise BadInputError(f"--normalize {spec!r}: window:N needs an integer N, e.g. window:60") from None
        return WindowRangeNormalizer(frames=frames)
    raise BadInputError(f"--normalize {spec!r} is not known; allowed: {NORMALIZE_CHOICES}")
