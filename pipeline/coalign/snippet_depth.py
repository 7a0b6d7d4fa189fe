"""What the node hands the online aligner per snippet (``SnippetDepth``: full-resolution depth only
for the frames still to be merged, fit samples for all) and which frames those are
(``still_merged``), so the node decodes the others cheaply."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

@dataclass(frozen=True)
class SnippetDepth:
    """One snippet as the node hands it over (taken as is, not copied).

    full: depth ``[M, H, W]`` (any float dtype, e.g. the model's fp16) of the frames flagged in
        ``merged``, in snippet order; M may be 0 (the shape still gives H and W).
    merged: one flag per frame of the snippet: True = the aligner will still merge this frame.
    fit: float32 ``[L, P]`` fit samples of every frame on ``fit_grid(H, W, stride)``; None = take
        them from ``full`` (only when every frame is merged).
    """

    full: torch.Tensor
    merged: tuple[bool, ...]
    fit: torch.Tensor | None = None

    @classmethod
    def from_full(cls, depth: torch.Tensor) -> "SnippetDepth":
        """Every frame at full resolution, ``depth [L, H, W]``."""
        return cls(depth, (True,) * depth.shape[0], None)


def still_merged(frames: Sequence[int], lookahead: int, snippet_length: int,
                 covered_through: int | None = None, newest_seen: int | None = None) -> tuple[bool, ...]:
    """For a snippet ending at the newest frame ``frames[-1]``: which of its frames an ``OnlineAligner``
    fed in stream order (``advance`` called for every frame) will still merge into an emitted frame
    (not emitted before this push).

    Before the push the aligner has emitted every frame up to ``min(covered_through, newest_seen -
    lookahead)``: frames leave ``lookahead`` behind the newest frame it has seen, once covered.
    newest_seen: the newest frame before this push (default ``frames[-1] - 1``; the snippet that
        ends a stream after its last frame was seen passes that frame).
    covered_through: the newest frame covered by earlier snippets without gaps (default: with
        dilation 1 at every frame, ``newest_seen`` once the first full snippet has run, newest frame
        ``snippet_length - 1``; strided plans pass ``SnippetPlan.covered_before``).
    With L=3, dilations 1 and 25 at stride 1: 2 of the 6 frames at lookahead 0, 4 at lookahead 2..24.
    """
    newest = frames[-1]
    seen = newest - 1 if newest_seen is None else newest_seen
    if covered_through is None:
        covered_through = seen if seen >= snippet_length - 1 else -1
    emitted_through = min(covered_through, seen - lookahead)
    return tuple(f > emitted_through for f in frames)
