"""Online co-alignment for live streams (docs/method.md, section 8): a rolling window, frozen anchors, early stop.

Usage, one tick per new frame t of a stream::

    aligner = OnlineAligner(lookahead=2, window=53)
    for d in dilations_that_fit(t):
        aligner.push(depth_snippet_ending_at_t, [t - 2 * d, t - d, t])     # depth [L, H, W]
    for frame in aligner.ready_frames():
        show(aligner.emit(frame))                                           # float32 [H, W]
    ...
    for frame, depth in aligner.flush():                                    # end of stream
        show(depth)

How it works:
- A snippet is *open* while one of its frames has not been emitted; its scale and shift may move.
  Once all its frames are emitted (or skipped) it is *frozen*: its fit-pixel predictions stay as
  fixed anchors for the frames still in the window, its full-resolution depth is dropped. Frozen
  anchors fix the gauge: later snippets are fitted to them, so the output's scale cannot jump.
- ``push`` warm-starts the new snippet with a robust (L1) fit of its frames to the current frame
  estimates (the per-pixel median of the predictions already there), so outlier blobs do not
  wreck it. A snippet that overlaps nothing yet (the first one) is pinned at scale 1, shift 0.
- Before a frame is emitted the open snippets are refined jointly (IRLS on the L1 consensus of
  every frame they touch, frozen predictions fixed; ``pipeline.coalign.open_snippets``), stopping early
  when converged. The refinement runs lazily, once per batch of pushes.
- What the aligner holds per snippet: fit samples of every frame (a sparse grid,
  ``fit_grid.FitGrid``) and full-resolution depth only of the frames it will still merge (emitted
  frames drop theirs). The node hands over a ``snippet_depth.SnippetDepth``: full-resolution depth
  only for the frames ``still_merged`` names, fit samples (taken on the model's device) for all;
  frames needed only for the fit can then be decoded cheaply
  (``pipeline.inference.decode_depth(pool=2)``). A plain ``[L, H, W]`` tensor works too (copied:
  the caller may reuse it).
- Memory and cost per push depend on the window and the snippets per frame, never on the stream
  length: frames older than ``window`` frames behind the newest are dropped (and skipped if they
  were never emitted).

Gauge over long streams: frame to frame the scale is held by the frozen anchors (no jumps); over
long spans it wanders slowly, as chained fits of noisy data do: on the synthetic bench stream the
output's gain against the truth moved about 5 % over 1000 frames, less than offline exact's own
gain moved along the same 1000 frames (12 %). The display normaliser's running range absorbs it.

Output units are those of ``align_snippets``' merged depth: ``s * (x - offset) + t`` averaged over
the snippets covering the frame, with ``offset`` the minimum of the first snippet pushed.
Everything is deterministic: the same pushes give the same output.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from pipeline.coalign.fit_grid import FitGrid, fit_grid
from pipeline.coalign.open_snippets import RefineProblem, refine_open_snippets
from pipeline.coalign.quality import online_settings
from pipeline.coalign.snippet_depth import SnippetDepth
from pipeline.coalign.snippet_set import MIN_SIDE
from pipeline.errors import BadInputError, RuntimeFailure
from pipeline.snippets import SnippetPlan
from pipeline.coalign.robust_fit import symmetric_robust_affine_fit


@dataclass
class _Snippet:
    frames: tuple[int, ...]
    fit: np.ndarray  # float64 [L, P], offset subtracted
    full: dict[int, torch.Tensor]  # slot -> [H, W] as pushed (offset not subtracted), frames still to merge
    scale: float
    shift: float
    pinned: bool  # held fixed by the refinement (first snippet, or a constant one)


@dataclass
class _FrameRecord:
    open: list[tuple[int, int]] = field(default_factory=list)  # (snippet id, slot in snippet)
    frozen: list[np.ndarray] = field(default_factory=list)  # fixed predictions [P]


class OnlineAligner:
    """Incremental co-alignment of depth snippets arriving in stream order (module docstring).

    Args:
        lookahead: frames to wait after a frame before it is ready (0 = lowest latency; only some
            values let more snippets cover a frame: ``pipeline.snippets.useful_lookaheads``). ``>= 0``.
        window: frames kept, counted back from the newest frame pushed; ``for_plan`` sizes it as
            ``SnippetPlan.history(lookahead)`` = ``(L - 1) * max_dilation + 1 + lookahead`` (53 for
            L=3, dilation 25, lookahead 2).
            Must exceed ``lookahead``. Older frames are dropped; a frame never emitted by then is skipped.
        quality: ``"fast"``, ``"balanced"`` or ``"quality"`` (fit stride, refinement solves, tolerance;
            see ``pipeline.coalign.quality.online_settings``).
    """

    def __init__(self, lookahead: int = 2, window: int = 53, quality: str = "fast") -> None:
        if isinstance(lookahead, bool) or not isinstance(lookahead, int) or lookahead < 0:
            raise BadInputError(f"online aligner: lookahead must be an int >= 0, got {lookahead!r}")
        if isinstance(window, bool) or not isinstance(window, int) or window <= lookahead:
            raise BadInputError(f"online aligner: window must be an int > lookahead ({lookahead}), got {window!r}")
        self.lookahead = lookahead
        self.window = window
        self.quality = quality
        self._settings = online_settings(quality)
        self._snippets: dict[int, _Snippet] = {}
        self._frames: dict[int, _FrameRecord] = {}
        self._next_id = 0
        self._newest = -1
        self._emitted_through = -1  # every frame <= this was emitted or skipped
        self._offset: float | None = None
        self._size: tuple[int, int] | None = None
        self._grid: FitGrid | None = None  # the fit grid at _size
        self._dirty = False
        self._flushed = False

    @classmethod
    def for_plan(cls, plan: SnippetPlan, lookahead: int = 2, quality: str = "fast") -> OnlineAligner:
        """An aligner whose window holds exactly the history ``plan`` needs at this lookahead."""
        return cls(lookahead=lookahead, window=plan.history(lookahead), quality=quality)

    def restarted(self, plan: SnippetPlan) -> OnlineAligner:
        """A fresh aligner with this one's lookahead and quality, its window sized for ``plan``."""
        return OnlineAligner.for_plan(plan, self.lookahead, self.quality)

    # ----------------------------------------------------------------- public API
    def push(self, depth: "torch.Tensor | np.ndarray | SnippetDepth", frame_indices: Sequence[int]) -> None:
        """Add one snippet: ``depth [L, H, W]`` (float, any device; copied) or a ``SnippetDepth``
        (taken as is) covering ``frame_indices``.

        Frame indices must strictly increase, and the last one must not be emitted yet.
        Raises ``BadInputError`` for a wrong shape, a size different from earlier snippets (start a
        new ``OnlineAligner`` when the stream's frame size changes),
        NaN/Inf values (rejected, never averaged in), bad indices or a push after ``flush``.
        A constant snippet is accepted: it is placed at the level of the estimates it overlaps
        (scale 1) and held there; it still counts in the merge.
        """
        snippet, frames = self._check_snippet(depth, frame_indices)
        if self._offset is None:
            self._offset = float((snippet.full if snippet.full.shape[0] else snippet.fit).min())
        fit = self._fit_rows(snippet)
        snippet_id = self._next_id
        self._next_id += 1
        self._newest = max(self._newest, frames[-1])
        scale, shift, pinned = self._warm_start(frames, fit)
        slots = [slot for slot, keep in enumerate(snippet.merged) if keep]
        full = dict(zip(slots, snippet.full))
        self._snippets[snippet_id] = _Snippet(frames, fit, full, scale, shift, pinned)
        oldest_kept = self._newest - self.window + 1
        for slot, frame in enumerate(frames):
            if frame >= oldest_kept:  # emitted frames still in the window tie it to their anchors
                self._frames.setdefault(frame, _FrameRecord()).open.append((snippet_id, slot))
        self._dirty = True
        self._advance_window()

    def advance(self, newest: int) -> None:
        """Frame ``newest`` has arrived, whether or not a snippet ends at it (strided plans run no
        snippet at some frames): the lookahead counts from it. Pushes may follow for the same frame."""
        if self._flushed:
            raise BadInputError("online aligner: advance after flush(); the stream has ended")
        if newest > self._newest:
            self._newest = newest
            self._advance_window()

    def ready_frames(self) -> list[int]:
        """Frames that ``emit`` would return now, oldest first: not yet emitted, covered by a
        snippet, and at least ``lookahead`` frames behind the newest frame (any frame after ``flush``).

        Before ``flush`` they stop at the first frame not covered yet (a strided snippet may still
        cover it), so no frame is skipped while it can still be covered."""
        limit = self._newest if self._flushed else self._newest - self.lookahead
        if not self._frames:
            return []
        ready = []  # frames before the oldest one any snippet touched are never covered: start there
        for f in range(max(self._emitted_through + 1, min(self._frames)), limit + 1):
            record = self._frames.get(f)
            if record is not None and record.open:
                ready.append(f)
            elif not self._flushed:
                break
        return ready

    def emit(self, frame_index: int) -> np.ndarray | None:
        """Aligned depth of ``frame_index``: float32 ``[H, W]``, or ``None`` when it is not ready yet
        (too recent for the lookahead, or no snippet covers it).

        Frames must be emitted in increasing order; frames skipped over count as emitted.
        Raises ``BadInputError`` for a frame already emitted, skipped or dropped from the window.
        """
        if frame_index <= self._emitted_through:
            raise BadInputError(
                f"online aligner: frame {frame_index} was already emitted, skipped or dropped; "
                f"emit frames after {self._emitted_through} in increasing order"
            )
        if frame_index not in self.ready_frames():
            return None
        if self._dirty:
            self._refine()
        depth = self._merge(frame_index)
        for k, slot in self._frames[frame_index].open:  # emitted: its full-resolution depth is done
            self._snippets[k].full.pop(slot, None)
        self._emitted_through = frame_index
        self._freeze_finished()
        return depth

    def flush(self) -> list[tuple[int, np.ndarray]]:
        """End of stream: emit every remaining covered frame with the snippets available, oldest
        first, as ``(frame_index, depth [H, W])``. No push is accepted afterwards."""
        self._flushed = True
        return [(f, self.emit(f)) for f in self.ready_frames()]

    @property
    def fit_stride(self) -> int:
        """The fit stride of this aligner's quality; ``fit_grid(H, W, fit_stride)`` is where it samples."""
        return self._settings.stride

    @property
    def full_frames_held(self) -> int:
        """Full-resolution frames held over all open snippets (memory check)."""
        return sum(len(s.full) for s in self._snippets.values())

    @property
    def open_snippets(self) -> int:
        """Snippets whose full-resolution depth is held (memory check)."""
        return len(self._snippets)

    @property
    def frames_held(self) -> int:
        """Frames with fit data held (memory check; at most ``window``)."""
        return len(self._frames)

    # ----------------------------------------------------------------- internals
    def _check_snippet(self, depth, frame_indices) -> tuple[SnippetDepth, tuple[int, ...]]:
        if self._flushed:
            raise BadInputError("online aligner: push after flush(); the stream has ended")
        if isinstance(depth, SnippetDepth):
            return self._check_parts(depth, frame_indices)
        if isinstance(depth, np.ndarray):
            depth = torch.from_numpy(np.ascontiguousarray(depth))
        if not isinstance(depth, torch.Tensor) or depth.ndim != 3:
            shape = tuple(depth.shape) if hasattr(depth, "shape") else type(depth).__name__
            raise BadInputError(f"online aligner: a snippet must be a tensor [L, H, W], got {shape}")
        # a copy: the caller may reuse its buffer for the next snippet while this one is held
        snippet = SnippetDepth.from_full(depth.to(torch.float32, copy=True))
        return self._check_parts(snippet, frame_indices)

    def _check_parts(self, snippet: SnippetDepth, frame_indices) -> tuple[SnippetDepth, tuple[int, ...]]:
        depth = snippet.full
        if not isinstance(depth, torch.Tensor) or depth.ndim != 3:
            shape = tuple(depth.shape) if hasattr(depth, "shape") else type(depth).__name__
            raise BadInputError(f"online aligner: a snippet's full depth must be a tensor [M, H, W], got {shape}")
        frames = tuple(int(f) for f in frame_indices)
        if len(frames) != len(snippet.merged) or not frames:
            raise BadInputError(
                f"online aligner: snippet has {len(snippet.merged)} frames but {len(frames)} frame indices"
            )
        if depth.shape[0] != sum(snippet.merged):
            raise BadInputError(
                f"online aligner: snippet flags {sum(snippet.merged)} frames to merge but brings {depth.shape[0]} full-resolution frames"
            )
        if snippet.fit is None and not all(snippet.merged):
            raise BadInputError("online aligner: a snippet without fit samples must bring every frame at full resolution")
        if any(b <= a for a, b in zip(frames[:-1], frames[1:])) or frames[0] < 0:
            raise BadInputError(f"online aligner: frame indices must be >= 0 and strictly increase, got {frames}")
        if frames[-1] <= self._emitted_through:
            raise BadInputError(
                f"online aligner: snippet ends at frame {frames[-1]}, already emitted (emitted through {self._emitted_through})"
            )
        size = tuple(depth.shape[1:])
        if self._size is None:
            if min(size) < MIN_SIDE:
                raise BadInputError(f"online aligner: frames of {size[0]}x{size[1]} px are too small; each side needs >= {MIN_SIDE} px")
            self._size = size
            self._grid = fit_grid(*size, self.fit_stride)  # fixed from here on
        elif size != self._size:
            raise BadInputError(
                f"online aligner: snippet is {size[0]}x{size[1]} px but earlier ones are {self._size[0]}x{self._size[1]}"
            )
        if snippet.fit is not None:
            pixels = self._grid.pixels
            if tuple(snippet.fit.shape) != (len(frames), pixels):
                raise BadInputError(
                    f"online aligner: fit samples must be [{len(frames)}, {pixels}] (fit_grid of {self._size[0]}x{self._size[1]} "
                    f"px, stride {self.fit_stride}), got {list(snippet.fit.shape)}"
                )
        # the sum is finite whenever every value is (the full check runs only if it is not); summed
        # in float32, as fp16 depth from the node overflows a half-precision sum
        for part in (depth, snippet.fit):
            if part is not None and not bool(torch.isfinite(part.sum(dtype=torch.float32))) and not bool(torch.isfinite(part).all()):
                raise BadInputError(f"online aligner: snippet for frames {frames} contains NaN or Inf; only finite depth is allowed")
        return snippet, frames

    def _fit_rows(self, snippet: SnippetDepth) -> np.ndarray:
        rows = snippet.fit if snippet.fit is not None else self._grid.take(snippet.full)
        return rows.cpu().double().numpy() - self._offset

    def _prediction(self, snippet_id: int, slot: int) -> np.ndarray:
        snippet = self._snippets[snippet_id]
        return snippet.scale * snippet.fit[slot] + snippet.shift

    def _frame_predictions(self, frame: int) -> list[np.ndarray]:
        record = self._frames[frame]
        return record.frozen + [self._prediction(k, slot) for k, slot in record.open]

    def _warm_start(self, frames: tuple[int, ...], fit: np.ndarray) -> tuple[float, float, bool]:
        sources, targets = [], []
        for slot, frame in enumerate(frames):
            if frame in self._frames:
                predictions = self._frame_predictions(frame)
                if predictions:
                    sources.append(fit[slot])
                    targets.append(np.median(np.stack(predictions), axis=0))
        constant = not float(fit.max() - fit.min()) > 1e-6 * max(abs(float(fit.max())), 1.0)
        if not sources:
            return 1.0, 0.0, True  # nothing to align to: this snippet sets the gauge
        scale, shift = symmetric_robust_affine_fit(np.concatenate(sources), np.concatenate(targets))
        if constant:
            return 1.0, shift, True
        return scale, shift, False

    def _refine(self) -> None:
        self._dirty = False
        free_ids = [k for k, s in self._snippets.items() if not s.pinned]
        if not free_ids:
            return
        column = {k: j for j, k in enumerate(free_ids)}
        touched = sorted({f for k in free_ids for f in self._snippets[k].frames if f in self._frames})
        entries = [len(self._frames[f].frozen) + len(self._frames[f].open) for f in touched]
        pixels = next(iter(self._snippets.values())).fit.shape[1]
        values = np.zeros((len(touched), max(entries), pixels))
        mask = np.zeros((len(touched), max(entries)))
        free = np.full((len(touched), max(entries)), -1, dtype=np.int64)
        for row, frame in enumerate(touched):
            record = self._frames[frame]
            slot = 0
            for fixed in record.frozen:
                values[row, slot], mask[row, slot] = fixed, 1.0
                slot += 1
            for k, pos in record.open:
                mask[row, slot] = 1.0
                if k in column:
                    values[row, slot], free[row, slot] = self._snippets[k].fit[pos], column[k]
                else:
                    values[row, slot] = self._prediction(k, pos)
                slot += 1
        scales = np.array([self._snippets[k].scale for k in free_ids])
        shifts = np.array([self._snippets[k].shift for k in free_ids])
        problem = RefineProblem(values, mask, free, scales, shifts)
        scales, shifts, _ = refine_open_snippets(problem, self._settings.max_solves, self._settings.tolerance)
        for k, scale, shift in zip(free_ids, scales.tolist(), shifts.tolist()):
            self._snippets[k].scale, self._snippets[k].shift = scale, shift

    def _merge(self, frame: int) -> np.ndarray:
        total = None
        record = self._frames[frame]
        for k, slot in record.open:
            snippet = self._snippets[k]
            if slot not in snippet.full:
                raise RuntimeFailure(
                    f"online aligner: frame {frame} is due but snippet {snippet.frames} brought only fit samples "
                    "for it (the pushes disagree with still_merged())"
                )
            aligned = (snippet.full[slot].float() - self._offset) * snippet.scale + snippet.shift
            total = aligned if total is None else total + aligned
        return (total / len(record.open)).cpu().numpy().astype(np.float32, copy=False)

    def _advance_window(self) -> None:
        oldest_kept = self._newest - self.window + 1
        if oldest_kept - 1 > self._emitted_through:
            self._emitted_through = oldest_kept - 1  # frames never emitted in time are skipped
            self._freeze_finished()
        for frame in [f for f in self._frames if f < oldest_kept]:
            del self._frames[frame]

    def _freeze_finished(self) -> None:
        """Freeze every snippet whose frames are all emitted: keep its fit predictions, drop the rest."""
        done = [k for k, s in self._snippets.items() if s.frames[-1] <= self._emitted_through]
        for k in done:
            for frame in self._snippets[k].frames:
                record = self._frames.get(frame)
                if record is None:
                    continue
                for slot_entry in [e for e in record.open if e[0] == k]:
                    record.open.remove(slot_entry)
                    record.frozen.append(self._prediction(*slot_entry))
            del self._snippets[k]
