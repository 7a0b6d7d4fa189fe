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
    rgb: the input frame the depth came from, uint8 [H, W, 3] at the depth's size, or None when
        the producer has none (or no sink asked for a layout with colour).
    received_at: ``time.perf_counter()`` when the node received the input frame (for the
        per-frame latency sinks report), or None.
    display_range: (near, far), the aligned-depth values mapped to 1 and 0 (the model's units),
        or None when unknown.
    cmap: colour map chosen live (OSC) for sinks that colour-map; None = each sink's own.
    mark: a text every colour picture of this frame carries burnt in (``encodings.burn_mark``), e.g.
        ``RANDOM_MODEL_MARK`` when the depth comes from the random test model; None = no mark.
        Raw values stay unmarked: ``encodings.MARKED_OUTPUTS`` says which sink formats carry it.
    keyframe: with ``--fill flow|hold``: True when the depth is this frame's own model depth, False
        when it was carried from an earlier keyframe; None without filling.
    depth_age_ms: with filling, how much older (capture time, ms) the keyframe whose depth this frame
        carries is than this frame (0 for a keyframe); None without filling.
    """

    index: int
    timestamp: float
    depth: np.ndarray
    rgb: np.ndarray | None = None
    received_at: float | None = None
    display_range: tuple[float, float] | None = None
    cmap: str | None = None
    mark: str | None = None
    keyframe: bool | None = None
    depth_age_ms: float | None = None


class EndOfStream(Exception):
    """Raised by ``Source.recv()`` when the source has no more frames (like aiortc's tracks)."""
