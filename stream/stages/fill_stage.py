"""The fill stage (``--fill flow|hold``): one output frame per source frame, at the camera's rate.

Frames the model takes are *keyframes*; every other frame gets the newest keyframe depth carried to
it. Two inputs meet here: every captured frame (``frames``, straight from capture) and the aligned
keyframe depths (from the align stage). The depth carried is the aligned depth, before display
normalisation, so the display range is computed in one place (the display stage) for keyframes and
filled frames alike.

Per captured frame, in a worker thread (off the event loop and off the model thread):
``carrier.push_frame`` computes the flow from the previous frame and carries the current depth to
it; the frame leaves as soon as that step is done, it never waits for the model. A keyframe depth
that arrives later (the model is slower than the camera; lookahead delays it) goes to
``carrier.set_keyframe``, which re-carries it through the stored flows to the newest frame, so the
next frame already starts from it. A frame whose own depth has arrived by the time it is pushed
leaves with that depth (``FillInfo.keyframe``). When the model keeps up (its depth of a frame
usually arrives within one camera frame period of the capture: fast model, lookahead 0), a frame the
model took waits for its own depth at most until one period after its capture, so the output is
the model's own depth on those frames, as without ``--fill``; otherwise nothing waits.

The processing size is the keyframe depth's, so frames that arrive before the first keyframe depth
wait (raw, bounded) and are pushed once it is known (their flows carry that depth to the newest
frame), but only frames captured after it arrived leave: the older ones would leave late, in a
burst, and a live output is better without them.
A flow step that fails on one frame (a blank frame, a library error) holds the last depth for that
frame, with one warning at most every ``WARN_EVERY_S`` seconds; the stream goes on.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

import anyio
import cv2
import numpy as np
from anyio.abc import ObjectReceiveStream, ObjectSendStream

from pipeline.flow_carry import CarriedDepth
from stream.stages.messages import AlignedFrame, CapturedFrame, FillInfo, StreamEnd
from stream.stages.rolling_window import RollingWindow
from stream.stages.stage import Stage
from stream.stats.stream_stats import LatencyTracker

# Captured frames waiting for the fill stage: a short hiccup of a flow step must not stall capture.
FILL_QUEUE_SIZE = 4
WARN_EVERY_S = 10.0
# Raw frames kept while the processing size is not known yet (before the first keyframe depth):
# a few seconds of camera frames; older ones leave (they would leave before the first depth anyway).
_UNSIZED_FRAMES = 256
# Recent keyframe depth delays that decide whether a keyframe is worth waiting for (module docstring).
_DELAYS_KEPT = 8
_FALLBACK_PERIOD_S = 1 / 30
# Capture times kept for the depth age: the keyframe a frame carries is at most this many frames old.
_TIMINGS_KEPT = 4096


class HoldCarrier:
    """``--fill hold``: the newest keyframe depth repeated unchanged (the baseline of bench.fill).

    Same calls as ``pipeline.flow_carry.DepthCarrier``; no flow, so ``fallbacks`` stays 0.
    """

    def __init__(self) -> None:
        self.fallbacks = 0
        self._newest: int | None = None
        self._carried: CarriedDepth | None = None

    def push_frame(self, index: int, rgb: np.ndarray) -> CarriedDepth | None:
        """Frame ``index`` arrived (rgb uint8 [H, W, 3], unused): the held depth, one step older."""
        self._newest = index
        if self._carried is None:
            return None
        c = self._carried
        self._carried = CarriedDepth(depth=c.depth, keyframe_index=c.keyframe_index, steps=c.steps + 1,
                                     reliable_fraction=1.0)
        return self._carried

    def set_keyframe(self, index: int, depth: np.ndarray) -> CarriedDepth:
        """The model's depth float32 [H, W] of frame ``index``, held for every later frame."""
        steps = 0 if self._newest is None else max(0, self._newest - index)
        self._carried = CarriedDepth(depth=depth, keyframe_index=index, steps=steps, reliable_fraction=1.0)
        return self._carried


def make_carrier(mode: str):
    """The carrier of ``--fill`` ``mode``: flow -> ``DepthCarrier``, hold -> ``HoldCarrier``."""
    if mode == "flow":
        from pipeline.flow_carry import DepthCarrier

        return DepthCarrier()
    if mode == "hold":
        return HoldCarrier()
    raise ValueError(f"no carrier for --fill {mode}")


