"""How much a frame changed since another one: the still-scene test of the keyframe scheduler.

Both frames are reduced to small grey thumbnails (``THUMB_WIDTH`` pixels wide, area-averaged, so
sensor noise averages out) and compared by their mean absolute difference in [0, 1] (1 = black to
white everywhere). A scene counts as still below ``STILL_MEAN_DIFFERENCE``: 0.01, about 2.5 grey
levels of 255 on average, above the noise of a webcam in a lit room after the averaging, below the
change of a hand moving through a tenth of the picture.
"""

from __future__ import annotations

import cv2
import numpy as np

THUMB_WIDTH = 64
STILL_MEAN_DIFFERENCE = 0.01


def thumbnail(rgb: np.ndarray) -> np.ndarray:
    """uint8 [H, W, 3] -> float32 [h, THUMB_WIDTH] grey in [0, 1] (h keeps the aspect, at least 1)."""
    height, width = rgb.shape[:2]
    small_w = min(THUMB_WIDTH, width)
    small_h = max(1, round(height * small_w / width))
    grey = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)
    return cv2.resize(grey, (small_w, small_h), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0


def mean_difference(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference of two thumbnails, in [0, 1]; 1.0 when their sizes differ (a new source size)."""
    if a.shape != b.shape:
        return 1.0
    return float(np.abs(a - b).mean())
