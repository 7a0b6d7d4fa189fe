"""The first stage: receive frames from a source, apply the real-time policy, number what is kept.

Policies (docs/method.md, section 8):
- every frame (``drop_frames=False``, default for files): the source is read only as fast as the
  model consumes; nothing is lost.
- newest wins (``drop_frames=True``, ``--realtime``): the source is read at its own pace; while
  the next stage is busy, a newer frame replaces the one waiting and the replaced one is counted
  as dropped. Latency stays bounded however slow the model is.
Kept frames get consecutive ``processed_index`` values: dilations count processed frames.
A source that fails (a truncated file, a lost device) ends the stream like its normal end: the
frames already read are drained to the sinks, and the error is kept in ``source_error`` for the
caller to report after the files are complete.
Pacing a file to its frame rate is the source's job (``open_source(uri, realtime=True)``).
With ``--fill`` (``every_frame`` set) newest-wins capture also sends every received frame to the fill
stage, and a ``KeyframeGate`` (``--model-fps``, ``--idle-fps``) may hold a frame back from the model.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass

import anyio
from anyio.abc import ObjectSendStream

from io_adapters.frames import EndOfStream, VideoFrame
from stream.stages.calls import call_off_loop
from stream.stages.keyframe_gate import KeyframeGate
from stream.stats.rate_meter import RateMeter
from stream.stages.messages import CapturedFrame, FrameTiming, StreamEnd
from io_adapters.base import Source
from pipeline.errors import RollingDepthError
from stream.stages.stage import Stage


@dataclass
class _Received:
    frame: VideoFrame
    received_at: float


# How often newest-wins capture looks whether the next stage is free (a few ms of added latency
# at most, next to processing periods of tens of ms and more).
_READY_POLL_S = 0.002


async def _until_receivers_wait(sends: list[ObjectSendStream]) -> None:
    """Return once a task waits to receive on each of ``sends`` (memory streams; others count as
    always ready)."""
    statistics = [s.statistics for s in sends if hasattr(s, "statistics")]
    while not all(stats().tasks_waiting_receive for stats in statistics):
        await anyio.sleep(_READY_POLL_S)


class CaptureStage(Stage):
    """Reads ``source`` until it ends or ``stop`` is set, then sends ``StreamEnd``.

    The first stage has no input stream: it runs like every other stage (``run(None, send)``) and
    is measured by the same ``StageMetrics``: items_in = frames received, items_out = frames kept,
    busy_s = time inside ``recv``.
    """

    name = "capture"

    def __init__(self, source: Source, stop: anyio.Event, drop_frames: bool, max_frames: int | None = None) -> None:
        super().__init__()
        self.source = source
        self.stop = stop
        self.drop_frames = drop_frames
        self.max_frames = max_frames
        self.dropped = 0
        # newest wins: hand a frame on only when the receivers of these links wait (the model
        # stages' inputs, set by the node; empty = the next stage's)
        self.free_before_hand_on: list[ObjectSendStream] = []
        self.end_reason = "source ended"
        self.source_error: RollingDepthError | None = None
        self._kept = 0
        # --fill: every received frame also goes here (the fill stage's frames; set by the node)
        self.every_frame: ObjectSendStream | None = None
        self.gate: KeyframeGate | None = None  # --model-fps / --idle-fps (newest-wins only)
        self.kept_rate = RateMeter()  # frames handed to the model per second (keyframes with --fill)
        self.frame_size: tuple[int, int] | None = None  # (width, height) of the newest frame received
        self._handed: deque[int] = deque(maxlen=64)  # source indices of the newest frames handed on

    async def run(self, receive: None, send: ObjectSendStream) -> None:
        async with send:
            if self.drop_frames:
                await self._run_newest_wins(send)
            else:
                await self._run_every_frame(send)
            await send.send(StreamEnd(self.end_reason))
            if self.every_frame is not None:
                async with self.every_frame:
                    await self.every_frame.send(StreamEnd(self.end_reason))

    async def _run_every_frame(self, send: ObjectSendStream) -> None:
        async def forward() -> None:
            while True:
                received = await self._receive()
                if received is None:
                    return
                await self._hand_on(send, received)

        await self._until_stopped(forward)

    async def _run_newest_wins(self, send: ObjectSendStream) -> None:
        waiting: list[_Received] = []  # at most one frame: the newest not yet handed on
        ready = anyio.Event()
        reading_done = False

        async def read() -> None:
            nonlocal ready, reading_done
            try:
                while True:
                    received = await self._receive()
                    if received is None:
                        return
                    if self.every_frame is not None:
                        frame = received.frame
                        timing = FrameTiming(source_index=frame.index, processed_index=-1,
                                             timestamp=frame.timestamp, received_at=received.received_at)
                        await self.every_frame.send(CapturedFrame(timing=timing, rgb=frame.rgb))
                    if waiting:
                        self.dropped += 1
                        waiting.clear()
                    waiting.append(received)
                    ready.set()
            finally:
                reading_done = True
                ready.set()

        async def hand_on() -> None:
            nonlocal ready
            while True:
                if waiting:
                    # Newer frames replace each other until the next stage is free to take one,
                    # so the frame handed on is the newest at that moment, not one that waited.
                    await _until_receivers_wait(self.free_before_hand_on or [send])
                    if self.gate is not None and waiting:
                        newest = waiting[-1].frame
                        delay = self.gate.wait_s(newest.index, newest.rgb, time.perf_counter())
                        if delay > 0:  # held back: wait for the gate to open or a newer frame
                            with anyio.move_on_after(delay):
                                await ready.wait()
                            ready = anyio.Event()
                            continue
                        self.gate.taken(newest.index, newest.rgb, time.perf_counter())
                    await self._hand_on(send, waiting.pop())
                elif reading_done:
                    return
                else:
                    await ready.wait()
                    ready = anyio.Event()

        async with anyio.create_task_group() as tg:
            tg.start_soon(self._until_stopped, read)
            tg.start_soon(hand_on)

    def handed_on(self, index: int) -> bool:
        """Whether the frame of source index ``index`` (one of the last 64 handed on) went to the model."""
        return index in self._handed

    async def _until_stopped(self, work) -> None:
        """Run ``work`` until it returns or ``stop`` is set (then the pending recv is abandoned)."""
        async with anyio.create_task_group() as tg:
            async def watch() -> None:
                await self.stop.wait()
                self.end_reason = "interrupted"
                tg.cancel_scope.cancel()

            tg.start_soon(watch)
            await work()
            tg.cancel_scope.cancel()

    async def _receive(self) -> _Received | None:
        """The next frame; None at the end of the source or of ``max_frames``, or when it failed."""
        if self.max_frames is not None and self.metrics.items_in >= self.max_frames:
            self.end_reason = "max frames reached"
            return None
        start = time.perf_counter()
        try:
            frame = await call_off_loop(self.source.recv, abandon_on_cancel=True)
        except EndOfStream:
            return None
        except RollingDepthError as err:  # sources turn every failure into one of these
            self.source_error = err
            self.end_reason = "source failed"
            return None
        finally:
            self.metrics.busy_s += time.perf_counter() - start
        self.metrics.items_in += 1
        self.frame_size = (frame.rgb.shape[1], frame.rgb.shape[0])
        received_at = time.perf_counter()
        self.metrics.arrivals.tick(received_at)
        return _Received(frame, received_at)

    async def _hand_on(self, send: ObjectSendStream, received: _Received) -> None:
        """Number the frame and send it; it counts as processed only once the next stage has it.

        A stop can cancel this send while the next stage is busy: that frame is then not
        processed (like the abandoned recv), so every processed frame reaches the sinks.
        """
        frame = received.frame
        timing = FrameTiming(source_index=frame.index, processed_index=self._kept,
                             timestamp=frame.timestamp, received_at=received.received_at)
        await send.send(CapturedFrame(timing=timing, rgb=frame.rgb))
        self._handed.append(frame.index)
        self._kept += 1
        self.metrics.items_out += 1
        self.kept_rate.tick()
