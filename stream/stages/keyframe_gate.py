"""When the model may take the next frame: ``--model-fps`` and ``--idle-fps`` (keyframe scheduling).

The model takes the newest frame whenever it is free (capture's newest-wins policy); this gate only
holds a frame back:
- ``model-fps``: less than 1 / model_fps seconds since the last keyframe (leaves GPU time to
  TouchDesigner on the same machine);
- ``still``: the scene has hardly changed since the last keyframe (``pipeline.scene_change``) and
  less than 1 / idle_fps seconds have passed.
A held frame is replaced by newer ones as capture's newest-wins policy does; with ``--fill`` every
frame still goes out, carried from the last keyframe. The still rule starts after ``warm_up``
keyframes (the first snippet's frames), so a still picture at start still gets its first depth at once.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from pipeline.scene_change import STILL_MEAN_DIFFERENCE, mean_difference, thumbnail

SKIP_REASONS = ("model-fps", "still")


class KeyframeGate:
    """model_fps, idle_fps: caps in keyframes per second (None = no cap / no idle rule); warm_up:
    keyframes before the idle rule applies."""

    def __init__(self, model_fps: float | None = None, idle_fps: float | None = None,
                 still_difference: float = STILL_MEAN_DIFFERENCE, warm_up: int = 0) -> None:
        self.warm_up = warm_up
        self.taken_count = 0
        self.model_fps = model_fps
        self.idle_fps = idle_fps
        self.still_difference = still_difference
        self.skips: Counter[str] = Counter({reason: 0 for reason in SKIP_REASONS})  # frames held back, by reason
        self.last_reason: str | None = None  # why the newest frame held back was, None after a keyframe
        self._last_at: float | None = None
        self._last_thumb: np.ndarray | None = None
        self._judged: int | None = None  # the frame counted in ``skips`` (each frame once)
        self._thumb: tuple[int, np.ndarray] | None = None  # (index, thumbnail) of the newest frame judged

    @property
    def active(self) -> bool:
        return self.model_fps is not None or self.idle_fps is not None

    def wait_s(self, index: int, rgb: np.ndarray, now: float) -> float:
        """Seconds until frame ``index`` (uint8 [H, W, 3]) may go to the model; 0 = now."""
        if self._last_at is None:
            return 0.0
        since = now - self._last_at
        wait, reason = 0.0, None
        if self.model_fps is not None and since < 1.0 / self.model_fps:
            wait, reason = 1.0 / self.model_fps - since, "model-fps"
        if (self.idle_fps is not None and self.taken_count >= self.warm_up and since < 1.0 / self.idle_fps
                and self._is_still(index, rgb)):
            if 1.0 / self.idle_fps - since > wait:
                wait, reason = 1.0 / self.idle_fps - since, "still"
        if reason is not None:
            self.last_reason = reason
            if self._judged != index:
                self._judged = index
                self.skips[reason] += 1
        return wait

    def taken(self, index: int, rgb: np.ndarray, now: float) -> None:
        """The model took frame ``index``: the reference for the next decisions."""
        self._last_at = now
        self.taken_count += 1
        self.last_reason = None
        if self.idle_fps is not None:
            self._last_thumb = self._thumbnail(index, rgb)

    def _is_still(self, index: int, rgb: np.ndarray) -> bool:
        return (self._last_thumb is not None
                and mean_difference(self._thumbnail(index, rgb), self._last_thumb) < self.still_difference)

    def _thumbnail(self, index: int, rgb: np.ndarray) -> np.ndarray:
        """The frame's thumbnail, made once per frame (judged while held, then taken)."""
        if self._thumb is None or self._thumb[0] != index:
            self._thumb = (index, thumbnail(rgb))
        return self._thumb[1]
