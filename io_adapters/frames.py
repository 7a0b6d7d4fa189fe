"""The two frame types that travel between sources, the node and sinks.

Timestamps travel with every frame (seconds, monotonic within one stream).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class VideoFrame:
    """One input frame.

    index: 0-based position in the source's stream.
    timestamp: seconds since the start of the stream (presentation time).
    rgb: uint8 [H, W, 3], RGB order.
    """

    index: int
    timestamp: float
    rgb: np.ndarray


@dataclass(frozen=True)
class DepthFrame:
    """One output frame handed to sinks.

    depth: float32 [H, W] in [0, 1]; 1 = nearest (affine-invariant inverse depth after the
        node's normalisation). 8- and 16-bit encodings are scaled from it (0..255, 0..65535).
    rgb: the matching input frame, uint8 [H, W, 3], or None when the producer has none.
    """

    index: int
    timestamp: float
    depth: np.ndarray
    rgb: np.ndarray | None = None


class EndOfStream(Exception):
    """Raised by ``Source.recv()`` when the source has no more frames (like aiortc's tracks)."""
