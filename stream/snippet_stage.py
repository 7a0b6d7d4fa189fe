"""Run the snippets that end at each new frame (one per dilation that fits), batched in one call."""

from __future__ import annotations

from collections.abc import Sequence

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
    A strided plan runs snippets at some frames only; when the stream ends between two dilation-1
    snippets, one more (``SnippetPlan.tail_snippet``) covers its last frames.
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
        self._newest = -1

    async def process(self, item: EncodedFrame) -> Sequence[SnippetDepths]:
        newest = item.timing.processed_index
        self.window.add(newest, item.latent)
        self._frames_seen += 1
        self._newest = newest
        snippets = self.plan.snippets_ending_at(newest)
        covered = self.plan.covered_before(newest)
        merged = [still_merged(s, self.lookahead, self.plan.snip_len, covered_through=covered) for s in snippets]
        depths = await self._predict(snippets, merged)
        return [SnippetDepths(timing=item.timing, rgb=item.rgb, snippets=depths)]

    async def finish(self, end: StreamEnd) -> Sequence[SnippetDepths]:
        if not self._frames_seen:
            return ()
        if not self._snippets_run:
            snippet = short_stream_snippet(self._frames_seen)
            depths = await self._predict([snippet], [(True,) * len(snippet)])
            return [SnippetDepths(timing=None, rgb=None, snippets=depths)]
        tail = self.plan.tail_snippet(self._newest)
        if tail is None:
            return ()
        # pushed after the aligner has seen the last frame (newest_seen) and emitted what it could
        merged = still_merged(tail, self.lookahead, self.plan.snip_len,
                              covered_through=self.plan.covered_before(self._newest + 1), newest_seen=self._newest)
        depths = await self._predict([tail], [merged])
        return [SnippetDepths(timing=None, rgb=None, snippets=depths)]

    async def _predict(self, snippets: list[tuple[int, ...]], merged: list[tuple[bool, ...]]) -> list:
        if not snippets:
            return []
        latents = [[self.window[i] for i in snippet] for snippet in snippets]
        self._snippets_run += len(snippets)
        depth = await self.model_thread.run(self.steps.predict, latents, merged)
        return list(zip(snippets, depth))
