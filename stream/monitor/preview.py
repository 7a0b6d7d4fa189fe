"""The page's live picture: the newest input and depth frame side by side in one small JPEG, made
only on request.

The display stage hands every output frame to ``PreviewTap.offer`` (it keeps references, no copy,
no work). Only when a page asks for a picture is the newest frame downscaled, colour-mapped and
JPEG-encoded, on a worker thread, at most ``MAX_FPS`` times a second however many pages ask:
no page open, no encoding.
"""

from __future__ import annotations

import io
import time
from dataclasses import dataclass

import anyio
import numpy as np

from io_adapters.encodings import apply_colormap, burn_mark

MAX_FPS = 10.0
# Longer edge of a preview: enough to judge a depth map on a laptop screen, small to send.
PREVIEW_EDGE = 320
JPEG_QUALITY = 80
PREVIEW_CMAP = "turbo"


@dataclass(frozen=True)
class Preview:
    """JPEG bytes of [input | depth] side by side (one request, one encoding); ``index``: their
    source frame."""

    index: int
    jpeg: bytes


def to_jpeg(rgb: np.ndarray, edge: int = PREVIEW_EDGE) -> bytes:
    """uint8 [H, W, 3] -> JPEG bytes, the longer edge at most ``edge`` pixels."""
    from PIL import Image

    image = Image.fromarray(np.ascontiguousarray(rgb), "RGB")
    image.thumbnail((edge, edge))
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=JPEG_QUALITY)
    return out.getvalue()


def encode_preview(index: int, rgb: np.ndarray | None, depth01: np.ndarray, cmap: str | None,
                   mark: str | None = None) -> Preview:
    """Downscale first (a stride, before the colour map), then encode input and depth side by side.

    rgb: uint8 [H, W, 3] at the depth's size, or None; depth01: float [H, W] in [0, 1] (1 = near);
    mark: text burnt into the depth picture (the random test model's "not depth" mark), or None.
    """
    step = max(1, int(np.ceil(max(depth01.shape) / PREVIEW_EDGE)))
    depth_rgb = apply_colormap(depth01[::step, ::step], cmap or PREVIEW_CMAP)
    if mark:
        depth_rgb = burn_mark(np.ascontiguousarray(depth_rgb), mark)
    if rgb is None or rgb.shape[:2] != depth01.shape:  # no colour kept: a grey placeholder
        rgb = np.full_like(depth_rgb, 64)
    else:
        rgb = rgb[::step, ::step]
    return Preview(index, to_jpeg(np.concatenate([rgb, depth_rgb], axis=1), edge=2 * PREVIEW_EDGE))


class PreviewTap:
    """Newest output frame in, newest preview out (rate-limited, encoded off the event loop)."""

    def __init__(self, max_fps: float = MAX_FPS) -> None:
        self.min_interval_s = 1.0 / max_fps
        self._frame: tuple[int, np.ndarray | None, np.ndarray, str | None, str | None] | None = None
        self._preview: Preview | None = None
        self._made_at = -float("inf")
        self._lock = anyio.Lock()
        self.encoded = 0  # previews made so far (a run without a page stays at 0)

    def offer(self, index: int, rgb: np.ndarray | None, depth01: np.ndarray, cmap: str | None,
              mark: str | None = None) -> None:
        """Called by the display stage for each output frame: keeps references only."""
        self._frame = (index, rgb, depth01, cmap, mark)

    async def latest(self) -> Preview | None:
        """The newest preview, re-encoded when older than the rate allows; None before a frame."""
        async with self._lock:  # pages asking together share one encoding
            frame = self._frame
            if frame is None:
                return None
            fresh = self._preview is not None and self._preview.index == frame[0]
            if fresh or time.monotonic() - self._made_at < self.min_interval_s:
                return self._preview
            self._preview = await anyio.to_thread.run_sync(encode_preview, *frame)
            self._made_at = time.monotonic()
            self.encoded += 1
            return self._preview
