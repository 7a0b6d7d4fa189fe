"""Run the snippets that end at each new frame (one per dilation that fits), batched in one call."""

from __future__ import annotations

from collections.abc import Sequence

import anyio

from pipeline.coalign.online import still_merged
from pipeline.snippets import SnippetPlan, short_stream_snippet
from stream.depth_steps import DepthSteps
from stream.messages import EncodedFrame, SnippetDepths, StreamEnd
from stream.model_thread import ModelThread
from stream.rolling_window import RollingWindow
from stream.stage import Stage


class SnippetStage(Stage):
    """EncodedFrame -> SnippetDepths; keeps RGB latents in a ``RollingWindow``.

    The window holds ``(L - 1) * max(dilations) + 1`` latents: exactly what the longest snippet
    ending at the newest frame reaches back to, so memory is bounded for streams of any length.
    A stream that ends before one full snippet fits gets one shorter snippet of all its frames,
    so that every frame still gets depth. ``lookahead`` is the aligner's: with it the stage tells the
    steps which frames will still be merged (``still_merged``) and which serve only the fit.
    """

    name = "snippets"

    def __init__(self, steps: DepthSteps, plan: SnippetPlan, model_thread: ModelThread, lookahead: int = 0) -> None:
        super().__init__()
        self.lookahead = lookahead
        self.steps = steps
        self.plan = plan
        self.model_thread = model_thread
        self.window: RollingWindow = RollingWindow(plan.span)
        self._frames_seen = 0
        self._snippets_run = 0

    async def process(self, item: EncodedFrame) -> Sequence[SnippetDepths]:
        newest = item.timing.processed_index
        self.window.add(newest, item.latent)
        self._frames_seen += 1
        snippets = self.plan.snippets_ending_at(newest)
        merged = [still_merged(s, self.lookahead, self.plan.snip_len) for s in snippets]
        depths = await self._predict(snippets, merged)
        return [SnippetDepths(timing=item.timing, rgb=item.rgb, snippets=depths)]

    async def finish(self, end: StreamEnd) -> Sequence[SnippetDepths]:
        if self._snippets_run or not self._frames_seen:
            return ()
        snippet = short_stream_snippet(self._frames_seen)
        depths = await self._predict([snippet], [(True,) * len(snippet)])
        return [SnippetDepths(timing=None, rgb=None, snippets=depths)]

    async def _predict(self, snippets: list[tuple[int, ...]], merged: list[tuple[bool, ...]]) -> list:
        if not snippets:
            return []
        latents = [[self.window[i] for i in snippet] for snippet in snippets]
        self._snippets_run += len(snippets)
        start = getattr(self.steps, "start_predict", None)
        if start is None:
            depth = await self.model_thread.run(self.steps.predict, latents, merged)
        else:
            # The model thread only queues the work; the wait for its result happens in a worker
            # thread, so the model thread is free to queue the next frame's upload and encode
            # behind it (on a GPU they overlap the snippets' wait instead of following it).
            finish = await self.model_thread.run(start, latents, merged)
            depth = await anyio.to_thread.run_sync(finish)
        return list(zip(snippets, depth))
