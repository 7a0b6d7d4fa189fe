"""Test doubles for the streaming node: in-memory sources, recording sinks, model-free steps.

Used by the tests and the benchmarks; the node under test always runs the real ``OnlineAligner``.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import torch

from io_adapters.base import Sink, Source
from io_adapters.frames import DepthFrame, EndOfStream, VideoFrame
from stream.model.depth_steps import StepCounts


class ListSource(Source):
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


class ArraySource(Source):
    """Frames held in memory (uint8 [N, H, W, 3]), delivered as fast as asked, at a nominal 30 fps."""

    nominal_fps = 30.0

    def __init__(self, frames: np.ndarray) -> None:
        self.uri = "memory:"
        self.frames = frames
        self.next = 0

    async def recv(self) -> VideoFrame:
        if self.next >= len(self.frames):
            raise EndOfStream()
        i = self.next
        self.next += 1
        return VideoFrame(index=i, timestamp=i / self.nominal_fps, rgb=self.frames[i])

    async def close(self) -> None:
        pass


class RecordingSink(Sink):
    """Keeps every DepthFrame it is sent and when it arrived (``arrived``: perf_counter per frame, the
    node's output clock); ``delay`` seconds per send. Asks for the colour frame (as a sink with an
    rgbd layout does), so tests can check which input each depth came from."""

    wants_colour = True

    def __init__(self, delay: float = 0.0) -> None:
        self.frames: list[DepthFrame] = []
        self.arrived: list[float] = []
        self.closed = False
        self.delay = delay
        self.dropped = 0

    def send(self, frame: DepthFrame) -> None:
        if self.closed:
            raise RuntimeError("send after close")
        if self.delay:
            time.sleep(self.delay)
        self.arrived.append(time.perf_counter())
        self.frames.append(frame)

    def close(self) -> None:
        self.closed = True


class FakeSteps:
    """Model-free steps: latent = the frame's mean grey level; depth of a frame = that level.

    ``predict_delay`` seconds per predict call simulates a slow model. Counts like the real steps
    and hands over full-resolution depth only for the frames flagged as still merged (fit samples
    on the grid of an aligner with ``fit_stride`` for all), as the real steps do.
    """

    def __init__(self, predict_delay: float = 0.0, encode_delay: float = 0.0, fit_stride: int = 10) -> None:
        self.counts = StepCounts()
        self.fit_stride = fit_stride
        self.predict_delay = predict_delay
        self.encode_delay = encode_delay
        self.threads: set[str] = set()

    def fix_size(self, height: int, width: int) -> tuple[int, int]:
        """The processing size of a ``height`` x ``width`` frame: every other pixel (``encode``)."""
        return (height + 1) // 2, (width + 1) // 2

    def encode(self, rgb: np.ndarray):
        self.threads.add(threading.current_thread().name)
        if self.encode_delay:
            time.sleep(self.encode_delay)
        self.counts.encodes += 1
        small = rgb[::2, ::2]
        return small, small.mean(axis=2).astype(np.float32) / 127.5 - 1.0

    def predict(self, latents, merged):
        from pipeline.coalign.fit_grid import fit_grid
        from pipeline.coalign.snippet_depth import SnippetDepth

        self.threads.add(threading.current_thread().name)
        if self.predict_delay:
            time.sleep(self.predict_delay)
        out = torch.from_numpy(np.stack([np.stack(snippet) for snippet in latents]).astype(np.float32))
        self.counts.unet_frame_passes += out.shape[0] * out.shape[1]
        grid = fit_grid(out.shape[2], out.shape[3], self.fit_stride)
        snippets = []
        for depth, flags in zip(out, merged):
            keep = torch.tensor(flags)
            self.counts.decodes_full += int(keep.sum())
            self.counts.decodes_fit += int((~keep).sum())
            snippets.append(SnippetDepth(depth[keep], tuple(flags), grid.take(depth)))
        return snippets


class QueuedDeviceSteps(FakeSteps):
    """``FakeSteps`` on a simulated GPU: queueing a predict costs the caller ``host_s`` (Python and
    kernel launches), then the work takes ``device_s`` on one device queue, in call order, while
    the caller goes on; the wait returned by ``start_predict`` blocks until it is done.

    ``calls`` records the order of events: ("start", k) when predict k is queued, ("finish", k)
    when its result is read (k counts predicts from 0).
    """

    def __init__(self, host_s: float, device_s: float, encode_s: float = 0.0) -> None:
        from concurrent.futures import ThreadPoolExecutor

        super().__init__(encode_delay=encode_s)
        self.host_s, self.device_s = host_s, device_s
        self.calls: list[tuple[str, int]] = []
        self._device = ThreadPoolExecutor(max_workers=1, thread_name_prefix="simulated-device")
        self._started = 0

    def start_predict(self, latents, merged):
        k = self._started
        self._started += 1
        self.calls.append(("start", k))
        time.sleep(self.host_s)
        done = self._device.submit(time.sleep, self.device_s)
        result = FakeSteps.predict(self, latents, merged)  # the values, computed now (instant)

        def wait():
            done.result()
            self.calls.append(("finish", k))
            return result

        return wait

    def predict(self, latents, merged):
        return self.start_predict(latents, merged)()

    def close(self) -> None:
        self._device.shutdown(wait=True)


def make_aligner(plan, lookahead: int = 0, quality: str = "fast"):
    """The real online aligner, sized for ``plan`` (a SnippetPlan)."""
    from pipeline.coalign import OnlineAligner

    return OnlineAligner.for_plan(plan, lookahead, quality)
