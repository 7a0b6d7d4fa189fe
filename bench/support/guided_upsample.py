"""The fast guided filter (He and Sun 2015) as a depth upsampler, measured by ``bench.fill_maths``.

Not offered to users: on our rendered scenes it was worse than bilinear inside every surface (it
copies the colour's shading and texture into the depth) and, on the heavily textured scene, near
depth edges too (docs/streaming.md has the numbers). It stays here so the measurement can be rerun.
"""

from __future__ import annotations

import cv2
import numpy as np


def _box(image: np.ndarray, radius: int) -> np.ndarray:
    return cv2.boxFilter(image, -1, (2 * radius + 1, 2 * radius + 1), borderType=cv2.BORDER_REFLECT)


def fast_guided_upsample(depth: np.ndarray, guide: np.ndarray, radius: int = 1, eps: float = 1e-4,
                         guide_blur: float = 0.0) -> np.ndarray:
    """Depth float32 ``[h, w]`` to the guide's size, following its edges.

    guide: uint8 RGB ``[H, W, 3]``, the full-size colour frame; used as grey in ``[0, 1]``, first
        blurred by a Gaussian of ``guide_blur`` px when given (to keep fine texture out).
    radius: box radius in low-resolution pixels; eps: the filter's regulariser (guide variance units:
        larger = closer to a plain blur).
    The linear model ``depth ~ a * guide + b`` is fitted in every low-resolution window, its
    coefficients are averaged, upsampled bilinearly and applied to the full-size guide.
    Returns float32 ``[H, W]``.
    """
    height, width = guide.shape[:2]
    grey = cv2.cvtColor(guide, cv2.COLOR_RGB2GRAY).astype(np.float32) / 255.0
    if guide_blur > 0:
        grey = cv2.GaussianBlur(grey, (0, 0), guide_blur)
    small = cv2.resize(grey, (depth.shape[1], depth.shape[0]), interpolation=cv2.INTER_AREA)
    depth = depth.astype(np.float32)
    mean_guide, mean_depth = _box(small, radius), _box(depth, radius)
    covariance = _box(small * depth, radius) - mean_guide * mean_depth
    variance = _box(small * small, radius) - mean_guide * mean_guide
    a = covariance / (variance + eps)
    b = mean_depth - a * mean_guide
    a_full = cv2.resize(_box(a, radius), (width, height), interpolation=cv2.INTER_LINEAR)
    b_full = cv2.resize(_box(b, radius), (width, height), interpolation=cv2.INTER_LINEAR)
    return a_full * grey + b_full
