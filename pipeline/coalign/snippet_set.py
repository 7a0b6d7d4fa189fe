"""Validated snippet sets and the fit samples every co-alignment solver works on (docs/method.md, section 5).

A *snippet set* is K snippets: snippet k is a depth tensor ``[L_k, H, W]`` covering the frames
``frame_indices[k]`` (strictly increasing ints in ``[0, num_frames)``). Solvers do not see the
snippets directly but a flat list of *entries*: one entry per (snippet, frame) pair, holding that
frame's fit pixels, preprocessed as the reference does:

1. subtract the global minimum over all snippets (so every value is ``>= 0``),
2. crop 2 px at each border,
3. keep every ``stride``-th pixel in both axes (10 in the reference) -> ``P`` pixels per entry.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from pipeline.errors import BadInputError

#: Pixels cropped at each border before the fit (reference value).
FIT_CROP_PX = 2
#: Keep every n-th pixel in both axes for the fit (reference value).
FIT_STRIDE = 10
#: Smallest frame side the crop leaves pixels for.
MIN_SIDE = 2 * FIT_CROP_PX + 1


@dataclass(frozen=True)
class SnippetSet:
    """Validated snippets, still at full resolution.

    Attributes:
        depths: K float tensors ``[L_k, H, W]`` on their original device and dtype.
        frame_indices: K tuples of frame numbers, strictly increasing, each in ``[0, num_frames)``.
        num_frames: N, frames of the video.
        height, width: frame size shared by all snippets.
        minimum: smallest value over all snippets.
    """

    depths: tuple[torch.Tensor, ...]
    frame_indices: tuple[tuple[int, ...], ...]
    num_frames: int
    height: int
    width: int
    minimum: float

    @property
    def num_snippets(self) -> int:
        return len(self.depths)

    def coverage(self) -> np.ndarray:
        """Number of snippets covering each frame, int ``[N]``."""
        counts = np.zeros(self.num_frames, dtype=np.int64)
        for frames in self.frame_indices:
            counts[list(frames)] += 1
        return counts

    def levels(self) -> tuple[list[int], int]:
        """Regulariser level of each snippet (docs/method.md, section 5 "per dilation level").

        A level is the set of snippets sharing one frame-step pattern, e.g. ``(25, 25)`` for
        dilation 25 with L=3; levels are numbered in order of first appearance.
        Returns ``(level_of_snippet [K], number_of_levels)``.
        """
        ids: dict[tuple[int, ...], int] = {}
        level_of = []
        for frames in self.frame_indices:
            pattern = tuple(b - a for a, b in zip(frames[:-1], frames[1:]))
            level_of.append(ids.setdefault(pattern, len(ids)))
        return level_of, len(ids)


@dataclass(frozen=True)
class FitSamples:
    """Preprocessed fit pixels, one row per (snippet, frame) entry.

    Attributes:
        values: float32 ``[E, P]``, min-subtracted (``>= 0``), cropped and subsampled.
        snippet_of_entry: int64 ``[E]``, snippet k of each entry.
        frame_of_entry: int64 ``[E]``, frame n of each entry.
        entries_per_frame: int64 ``[N]``, snippets covering each frame (all ``>= 1``).
        level_of_snippet: int64 ``[K]``, regulariser level of each snippet.
        num_levels: number of levels.
        global_min: the minimum that was subtracted (applies to the full-resolution merge too).
        slots: snippet slots of the reference's padded ``[slots, N, P]`` tensor, over which its
            data terms are means (missing entries count as 0): one slot per frame position of
            each level, i.e. the sum of the levels' snippet lengths (6 for L=3, dilations 1 and
            25), whether or not some frame is covered that often (on clips of 100 frames or
            fewer no frame is covered by all 3 snippets of dilation 25).
    """

    values: torch.Tensor
    snippet_of_entry: torch.Tensor
    frame_of_entry: torch.Tensor
    entries_per_frame: torch.Tensor
    level_of_snippet: torch.Tensor
    num_levels: int
    global_min: float
    slots: int

    @property
    def num_frames(self) -> int:
        return int(self.entries_per_frame.shape[0])

    @property
    def num_snippets(self) -> int:
        return int(self.level_of_snippet.shape[0])

    @property
    def pixels(self) -> int:
        return int(self.values.shape[1])


def validate_snippets(
    depths: Sequence[torch.Tensor | np.ndarray],
    frame_indices: Sequence[Sequence[int]],
    num_frames: int,
) -> SnippetSet:
    """Check a snippet set and return it typed; every problem is a one-line ``BadInputError``.

    Rejected: no snippets; a count of frame lists different from the count of snippets; a snippet
    that is not ``[L, H, W]`` or whose L differs from its frame list; snippets of different
    ``H, W``; frames smaller than 5 px a side (the 2 px crop needs them); frame lists that are not
    strictly increasing or leave ``[0, num_frames)``; NaN or Inf values (rejected, not masked: a
    non-finite model output means a broken run and must not be averaged into the video); a frame
    that no snippet covers (its depth would be undefined).
    Numpy arrays are accepted and turned into tensors.
    """
    if isinstance(num_frames, bool) or not isinstance(num_frames, (int, np.integer)) or num_frames < 1:
        raise BadInputError(f"co-alignment: num_frames must be a positive int, got {num_frames!r}")
    num_frames = int(num_frames)
    if depths is None or len(depths) == 0:
        raise BadInputError("co-alignment: no snippets given; at least one snippet [L, H, W] is needed")
    if frame_indices is None or len(frame_indices) != len(depths):
        got = "none" if frame_indices is None else len(frame_indices)
        raise BadInputError(
            f"co-alignment: {len(depths)} snippets but {got} frame-index lists; give one list per snippet"
        )
    tensors: list[torch.Tensor] = []
    frame_lists: list[tuple[int, ...]] = []
    extremes: list[torch.Tensor] = []
    size = None
    for k, (depth, frames) in enumerate(zip(depths, frame_indices)):
        if isinstance(depth, np.ndarray):
            depth = torch.from_numpy(depth)
        if not isinstance(depth, torch.Tensor) or depth.ndim != 3:
            shape = tuple(depth.shape) if hasattr(depth, "shape") else type(depth).__name__
            raise BadInputError(f"co-alignment: snippet {k} must be a tensor [L, H, W], got {shape}")
        if not depth.is_floating_point():
            depth = depth.float()
        frames = tuple(int(f) for f in frames)
        if len(frames) != depth.shape[0]:
            raise BadInputError(
                f"co-alignment: snippet {k} has {depth.shape[0]} frames but {len(frames)} frame indices"
            )
        if any(b <= a for a, b in zip(frames[:-1], frames[1:])):
            raise BadInputError(f"co-alignment: frame indices of snippet {k} must strictly increase, got {frames}")
        if frames[0] < 0 or frames[-1] >= num_frames:
            raise BadInputError(
                f"co-alignment: snippet {k} covers frames {frames}, outside [0, {num_frames - 1}]"
            )
        if size is None:
            size = tuple(depth.shape[1:])
            if min(size) < MIN_SIDE:
                raise BadInputError(
                    f"co-alignment: frames of {size[0]}x{size[1]} px are too small; each side needs >= {MIN_SIDE} px"
                )
        elif tuple(depth.shape[1:]) != size:
            raise BadInputError(
                f"co-alignment: snippet {k} is {depth.shape[1]}x{depth.shape[2]} px but snippet 0 is "
                f"{size[0]}x{size[1]}; all snippets must share one frame size"
            )
        # min and max propagate NaN and reach +-Inf, so one pass both checks and finds the minimum;
        # they stay on the device and are read once for all snippets (one wait, not one per snippet)
        extremes.append(torch.stack(torch.aminmax(depth)))
        tensors.append(depth)
        frame_lists.append(frames)
    lows_highs = torch.stack([e.to(extremes[0]) for e in extremes]).cpu().double().numpy()
    for k, (low, high) in enumerate(lows_highs):
        if not (np.isfinite(low) and np.isfinite(high)):
            raise BadInputError(f"co-alignment: snippet {k} contains NaN or Inf values; only finite depth is allowed")
    minimum = float(lows_highs[:, 0].min())
    snippets = SnippetSet(tuple(tensors), tuple(frame_lists), num_frames, size[0], size[1], minimum)
    uncovered = np.flatnonzero(snippets.coverage() == 0)
    if uncovered.size:
        shown = ", ".join(str(n) for n in uncovered[:5]) + (", ..." if uncovered.size > 5 else "")
        raise BadInputError(
            f"co-alignment: frames {shown} are covered by no snippet; every frame in [0, {num_frames - 1}] needs one"
        )
    return snippets


def fit_samples(snippets: SnippetSet, stride: int = FIT_STRIDE, device: torch.device | str | None = None) -> FitSamples:
    """Preprocess a snippet set into fit samples (module docstring), float32 on ``device``.

    ``device`` defaults to the device of the first snippet. fp16/bf16 input is computed in fp32.
    """
    device = torch.device(device) if device is not None else snippets.depths[0].device
    global_min = snippets.minimum
    snippet_of, frame_of = [], []
    crop = FIT_CROP_PX
    rows = [depth[:, crop : snippets.height - crop : stride, crop : snippets.width - crop : stride] for depth in snippets.depths]
    for k, frames in enumerate(snippets.frame_indices):
        snippet_of.extend([k] * len(frames))
        frame_of.extend(frames)
    counts = snippets.coverage()
    level_of, num_levels = snippets.levels()
    level_lengths = {level: len(frames) for level, frames in zip(level_of, snippets.frame_indices)}
    # max(): duplicated snippets can cover a frame more often than a level has positions
    slots = max(sum(level_lengths.values()), int(counts.max()))
    return FitSamples(
        values=torch.cat([r.to(device=device, dtype=torch.float32) for r in rows]).flatten(1) - global_min,
        snippet_of_entry=torch.tensor(snippet_of, dtype=torch.int64, device=device),
        frame_of_entry=torch.tensor(frame_of, dtype=torch.int64, device=device),
        entries_per_frame=torch.from_numpy(counts).to(device),
        level_of_snippet=torch.tensor(level_of, dtype=torch.int64, device=device),
        num_levels=num_levels,
        global_min=global_min,
        slots=slots,
    )


def fit_pixel_count(height: int, width: int, stride: int = FIT_STRIDE) -> int:
    """P, fit pixels per frame of ``height x width`` after the crop and subsampling."""
    inner_h, inner_w = height - 2 * FIT_CROP_PX, width - 2 * FIT_CROP_PX
    return math.ceil(inner_h / stride) * math.ceil(inner_w / stride)


def stride_for_min_pixels(height: int, width: int, stride: int, min_pixels: int) -> int:
    """The largest stride ``<= stride`` leaving at least ``min_pixels`` fit pixels per frame (or 1)."""
    while stride > 1 and fit_pixel_count(height, width, stride) < min_pixels:
        stride -= 1
    return stride
