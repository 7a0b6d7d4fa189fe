"""Depth carried between keyframes by optical flow (``--fill flow``).

The model gives depth for some frames only (keyframes), and late. Every frame still gets depth:
OpenCV's DIS optical flow between consecutive frames (grey, at processing size) carries the newest
keyframe depth forward by backward warping, and a keyframe that arrives late is re-carried through
the stored flows to the newest frame, so the output never waits for the model.

One step from frame ``a`` to the next pushed frame ``b``:

* backward flow ``w_b`` (``b -> a``) and forward flow ``w_f`` (``a -> b``), both by DIS;
* depth at ``b``: ``d_b(x) = d_a(x + w_b(x))`` (``cv2.remap``, bilinear, border replicate: no holes);
* forward-backward check (the usual occlusion test): ``x`` is unreliable where
  ``|w_b + w_f(x + w_b)|^2 >= 0.01 (|w_b|^2 + |w_f(x + w_b)|^2) + 0.5``; there the pixel keeps the
  value it had at ``a`` (hold, locally), which is what a disoccluded area can best show without a
  model.

A step whose flow fails (an OpenCV error, a non-finite flow) holds the whole frame and counts one
``fallbacks``; nothing is raised. Depth is never renormalised: units in are units out.

One carrier is used from one thread at a time (it keeps the previous frame and the flow history);
the node owns one per stream.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import cv2
import numpy as np

PRESETS = {
    "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
    "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
    "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
}
# The forward-backward test's constants (relative and absolute tolerance, px^2)
OCCLUSION_RELATIVE = 0.01
OCCLUSION_ABSOLUTE = 0.5


@dataclass(frozen=True)
class CarriedDepth:
    """Depth for one frame, carried from a keyframe.

    Attributes:
        depth: float32 ``[H, W]``, in the units of the keyframe depth given (no renormalisation).
        keyframe_index: frame index of the keyframe it comes from.
        steps: flow steps from that keyframe to this frame (0 = the keyframe itself).
        reliable_fraction: share of pixels in ``[0, 1]`` that passed the forward-backward check on
            the last step (1.0 for the keyframe itself, 0.0 for a step that fell back to hold).
    """

    depth: np.ndarray
    keyframe_index: int
    steps: int
    reliable_fraction: float


@dataclass(frozen=True)
class _FlowStep:
    """How depth moves from the previous pushed frame to frame ``index``.

    ``maps``: the backward-warp maps for ``cv2.remap`` in fixed point (CV_16SC2 + CV_16UC1: half the
    memory of float maps and a faster remap), None when the step holds (flow failed);
    ``reliable``: bool ``[H, W]``, pixels that passed the forward-backward check."""

    index: int
    maps: tuple[np.ndarray, np.ndarray] | None
    reliable: np.ndarray | None
    reliable_fraction: float


class DepthCarrier:
    """Carries keyframe depth to every pushed frame along DIS optical flow.

    Args:
        preset: DIS preset, ``ultrafast`` (default: the fastest, and its carried depth was as close
            to the truth as the slower presets' on our rendered scenes, docs/streaming.md),
            ``fast`` or ``medium``.
        history: flow steps kept (bounded memory), i.e. how late a keyframe may arrive and still be
            carried exactly; 64 steps are about 2 s at 30 fps.
        occlusion_check: run the forward-backward check (a second flow per frame); without it every
            pixel follows the backward flow.

    Not thread-safe: one carrier is used from one thread at a time.
    """

    def __init__(self, preset: str = "ultrafast", history: int = 64, occlusion_check: bool = True) -> None:
        if preset not in PRESETS:
            raise ValueError(f"unknown optical flow preset {preset!r}; use one of {', '.join(PRESETS)}")
        if int(history) < 1:
            raise ValueError(f"history must be at least 1 flow step, got {history}")
        self.preset = preset
        self.history = int(history)
        self.occlusion_check = bool(occlusion_check)
        self.fallbacks = 0  # steps whose flow failed and that held the depth instead
        self._dis = cv2.DISOpticalFlow_create(PRESETS[preset])
        self._steps: deque[_FlowStep] = deque(maxlen=self.history)
        self._oldest_index: int | None = None  # the frame the oldest stored step starts from
        self._newest_index: int | None = None
        self._previous_grey: np.ndarray | None = None
        self._grid: tuple[np.ndarray, np.ndarray] | None = None
        self._current: CarriedDepth | None = None

    @property
    def newest_index(self) -> int | None:
        """Index of the newest pushed frame (None before the first)."""
        return self._newest_index

    @property
    def current(self) -> CarriedDepth | None:
        """Depth valid at the newest pushed frame (None until a keyframe depth exists)."""
        return self._current

    def reset(self) -> None:
        """Forget frames, flows and depth (a new source, a size change); ``fallbacks`` is kept."""
        self._steps.clear()
        self._oldest_index = self._newest_index = None
        self._previous_grey = None
        self._grid = None
        self._current = None

    def push_frame(self, index: int, rgb: np.ndarray) -> CarriedDepth | None:
        """Add the next frame and return its depth (None until a keyframe depth exists).

        Args:
            index: frame index, strictly greater than the previous pushed one (gaps are frames the
                capture skipped: the flow simply goes from the previous pushed frame to this one).
            rgb: uint8 ``[H, W, 3]`` at processing size. A frame of another size than the previous
                one starts afresh (``reset``): nothing can be carried across a size change.
        """
        index = int(index)
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise ValueError(f"expected a uint8 RGB frame [H, W, 3], got {rgb.dtype} {tuple(rgb.shape)}")
        if self._newest_index is not None and index <= self._newest_index:
            raise ValueError(f"frame index {index} is not after the previous frame {self._newest_index}")
        grey = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)
        if self._previous_grey is not None and grey.shape != self._previous_grey.shape:
            self.reset()
        if self._previous_grey is None:
            self._oldest_index = index
        else:
            step = self._flow_step(index, self._previous_grey, grey)
            if len(self._steps) == self._steps.maxlen:
                self._oldest_index = self._steps[0].index  # the oldest step drops out with its start frame
            self._steps.append(step)
            if self._current is not None:
                self._current = self._carry(self._current, step)
        self._previous_grey = grey
        self._newest_index = index
        return self._current

    def set_keyframe(self, index: int, depth: np.ndarray) -> CarriedDepth:
        """Make ``depth``, the model's depth of the pushed frame ``index``, the current depth.

        It is carried forward through the stored flows to the newest pushed frame, and that carried
        depth is returned (and given by the following ``push_frame`` calls).

        Args:
            index: a frame already pushed; it may be many frames old (the model is late).
            depth: float32 ``[H, W]`` at the frames' size, any units.

        A keyframe older than the current one is ignored (the newer depth stays; the current depth
        is returned). A keyframe older than the stored history is carried from the oldest stored
        frame (its own motion before that is lost, so it lands slightly off; a longer ``history``
        avoids it). An index never pushed, or newer than the newest frame, raises ValueError.
        """
        index = int(index)
        if self._newest_index is None:
            raise ValueError("a keyframe needs its frame pushed first; no frame has been pushed")
        if index > self._newest_index:
            raise ValueError(f"keyframe {index} is newer than the newest pushed frame {self._newest_index}")
        depth = np.asarray(depth)
        if depth.shape != self._previous_grey.shape:
            raise ValueError(f"keyframe depth has shape {tuple(depth.shape)}, the frames are {self._previous_grey.shape}")
        if self._current is not None and index < self._current.keyframe_index:
            return self._current
        stored = [self._oldest_index] + [step.index for step in self._steps]
        if index >= self._oldest_index and index not in stored:
            raise ValueError(f"frame {index} was never pushed (skipped by the capture?); keyframes must be pushed frames")
        # nan_to_num: a non-finite model value must not spread through the warps
        carried = CarriedDepth(np.nan_to_num(depth.astype(np.float32, copy=True)), index, 0, 1.0)
        for step in self._steps:
            if step.index > index:
                carried = self._carry(carried, step)
        self._current = carried
        return carried

    def _carry(self, carried: CarriedDepth, step: _FlowStep) -> CarriedDepth:
        if step.maps is None:
            return CarriedDepth(carried.depth, carried.keyframe_index, carried.steps + 1, 0.0)
        warped = cv2.remap(carried.depth, step.maps[0], step.maps[1], cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_REPLICATE)
        if step.reliable is not None:
            warped = np.where(step.reliable, warped, carried.depth)
        return CarriedDepth(warped, carried.keyframe_index, carried.steps + 1, step.reliable_fraction)

    def _flow_step(self, index: int, previous: np.ndarray, grey: np.ndarray) -> _FlowStep:
        try:
            backward = self._dis.calc(grey, previous, None)  # b -> a: where each pixel of b was in a
            forward = self._dis.calc(previous, grey, None) if self.occlusion_check else None
        except cv2.error:
            return self._fallback(index)
        if not np.isfinite(backward).all() or (forward is not None and not np.isfinite(forward).all()):
            return self._fallback(index)
        map_x, map_y = self._pixel_grid(grey.shape)
        map_x = map_x + backward[..., 0]
        map_y = map_y + backward[..., 1]
        reliable = None
        fraction = 1.0
        if forward is not None:
            # the forward flow where each pixel of b lands in a, compared with its backward flow
            forward_there = cv2.remap(forward, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            mismatch = ((backward + forward_there) ** 2).sum(axis=2)
            magnitude = (backward**2).sum(axis=2) + (forward_there**2).sum(axis=2)
            reliable = mismatch < OCCLUSION_RELATIVE * magnitude + OCCLUSION_ABSOLUTE
            fraction = float(reliable.mean())
        maps = cv2.convertMaps(map_x, map_y, cv2.CV_16SC2)
        return _FlowStep(index, maps, reliable, fraction)

    def _fallback(self, index: int) -> _FlowStep:
        self.fallbacks += 1
        return _FlowStep(index, None, None, 0.0)

    def _pixel_grid(self, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        if self._grid is None or self._grid[0].shape != shape:
            height, width = shape
            xs, ys = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
            self._grid = (xs, ys)
        return self._grid
