"""What travels between the node's stages (pipecat style: control is data too).

Every work item carries the timing of its input frame so the last stage can measure end-to-end
latency. ``StreamEnd`` is sent after the last item and flows through every stage, which flushes
its own state before passing it on: shutdown is the same data flow as work.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch

from io_adapters.frames import DepthFrame


@dataclass(frozen=True)
class StreamEnd:
    """The end of the stream; ``reason`` is 'source ended', 'interrupted' or 'max frames reached'."""

    reason: str


@dataclass(frozen=True)
class FrameTiming:
    """Where a frame came from and when it entered the node.

    source_index: the frame's index in the source stream (drops make gaps).
    processed_index: 0-based count of frames the node kept; dilations count these.
    timestamp: presentation time from the source, seconds.
    received_at: ``time.perf_counter()`` when capture received it.
    """

    source_index: int
    processed_index: int
    timestamp: float
    received_at: float


@dataclass(frozen=True)
class CapturedFrame:
    """A frame that passed the drop policy. rgb: uint8 [H, W, 3] at source size."""

    timing: FrameTiming
    rgb: np.ndarray


@dataclass(frozen=True)
class EncodedFrame:
    """A frame after preprocessing and the VAE encoder (done once per frame).

    rgb: uint8 [H', W', 3] at processing size (the size of the depth maps).
    latent: [4, h, w] RGB latent on the model's device, h = H'/8.
    """

    timing: FrameTiming
    rgb: np.ndarray
    latent: torch.Tensor


@dataclass(frozen=True)
class SnippetDepths:
    """The decoded snippets that end at one new frame (one per dilation that fits).

    timing, rgb: the new frame (its latent is no longer needed downstream); both None for the
        snippet a stream shorter than one snippet gets at its end (no new frame then).
    snippets: list of (processed frame indices (L,), ``SnippetDepth``: full-resolution depth of the
        frames the aligner will still merge, fit samples of all; roughly [-1, 1]).
    """

    timing: FrameTiming | None
    rgb: np.ndarray | None
    snippets: list[tuple[tuple[int, ...], np.ndarray]]
    restart: Any = None  # a pipeline.snippets.SnippetPlan: flush the aligner and start one for it first


@dataclass(frozen=True)
class AlignedFrame:
    """One co-aligned output frame, before display normalisation.

    depth: float32 [H', W'], affine-invariant inverse depth (larger = nearer).
    """

    timing: FrameTiming
    rgb: np.ndarray
    depth: np.ndarray
    fill: "FillInfo | None" = None  # set by the fill stage (``--fill flow|hold``); None = a model frame as before
    source_rgb: np.ndarray | None = None  # uint8 [H, W, 3] at source size (fill stage), for ``--output-size``


@dataclass(frozen=True)
class FillInfo:
    """How an output frame of the fill stage got its depth.

    keyframe: True when the depth is the frame's own model depth (nothing carried).
    depth_age_ms: capture time of this frame minus that of the keyframe whose depth it carries, ms
        (0 for a keyframe).
    """

    keyframe: bool
    depth_age_ms: float


@dataclass(frozen=True)
class OutputFrame:
    """What the sinks get (``frame``: depth in [0, 1], 1 = nearest) plus its timing for latency."""

    timing: FrameTiming
    frame: DepthFrame
    source_rgb: np.ndarray | None = None  # uint8 [H, W, 3] at source size when kept (--fill), for sized sinks


# Kinds of live commands (OSC addresses under /rdstream/ use the same names).
COMMAND_KINDS = ("normalize/fixed", "normalize/running", "normalize/window", "cmap", "pause", "stop", "speed")


@dataclass(frozen=True)
class NodeCommand:
    """A live change asked for while the node runs (e.g. over OSC), already validated.

    kind: one of COMMAND_KINDS.
    args: its values: (near, far) floats with near > far for ``normalize/fixed``; (frames,) an int
        >= 1 for ``normalize/window``; (name,) for ``cmap`` and ``speed`` (a rung of
        ``pipeline.presets.SPEEDS``); (True/False,) for ``pause``; () otherwise.
    sent: the arguments exactly as they arrived (what an acknowledgement echoes); not compared.
    origin: who sent it, in words ('OSC from 127.0.0.1:50000', 'monitor page from 127.0.0.1'), so a
        stop can say who stopped the run; not compared.
    """

    kind: str
    args: tuple = ()
    sent: tuple = field(default=(), compare=False)
    origin: str = field(default="", compare=False)

    def from_origin(self, origin: str) -> "NodeCommand":
        """The same command, marked as sent by ``origin``."""
        return replace(self, origin=origin)
