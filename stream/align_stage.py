"""Online co-alignment: hand each new snippet to the aligner and emit frames ``lookahead`` behind.

Frame n is emitted once the newest processed frame is n + lookahead (more lookahead: more
snippets cover the frame before it leaves, closer to offline quality). Frames at the very start
wait until the first snippet covers them. At the end of the stream the aligner is flushed and
every remaining frame is emitted, so a file run without drops writes every input frame.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import anyio
import numpy as np

from stream.messages import AlignedFrame, FrameTiming, SnippetDepths, StreamEnd
from stream.rolling_window import RollingWindow
from stream.stage import Stage


class StreamAligner(Protocol):
    """The part of ``pipeline.online_aligner.OnlineAligner`` the node uses."""

    def push(self, depth: np.ndarray, frame_indices: Sequence[int]) -> None:
        """Add one snippet: depth float32 [L, H, W] for processed frames ``frame_indices``."""

    def emit(self, frame_index: int) -> np.ndarray | None:
        """The aligned depth [H, W] of a frame, or None while no snippet covers it."""

    def flush(self) -> None:
        """End of stream: settle every still-open snippet."""


class AlignStage(Stage):
    """SnippetDepths -> AlignedFrame, in frame order."""

    name = "align"

    def __init__(self, aligner: StreamAligner, lookahead: int, snip_len: int,
                 limiter: anyio.CapacityLimiter | None = None) -> None:
        super().__init__()
        if lookahead < 0:
            raise ValueError(f"lookahead must be >= 0, got {lookahead}")
        self.aligner = aligner
        self.lookahead = lookahead
        self.limiter = limiter or anyio.CapacityLimiter(1)
        # Frames wait here from arrival until emitted: at most lookahead frames, or L - 1 at the
        # start of the stream, plus slack for an aligner that answers a little late.
        self.waiting: RollingWindow[tuple[FrameTiming, np.ndarray]] = RollingWindow(lookahead + snip_len + 8)
        self.next_emit = 0
        self.newest = -1
        self.lost = 0  # frames that left the window unemitted (the aligner never covered them)

    async def process(self, item: SnippetDepths) -> Sequence[AlignedFrame]:
        if item.timing is not None:
            self.newest = item.timing.processed_index
            self.waiting.add(self.newest, (item.timing, item.rgb))
        return await anyio.to_thread.run_sync(self._push_and_emit, item.snippets, self.newest - self.lookahead,
                                              limiter=self.limiter)

    async def finish(self, end: StreamEnd) -> Sequence[AlignedFrame]:
        return await anyio.to_thread.run_sync(self._flush_and_emit, limiter=self.limiter)

    def _push_and_emit(self, snippets, emit_upto: int) -> list[AlignedFrame]:
        for indices, depth in snippets:
            self.aligner.push(depth, indices)
        return self._emit_upto(emit_upto, final=False)

    def _flush_and_emit(self) -> list[AlignedFrame]:
        self.aligner.flush()
        return self._emit_upto(self.newest, final=True)

    def _emit_upto(self, last: int, final: bool) -> list[AlignedFrame]:
        out = []
        while self.next_emit <= last:
            n = self.next_emit
            if n not in self.waiting:
                self.lost += 1
                self.next_emit += 1
                continue
            depth = self.aligner.emit(n)
            if depth is None:
                if not final:
                    break  # not covered yet: try again after the next snippet
                self.lost += 1
            else:
                timing, rgb = self.waiting.pop(n)
                out.append(AlignedFrame(timing=timing, rgb=rgb, depth=np.asarray(depth, dtype=np.float32)))
            self.next_emit += 1
        return out
