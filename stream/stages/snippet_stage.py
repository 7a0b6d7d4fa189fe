"""Run the snippets that end at each new frame (one per dilation that fits), batched in one call."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import anyio
import numpy as np
from anyio.abc import ObjectReceiveStream, ObjectSendStream

from pipeline.coalign.snippet_depth import still_merged
from pipeline.snippets import SnippetPlan, short_stream_snippet
from stream.model.depth_steps import DepthSteps
from stream.stages.messages import EncodedFrame, FrameTiming, NodeCommand, SnippetDepths, StreamEnd
from stream.model.model_thread import ModelThread
from stream.stages.rolling_window import RollingWindow
from stream.stages.stage import Stage


@dataclass
class _Queued:
    """A ``SnippetDepths`` whose snippets are queued on the model but not finished yet.

    wait: blocks until the snippets' depth is on the host and returns it (one per snippet, in order).
    """

    timing: FrameTiming | None
    rgb: np.ndarray | None
    snippets: list[tuple[int, ...]]
    wait: Callable[[], list]
    restart: SnippetPlan | None = None

    def result(self, depths: list) -> SnippetDepths:
        return SnippetDepths(timing=self.timing, rgb=self.rgb, snippets=list(zip(self.snippets, depths)),
                             restart=self.restart)


class SnippetStage(Stage):
    """EncodedFrame -> SnippetDepths; keeps RGB latents in a ``RollingWindow``.

    The window holds ``(L - 1) * max(dilations) + 1`` latents: exactly what the longest snippet
    ending at the newest frame reaches back to, so memory is bounded for streams of any length.
    A stream that ends before one full snippet fits gets one shorter snippet of all its frames,
    so that every frame still gets depth. ``lookahead`` is the aligner's: with it the stage tells the
    steps which frames will still be merged (``still_merged``) and which serve only the fit.
    A strided plan runs snippets at some frames only; when the stream ends between two dilation-1
    snippets, one more (``SnippetPlan.tail_snippet``) covers its last frames.

    ``change_plan`` (``/rdstream/speed``) takes effect before the next frame: a plan with the same
    snippet length and dilations carries the window and the aligner over (only the strides change);
    any other starts a new *segment*: the old one is closed as a stream end would close it (its tail
    snippet), the aligner is flushed and restarted (``SnippetDepths.restart``), and the plan counts
    frames from the segment's first one.

    One predict is kept in flight ahead of the one being awaited: ``process`` only queues a frame's
    snippets on the model (``start_predict``) and hands the queued work to a second task of this
    stage that waits for it (in a worker thread) and sends the ``SnippetDepths`` on, in order. So
    the next frame's snippets are queued while the previous frame's result is still awaited, and
    the model never idles for the host between frames (as in ``bench.gpu_timing``'s throughput
    order). The hand-over is a rendezvous: at most one frame's work waits behind the awaited one,
    and a result is sent as soon as it is ready (no frame waits for the next one to arrive).
    The stage's busy time counts the queueing and the waits for results.
    """

    name = "snippets"

    def __init__(self, steps: DepthSteps, plan: SnippetPlan, model_thread: ModelThread, lookahead: int = 0,
                 report: Callable[[str], None] | None = None,
                 on_applied: Callable[[NodeCommand, int | None], None] | None = None) -> None:
        super().__init__()
        self.lookahead = lookahead
        self.steps = steps
        self.plan = plan
        self.model_thread = model_thread
        # Steps that can queue their work (RollingDepthSteps) are waited for off the model thread.
        self._start_predict = getattr(steps, "start_predict", None)
        self.report = report or (lambda message: None)
        self.on_applied = on_applied
        self.window: RollingWindow = RollingWindow(plan.span)
        self._pending: tuple[SnippetPlan, NodeCommand | None] | None = None
        self._segment_start = 0  # processed index of the current segment's first frame
        self._frames_seen = 0  # in this segment
        self._snippets_run = 0  # in this segment
        self._newest = -1
        # The newest frame covered without gaps (the end of the last dilation-1 snippet: the other
        # levels run only where dilation 1 runs), from what actually ran, so it stays right across
        # a change of strides.
        self._covered = -1

    def change_plan(self, plan: SnippetPlan, command: NodeCommand | None = None) -> None:
        """Use ``plan`` from the next frame on (thread-safe enough: one reference swap read per frame)."""
        self._pending = (plan, command)

    async def process(self, item: EncodedFrame) -> Sequence[_Queued]:
        newest = item.timing.processed_index
        out: list[_Queued] = []
        restart = None
        if self._pending is not None:
            restart, closing = await self._apply_pending(newest, item.timing.source_index)
            out.extend(closing)
        self.window.add(newest, item.latent)
        self._frames_seen += 1
        self._newest = newest
        local = newest - self._segment_start
        snippets = [self._absolute(s) for s in self.plan.snippets_ending_at(local)]
        merged = [still_merged(s, self.lookahead, self.plan.snip_len, covered_through=self._covered) for s in snippets]
        out.append(await self._predict(snippets, merged, timing=item.timing, rgb=item.rgb, restart=restart))
        return out

    async def finish(self, end: StreamEnd) -> Sequence[_Queued]:
        closing = await self._close_segment()
        return [closing] if closing is not None else ()

    async def run(self, receive: ObjectReceiveStream, send: ObjectSendStream | None) -> None:
        """The base's loop queues the work; ``_deliver`` waits for it and sends it on, in order."""
        queued_send, queued_receive = anyio.create_memory_object_stream(max_buffer_size=0)
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(self._deliver, queued_receive, send)
            await super().run(receive, queued_send)

    async def _deliver(self, queued: ObjectReceiveStream, send: ObjectSendStream | None) -> None:
        try:
            async with queued:
                async for item in queued:
                    if isinstance(item, _Queued):
                        started = time.perf_counter()
                        item = item.result(await anyio.to_thread.run_sync(item.wait))
                        self.metrics.busy_s += time.perf_counter() - started
                    if send is not None:
                        await send.send(item)
        finally:
            if send is not None:
                await send.aclose()

    # ----------------------------------------------------------------- internals
    def _absolute(self, snippet: tuple[int, ...]) -> tuple[int, ...]:
        return tuple(f + self._segment_start for f in snippet)

    async def _apply_pending(self, newest: int, source_index: int) -> tuple[SnippetPlan | None, list[_Queued]]:
        plan, command = self._pending
        self._pending = None
        strides = ",".join(map(str, plan.strides))
        closing: list[_Queued] = []
        restart = None
        if plan.snip_len == self.plan.snip_len and plan.dilations == self.plan.dilations:
            self.report(f"speed: strides {strides} from frame {source_index}; the snippet window and the aligner carry over")
        else:
            segment_end = await self._close_segment()
            if segment_end is not None:
                closing.append(segment_end)
            self.report(f"speed: snippets of {plan.snip_len} frames, strides {strides} from frame {source_index}; the "
                        "snippet window and the aligner restart (the snippet length or dilations changed)")
            self.window = RollingWindow(plan.span)
            self._segment_start = newest
            self._frames_seen = self._snippets_run = 0
            self._covered = -1
            restart = plan
        self.plan = plan
        if command is not None and self.on_applied is not None:
            self.on_applied(command, source_index)
        return restart, closing

    async def _close_segment(self) -> _Queued | None:
        """The snippet that covers the current segment's last frames, as at the end of a stream."""
        if not self._frames_seen:
            return None
        if not self._snippets_run:
            snippet = self._absolute(short_stream_snippet(self._frames_seen))
            return await self._predict([snippet], [(True,) * len(snippet)])
        tail = self.plan.tail_snippet(self._newest - self._segment_start)
        if tail is None:
            return None
        tail = self._absolute(tail)
        # pushed after the aligner has seen the segment's last frame (newest_seen) and emitted what it could
        merged = still_merged(tail, self.lookahead, self.plan.snip_len, covered_through=self._covered,
                              newest_seen=self._newest)
        return await self._predict([tail], [merged])

    async def _predict(self, snippets: list[tuple[int, ...]], merged: list[tuple[bool, ...]], timing=None,
                       rgb=None, restart=None) -> _Queued:
        """Queue ``snippets`` on the model thread; the returned item waits for their depth."""
        if not snippets:
            return _Queued(timing, rgb, [], list, restart)
        latents = [[self.window[i] for i in snippet] for snippet in snippets]
        self._snippets_run += len(snippets)
        for snippet in snippets:
            if len(snippet) == 1 or snippet[1] - snippet[0] == 1:
                self._covered = max(self._covered, snippet[-1])
        start = self._start_predict
        if start is None:  # steps that cannot queue: the work is done here, the wait returns it
            depth = await self.model_thread.run(self.steps.predict, latents, merged)
            wait = lambda: depth
        else:
            # The model thread only queues the work; the wait happens in a worker thread, so the model
            # thread is free to queue the next frame's upload, encode and snippets behind it.
            wait = await self.model_thread.run(start, latents, merged)
        return _Queued(timing, rgb, snippets, wait, restart)
