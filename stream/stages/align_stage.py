"""Online co-alignment: hand each new snippet to the aligner and emit frames ``lookahead`` behind.

Frame n is emitted once the newest processed frame is n + lookahead (more lookahead: more
snippets cover the frame before it leaves, closer to offline quality); the aligner decides.
Frames at the very start wait until the first snippet covers them. At the end of the stream
the aligner is flushed and every remaining frame is emitted, so a file run without drops
writes every input frame.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np

from pipeline.coalign.snippet_depth import SnippetDepth
from stream.model.model_thread import ModelThread
from stream.stages.messages import AlignedFrame, FrameTiming, SnippetDepths, StreamEnd
from stream.stages.rolling_window import RollingWindow
from stream.stages.stage import Stage


class StreamAligner(Protocol):
    """The part of ``pipeline.coalign.online.OnlineAligner`` the node uses (it applies the lookahead)."""

    def push(self, depth: SnippetDepth, frame_indices: Sequence[int]) -> None:
        """Add one snippet: depth float32 [L, H, W] for processed frames ``frame_indices``."""

    def advance(self, newest: int) -> None:
        """Frame ``newest`` arrived (with or without snippets ending at it); the lookahead counts from it."""

    def ready_frames(self) -> list[int]:
        """Frames ``emit`` would return now, oldest first (covered and ``lookahead`` behind the newest)."""

    def emit(self, frame_index: int) -> np.ndarray | None:
        """The aligned depth [H, W] of a ready frame (frames must be emitted in increasing order)."""

    def flush(self) -> list[tuple[int, np.ndarray]]:
        """End of stream: every remaining covered frame as (index, depth [H, W]), oldest first."""

    def restarted(self, plan) -> "StreamAligner":
        """A fresh aligner of the same kind, lookahead and quality for ``plan`` (``/rdstream/speed``)."""


class AlignStage(Stage):
    """SnippetDepths -> AlignedFrame, in frame order; the aligner decides when a frame is ready."""

    name = "align"

    def __init__(self, aligner: StreamAligner, lookahead: int, snip_len: int, thread: ModelThread) -> None:
        super().__init__()
        self.aligner = aligner
        self.thread = thread
        # Frames wait here from arrival until emitted: lookahead frames, or L - 1 at the start of
        # the stream; the slack covers an aligner that answers a little later.
        self.waiting: RollingWindow[tuple[FrameTiming, np.ndarray]] = RollingWindow(lookahead + snip_len + 8)
        self.lost = 0  # frames the aligner skipped (never covered by a snippet in time)

    async def process(self, item: SnippetDepths) -> Sequence[AlignedFrame]:
        if item.timing is not None:
            self.waiting.add(item.timing.processed_index, (item.timing, item.rgb))
        newest = item.timing.processed_index if item.timing is not None else None
        out = []
        if item.restart is not None:  # a new snippet plan: the old aligner's frames leave first
            out = await self.thread.run(self._restart, item.restart)
        return out + await self.thread.run(self._push_and_emit, item.snippets, newest)

    async def finish(self, end: StreamEnd) -> Sequence[AlignedFrame]:
        return await self.thread.run(self._flush)

    def _push_and_emit(self, snippets, newest: int | None = None) -> list[AlignedFrame]:
        if newest is not None:
            self.aligner.advance(newest)
        for indices, depth in snippets:
            self.aligner.push(depth, indices)
        return [self._aligned(n, self.aligner.emit(n)) for n in self.aligner.ready_frames()]

    def _restart(self, plan) -> list[AlignedFrame]:
        out = [self._aligned(n, depth) for n, depth in self.aligner.flush()]
        self.aligner = self.aligner.restarted(plan)
        return out

    def _flush(self) -> list[AlignedFrame]:
        out = [self._aligned(n, depth) for n, depth in self.aligner.flush()]
        self.lost += len(self.waiting)
        return out

    def _aligned(self, index: int, depth: np.ndarray) -> AlignedFrame:
        while self.waiting.oldest is not None and self.waiting.oldest < index:
            self.waiting.pop(self.waiting.oldest)
            self.lost += 1
        timing, rgb = self.waiting.pop(index)
        return AlignedFrame(timing=timing, rgb=rgb, depth=np.asarray(depth, dtype=np.float32))
