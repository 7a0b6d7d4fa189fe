"""Test doubles for the streaming node's tests (sources, sinks, model steps, a plain aligner).

These are used only by tests/test_stream_*.py: the shipped node always runs the real
``OnlineAligner`` and the real model steps.
"""

from __future__ import annotations

import threading
import time

import numpy as np

from io_adapters.frames import DepthFrame, EndOfStream, VideoFrame
from stream.depth_steps import StepCounts


class ListSource:
    """A blocking source of ``count`` frames of size ``size`` (h, w); ``interval`` s between frames."""

    def __init__(self, count: int, size=(32, 48), interval: float = 0.0, fps: float = 30.0) -> None:
        self.count = count
        self.size = size
        self.interval = interval
        self.nominal_fps = fps
        self.sent = 0
        self.closed = False

    def recv(self) -> VideoFrame:
        if self.sent >= self.count:
            raise EndOfStream()
        if self.interval:
            time.sleep(self.interval)
        h, w = self.size
        value = (self.sent * 7) % 256
        rgb = np.full((h, w, 3), value, dtype=np.uint8)
        rgb[: h // 2] = 255 - value  # two regions so depth has a range
        frame = VideoFrame(index=self.sent, timestamp=self.sent / self.nominal_fps, rgb=rgb)
        self.sent += 1
        return frame

    def close(self) -> None:
        self.closed = True


class RecordingSink:
    """Keeps every DepthFrame it is sent; ``delay`` seconds per send."""

    def __init__(self, delay: float = 0.0) -> None:
        self.frames: list[DepthFrame] = []
        self.closed = False
        self.delay = delay
        self.dropped = 0

    def send(self, frame: DepthFrame) -> None:
        if self.closed:
            raise RuntimeError("send after close")
        if self.delay:
            time.sleep(self.delay)
        self.frames.append(frame)

    def close(self) -> None:
        self.closed = True


class FailingSink(RecordingSink):
    """Raises on the ``fail_at``-th send (0-based) and on every send after."""

    def __init__(self, fail_at: int) -> None:
        super().__init__()
        self.fail_at = fail_at
        self.attempts = 0

    def send(self, frame: DepthFrame) -> None:
        self.attempts += 1
        if self.attempts > self.fail_at:
            raise OSError("disk full")
        super().send(frame)


class FakeSteps:
    """Model-free steps: latent = the frame's mean grey level; depth of a frame = that level.

    ``predict_delay`` seconds per predict call simulates a slow model. Counts like the real steps.
    """

    def __init__(self, predict_delay: float = 0.0, encode_delay: float = 0.0) -> None:
        self.counts = StepCounts()
        self.predict_delay = predict_delay
        self.encode_delay = encode_delay
        self.threads: set[str] = set()

    def encode(self, rgb: np.ndarray):
        self.threads.add(threading.current_thread().name)
        if self.encode_delay:
            time.sleep(self.encode_delay)
        self.counts.encodes += 1
        small = rgb[::2, ::2]
        return small, small.mean(axis=2).astype(np.float32) / 127.5 - 1.0

    def predict(self, latents):
        self.threads.add(threading.current_thread().name)
        if self.predict_delay:
            time.sleep(self.predict_delay)
        out = np.stack([np.stack(snippet) for snippet in latents]).astype(np.float32)
        self.counts.unet_frame_passes += out.shape[0] * out.shape[1]
        self.counts.decodes += out.shape[0] * out.shape[1]
        return out


class MeanAligner:
    """Test-only aligner: a frame's depth is the plain mean of the snippets covering it."""

    def __init__(self) -> None:
        self.sums: dict[int, np.ndarray] = {}
        self.counts: dict[int, int] = {}
        self.pushed: list[tuple[int, ...]] = []
        self.flushed = False

    def push(self, depth, frame_indices) -> None:
        self.pushed.append(tuple(frame_indices))
        for d, n in zip(depth, frame_indices):
            self.sums[n] = self.sums.get(n, 0) + d
            self.counts[n] = self.counts.get(n, 0) + 1

    def emit(self, frame_index):
        if frame_index not in self.counts:
            return None
        return self.sums.pop(frame_index) / self.counts.pop(frame_index)

    def flush(self) -> None:
        self.flushed = True
