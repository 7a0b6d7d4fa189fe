"""Run the snippets that end at each new frame (one per dilation that fits), batched in one call."""

from __future__ import annotations

from collections.abc import Sequence

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
    so that every frame still gets depth.
    """

    name = "snippets"

    def __init__(self, steps: DepthSteps, plan: SnippetPlan, model_thread: ModelThread) -> None:
        super().__init__()
        self.steps = steps
        self.plan = plan
        self.model_thread = model_thread
        self.window: RollingWindow = RollingWindow(plan.history())
        self._frames_seen = 0
        self._snippets_run = 0

    async def process(self, item: EncodedFrame) -> Sequence[SnippetDepths]:
        newest = item.timing.processed_index
        self.window.add(newest, item.latent)
        self._frames_seen += 1
        snippets = self.plan.snippets_ending_at(newest)
        depths = await self._predict(snippets)
        return [SnippetDepths(timing=item.timing, rgb=item.rgb, snippets=depths)]

    async def finish(self, end: StreamEnd) -> Sequence[SnippetDepths]:
        if self._snippets_run or not self._frames_seen:
            return ()
        depths = await self._predict([short_stream_snippet(self._frames_seen)])
        return [SnippetDepths(timing=None, rgb=None, snippets=depths)]

    async def _predict(self, snippets: list[tuple[int, ...]]) -> list:
        if not snippets:
            return []
        latents = [[self.window[i] for i in snippet] for snippet in snippets]
        self._snippets_run += len(snippets)
        depth = await self.model_thread.run(self.steps.predict, latents)
        return list(zip(snippets, depth))