def to_processing_size(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """uint8 [H, W, 3] -> uint8 [H', W', 3] at ``size`` (H', W'), area-averaged (what flow reads)."""
    if rgb.shape[:2] == tuple(size):
        return rgb
    return cv2.resize(rgb, (size[1], size[0]), interpolation=cv2.INTER_AREA)


class FillStage(Stage):
    """Captured frames + aligned keyframe depths -> one AlignedFrame per captured frame (with ``fill``).

    carrier: a ``pipeline.flow_carry.DepthCarrier`` (``--fill flow``) or ``HoldCarrier`` (``hold``).
    frames: the stream of every captured frame (set by the node before ``run``); ``run``'s own
        input is the align stage's output.
    Metrics: items_in = captured frames, items_out = frames sent on, busy_s = time in flow steps.
    """

    name = "fill"

    def __init__(self, carrier, report: Callable[[str], None] | None = None,
                 model_took: Callable[[int], bool] | None = None) -> None:
        """model_took(source index): whether capture handed that frame to the model (None = never known)."""
        super().__init__()
        self.model_took = model_took
        self._depth_delays: deque[float] = deque(maxlen=_DELAYS_KEPT)  # capture to keyframe depth here, s
        self._depth_arrived = anyio.Event()
        self.carrier = carrier
        self.report = report or (lambda message: None)
        self.frames: ObjectReceiveStream | None = None
        self.keyframes_in = 0  # aligned keyframe depths received
        self.before_first_depth = 0  # captured frames that left no output (no depth existed yet)
        self.flow_failures = 0
        self.depth_age = LatencyTracker()  # keyframe depth age of every frame sent (seconds)
        self.size: tuple[int, int] | None = None  # processing size (H', W'), from the first keyframe depth
        self._first_depth_at: float | None = None  # perf_counter when the first keyframe depth arrived
        self._unsized: deque[CapturedFrame] = deque()
        self._pending: dict[int, np.ndarray] = {}  # keyframe depths of frames not pushed yet
        self._newest_pushed: int | None = None
        self._carried: CarriedDepth | None = None
        self._captured_at: RollingWindow[float] = RollingWindow(_TIMINGS_KEPT)
        self._lock = anyio.Lock()  # the carrier is not thread-safe: one call at a time
        self._warned_at = -float("inf")
        self._unwarned = 0

    async def run(self, receive: ObjectReceiveStream, send: ObjectSendStream | None) -> None:
        """Until both inputs ended: keyframes as they come, frames pushed and sent on one by one."""
        self.metrics.input = self.frames
        keyframes_done = anyio.Event()
        end = StreamEnd("source ended")
        try:
            async with anyio.create_task_group() as tg:
                async def take_keyframes() -> None:
                    try:
                        async with receive:
                            async for item in receive:
                                if isinstance(item, StreamEnd):
                                    return
                                await self._keyframe(item)
                    finally:
                        keyframes_done.set()

                tg.start_soon(take_keyframes)
                async with self.frames:
                    async for item in self.frames:
                        if isinstance(item, StreamEnd):
                            end = item
                            break
                        await self._frame(item, send)
                # the last keyframes (the aligner's flush) may still give the first depth of a short stream
                await keyframes_done.wait()
                await self._drain_unsized(send)
            if send is not None:
                await send.send(end)
        finally:
            if send is not None:
                await send.aclose()

    # ----------------------------------------------------------------- keyframes
    async def _keyframe(self, item: AlignedFrame) -> None:
        index = item.timing.source_index
        self.keyframes_in += 1
        if self.size is None:
            self.size = tuple(item.depth.shape[:2])
            self._first_depth_at = time.perf_counter()
        async with self._lock:
            if self._newest_pushed is not None and index <= self._newest_pushed:
                try:
                    self._carried = await anyio.to_thread.run_sync(self.carrier.set_keyframe, index, item.depth)
                except ValueError:  # its frame left the carrier's reach (never pushed): a later keyframe will do
                    pass
            else:  # its frame is still on its way to the carrier: applied right after its push
                self._pending[index] = item.depth
        if index in self._captured_at:
            self._depth_delays.append(time.perf_counter() - self._captured_at[index])
        arrived, self._depth_arrived = self._depth_arrived, anyio.Event()
        arrived.set()

    # ----------------------------------------------------------------- frames
    async def _frame(self, item: CapturedFrame, send: ObjectSendStream | None) -> None:
        self.metrics.items_in += 1
        self.metrics.arrivals.tick(item.timing.received_at)
        self._captured_at.add(item.timing.source_index, item.timing.received_at)
        self._unsized.append(item)
        if self.size is None:
            while len(self._unsized) > _UNSIZED_FRAMES:
                self._unsized.popleft()
                self.before_first_depth += 1
            return
        await self._drain_unsized(send)

    async def _drain_unsized(self, send: ObjectSendStream | None) -> None:
        while self.size is not None and self._unsized:
            out = await self._push(self._unsized.popleft())
            if out is None:
                self.before_first_depth += 1
                continue
            self.metrics.items_out += 1
            if send is not None:
                await send.send(out)

    async def _push(self, frame: CapturedFrame) -> AlignedFrame | None:
        """Flow step for one frame, then any keyframe depth that arrived for it or earlier frames."""
        index = frame.timing.source_index
        start = time.perf_counter()
        try:
            async with self._lock:
                carried, small = await anyio.to_thread.run_sync(self._carry, index, frame.rgb)
                self._newest_pushed = index
                if carried is not None:
                    self._carried = carried
        finally:
            self.metrics.busy_s += time.perf_counter() - start
        if frame.timing.received_at < self._first_depth_at:
            return None  # captured before any depth existed: its flow counts, the frame does not leave
        if self._carried is None:
            return None
        await self._maybe_wait_for_own_depth(frame)
        c = self._carried
        keyframe_at = self._captured_at[c.keyframe_index] if c.keyframe_index in self._captured_at else None
        age_ms = 0.0 if keyframe_at is None else max(0.0, (frame.timing.received_at - keyframe_at) * 1000.0)
        self.depth_age.add(age_ms / 1000.0)
        return AlignedFrame(timing=frame.timing, rgb=small, depth=c.depth,
                            fill=FillInfo(keyframe=c.steps == 0, depth_age_ms=round(age_ms, 1)),
                            source_rgb=frame.rgb)  # a reference: for sinks asking for the source size

    async def _maybe_wait_for_own_depth(self, frame: CapturedFrame) -> None:
        """A frame the model took waits for its own depth until one frame period after its capture,
        but only while such depths usually come that fast (else waiting would only add latency)."""
        index = frame.timing.source_index
        if self.model_took is None or not self.model_took(index) or self._carried.keyframe_index >= index:
            return
        rate = self.metrics.arrivals.per_second()
        period = 1.0 / rate if rate > 0 else _FALLBACK_PERIOD_S
        if len(self._depth_delays) < 3 or sorted(self._depth_delays)[len(self._depth_delays) // 2] > period:
            return
        with anyio.move_on_after(frame.timing.received_at + period - time.perf_counter()):
            while self._carried.keyframe_index < index:
                await self._depth_arrived.wait()

    def _carry(self, index: int, rgb: np.ndarray) -> tuple[CarriedDepth | None, np.ndarray]:
        """In a worker thread: push the frame (holding the last depth if its flow fails), then apply
        every keyframe depth that waited for this frame or an earlier one, oldest first. Returns the
        depth now and the frame at processing size."""
        small = to_processing_size(rgb, self.size)
        fallbacks = self.carrier.fallbacks
        try:
            carried = self.carrier.push_frame(index, small)
        except Exception as err:  # noqa: BLE001 - one bad frame must not stop the stream: hold instead
            self._flow_failed(index, f"{type(err).__name__}: {err}")
            carried = self._held()
        else:
            if self.carrier.fallbacks > fallbacks:  # the carrier held the depth itself (its flow failed)
                self._flow_failed(index, "no usable optical flow")
        for key in sorted(k for k in self._pending if k <= index):
            depth = self._pending.pop(key)
            try:
                carried = self.carrier.set_keyframe(key, depth)
            except ValueError:  # its frame left the carrier's reach before its depth came: a later one will do
                continue
        return carried, small

    def _held(self) -> CarriedDepth | None:
        c = self._carried
        if c is None:
            return None
        return CarriedDepth(depth=c.depth, keyframe_index=c.keyframe_index, steps=c.steps + 1,
                            reliable_fraction=0.0)

    def _flow_failed(self, index: int, why: str) -> None:
        self.flow_failures += 1
        self._unwarned += 1
        now = time.monotonic()
        if now - self._warned_at >= WARN_EVERY_S:
            self.report(f"fill: the flow step failed on frame {index} ({why}); "
                        f"{self._unwarned} frame(s) held their last depth instead, the stream goes on")
            self._warned_at = now
            self._unwarned = 0
