"""Depth carried between keyframes by optical flow (``--fill flow``).

The model gives depth for some frames only (keyframes), and late. Every frame still gets depth:
OpenCV's DIS optical flow between consecutive frames (grey, at processing size) carries the newest
keyframe depth forward by backward warping, and a keyframe that arrives late is re-carried through
the stored flows to the newest frame, so the output never waits for the model.

One step from frame ``a`` to the next pushed frame ``b``:

* backward flow ``w_b`` (``b -> a``, DIS, ``pipeline.optical_flow``): pixel ``x`` of ``b`` was at
  ``x + w_b(x)`` in ``a``;
* the steps are chained as coordinates, not as pictures: the carrier keeps, for every pixel of the
  newest frame, where it was in the keyframe, and samples the keyframe depth once (``cv2.remap``,
  bilinear, border replicate: no holes). Warping the depth picture step after step would blur it
  once per step (each bilinear resample is a small blur; depth edges wash out over a few frames);
  the coordinates are chained by a nearest lookup plus the sub-pixel remainder, which keeps them
  exact for a translation and does not mix the two sides of an object's edge;
* optional forward-backward check (``pipeline.optical_flow``: a second flow, the usual occlusion
  test): where it fails, the pixel keeps what it showed in ``a`` (hold, locally). It is off by
  default: on our rendered scenes holding the unreliable pixels was worse than following the flow
  there, at every speed and texture (docs/streaming.md has the numbers), and it doubles the flow cost.

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

from pipeline.optical_flow import DEFAULT_PRESET, FlowStep, create_flow, flow_step, pixel_grid


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
class _Carry:
    """The current depth as the keyframe depth and, per pixel of the newest frame, where that pixel
    was in the keyframe (float32 ``[H, W, 2]``, x and y)."""

    keyframe: np.ndarray
    keyframe_index: int
    coords: np.ndarray
    steps: int
    reliable_fraction: float

    def depth(self) -> CarriedDepth:
        sampled = cv2.remap(self.keyframe, self.coords, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        return CarriedDepth(sampled, self.keyframe_index, self.steps, self.reliable_fraction)


class DepthCarrier:
    """Carries keyframe depth to every pushed frame along DIS optical flow.

    Args:
        preset: DIS settings (``pipeline.optical_flow.FLOW_PRESETS``): ``fine`` (default: the best
            accuracy for its time on our rendered scenes), ``ultrafast`` (half the flow time,
            clearly less accurate), ``fast``, or ``medium`` (the most accurate, about 4x the time).
        history: flow steps kept (bounded memory: 8 bytes per pixel and step, 9 with the check),
            i.e. how late a keyframe may arrive and still be carried exactly; 64 steps are about
            2 s at 30 fps.
        occlusion_check: run the forward-backward check and hold the pixels that fail it (a second
            flow per frame). Off by default: it measured worse than following the flow everywhere.

    Depth may be any quantity (aligned inverse depth, display depth): it is only moved, never
    mixed across frames or rescaled. Not thread-safe: one carrier is used from one thread at a time.
    """

    def __init__(self, preset: str = DEFAULT_PRESET, history: int = 64, occlusion_check: bool = False) -> None:
        if int(history) < 1:
            raise ValueError(f"history must be at least 1 flow step, got {history}")
        self.preset = preset
        self.history = int(history)
        self.occlusion_check = bool(occlusion_check)
        self._dis = create_flow(preset)
        self.fallbacks = 0  # steps whose flow failed and that held the depth instead
        self._steps: deque[FlowStep] = deque(maxlen=self.history)
        self._oldest_index: int | None = None  # the frame the oldest stored step starts from
        self._newest_index: int | None = None
        self._previous_grey: np.ndarray | None = None
        self._grid: np.ndarray | None = None
        self._carry: _Carry | None = None
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
        self._carry = None
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
            if self._carry is not None:
                self._carry = _chain(self._carry, step)
                self._current = self._carry.depth()
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
        keyframe = np.nan_to_num(depth.astype(np.float32, copy=True), posinf=0.0, neginf=0.0)
        carry = _Carry(keyframe, index, pixel_grid(keyframe.shape), 0, 1.0)
        for step in self._steps:
            if step.index > index:
                carry = _chain(carry, step)
        self._carry = carry
        self._current = carry.depth()
        return self._current

    def _flow_step(self, index: int, previous: np.ndarray, grey: np.ndarray) -> FlowStep:
        if self._grid is None or self._grid.shape[:2] != grey.shape:
            self._grid = pixel_grid(grey.shape)
        step = flow_step(self._dis, index, previous, grey, self._grid, self.occlusion_check)
        if step is None:  # the flow failed: this step holds the depth
            self.fallbacks += 1
            step = FlowStep(index, None, None, 0.0)
        return step


def _chain(carry: _Carry, step: FlowStep) -> _Carry:
    """The carry one step on: each pixel looks up, at the nearest pixel to where it came from, that
    pixel's keyframe position, plus its own sub-pixel remainder (exact for a translation; a
    bilinear lookup would average positions across an object's edge and land between the two)."""
    if step.source is None:
        return _Carry(carry.keyframe, carry.keyframe_index, carry.coords, carry.steps + 1, 0.0)
    nearest = np.rint(step.source)
    coords = cv2.remap(carry.coords, nearest, None, cv2.INTER_NEAREST, borderMode=cv2.BORDER_REPLICATE)
    coords += step.source - nearest
    if step.reliable is not None:
        coords = np.where(step.reliable[..., None], coords, carry.coords)
    return _Carry(carry.keyframe, carry.keyframe_index, coords, carry.steps + 1, step.reliable_fraction)
