"""The last stage: hand every output frame to every sink, in parallel, and measure latency.

A sink that raises (on a frame or while closing) is reported once (``report``), marked failed
(``SinkSlot.error``), closed and skipped from then on; the other sinks go on. Sinks drop their
oldest queued frame rather than stall a live node; with ``lossless`` (``--no-drop``) this stage
instead waits until a sink has room, so a file gets every frame. When every sink has failed the
node stops with ``RuntimeFailure``. At the end of the stream every sink is closed, which
finalises files so they stay valid.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import anyio

from io_adapters.base import Sink
from io_adapters.output_size import sized_frame, target_size
from pipeline.errors import RuntimeFailure
from stream.stages.calls import call_off_loop
from stream.stages.messages import OutputFrame, StreamEnd
from stream.stages.stage import Stage
from stream.stats.stream_stats import LatencyTracker


@dataclass
class SinkSlot:
    """One sink with the URI it was opened from and its state in this run."""

    uri: str
    sink: Sink
    frames: int = 0
    error: str | None = None
    closed: bool = False
    size: str | tuple[int, int] | None = None  # ?size= / --output-size (io_adapters.output_size); None = as made
    limiter: anyio.CapacityLimiter = field(default_factory=lambda: anyio.CapacityLimiter(1))

    @property
    def dropped(self) -> int:
        return self.sink.dropped


class FanOutStage(Stage):
    """OutputFrame -> every sink; end-to-end latency is taken when the last sink returned."""

    name = "sinks"

    def __init__(self, sinks: list[SinkSlot], latency: LatencyTracker, report: Callable[[str], None],
                 lossless: bool = False, source_size: Callable[[], tuple[int, int] | None] | None = None) -> None:
        super().__init__()
        self.source_size = source_size or (lambda: None)  # (width, height) of the newest source frame
        self.lossless = lossless
        if not sinks:
            raise ValueError("the node needs at least one sink")
        self.sinks = sinks
        self.latency = latency
        self.report = report

    async def process(self, item: OutputFrame) -> Sequence[object]:
        frames = await self._sized_frames(item)
        async with anyio.create_task_group() as tg:
            for slot in self.sinks:
                if slot.error is None:
                    tg.start_soon(self._send, slot, item, frames.get(slot.size, item.frame))
        if all(slot.error is not None for slot in self.sinks):
            raise RuntimeFailure("every sink failed: " + "; ".join(f"{s.uri}: {s.error}" for s in self.sinks))
        self.latency.add(time.perf_counter() - item.timing.received_at)
        return ()

    async def finish(self, end: StreamEnd) -> Sequence[object]:
        await close_sinks(self.sinks, self.report)
        return ()

    async def _sized_frames(self, item: OutputFrame) -> dict:
        """The frame at each size the sinks ask for (``?size=`` / ``--output-size``), each made once,
        in a worker thread; {} when no sink asks."""
        frames = {}
        for size in {slot.size for slot in self.sinks if slot.size is not None and slot.error is None}:
            source = item.source_rgb.shape[1::-1] if item.source_rgb is not None else self.source_size()
            target = target_size(size, source)
            if target is not None:
                frames[size] = await anyio.to_thread.run_sync(sized_frame, item.frame, target, item.source_rgb)
        return frames

    async def _send(self, slot: SinkSlot, item: OutputFrame, frame) -> None:
        try:
            if self.lossless:
                await wait_for_room(slot)
            await call_off_loop(slot.sink.send, frame, limiter=slot.limiter)
            slot.frames += 1
        except Exception as err:  # a broken sink must not stop the others
            slot.error = _one_line(err)
            self.report(f"sink {slot.uri} failed and is skipped from now on: {slot.error}")
            await _close_one(slot, lambda _msg: None)


# Frames a sink may hold unwritten in lossless mode: below the smallest sink queue (2), so the
# sink never has to drop.
LOSSLESS_IN_FLIGHT = 2
# A writer that makes no room this long has failed or hung: send anyway, the sink reports it.
_STALL_S = 10.0


async def wait_for_room(slot: SinkSlot) -> None:
    """Wait until ``slot.sink`` has fewer than LOSSLESS_IN_FLIGHT frames unwritten.

    Blocks (off the event loop) on the sink's own ``wait_for_room``, which its writer wakes after
    every frame; a sink that is not ``buffered`` takes frames synchronously and is not asked.
    """
    if slot.sink.buffered:
        await anyio.to_thread.run_sync(slot.sink.wait_for_room, LOSSLESS_IN_FLIGHT, _STALL_S,
                                       abandon_on_cancel=True)


async def close_sinks(sinks: list[SinkSlot], report: Callable[[str], None]) -> None:
    """Close every sink not closed yet (in parallel); a failing close is reported and marks the
    sink failed (a file that could not be finished is a lost recording), never raised."""
    async with anyio.create_task_group() as tg:
        for slot in sinks:
            tg.start_soon(_close_one, slot, report)


async def _close_one(slot: SinkSlot, report: Callable[[str], None]) -> None:
    if slot.closed:
        return
    slot.closed = True
    try:
        with anyio.CancelScope(shield=True):
            await call_off_loop(slot.sink.close, limiter=slot.limiter)
    except Exception as err:
        message = _one_line(err)
        if slot.error is None:
            slot.error = message
        report(f"sink {slot.uri} failed to close: {message}")


def _one_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0]}" if text else type(err).__name__
