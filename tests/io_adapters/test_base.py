"""Async sources and sinks on files, the test pattern and null: (io_adapters/base.py and friends)."""

import time

import anyio
import numpy as np
import pytest

from io_adapters.base import ThreadedSink
from io_adapters.frames import DepthFrame, EndOfStream
from io_adapters.registry import open_sink, open_source
from io_adapters.video_file import iter_video_frames, read_gray16_video
from io_adapters.video_writers import ColorVideoWriter
from io_adapters.encodings import to_uint16
from pipeline.errors import BadInputError, RuntimeFailure


async def _drain(source, limit=10_000):
    frames = []
    try:
        while len(frames) < limit:
            frames.append(await source.recv())
    except EndOfStream:
        pass
    return frames


def _ramp(height, width, shift=0.0):
    return ((np.mgrid[0:height, 0:width][1] / (width - 1) + shift) % 1.0).astype(np.float32)


def test_test_pattern_gives_exactly_n_frames_at_size_and_rate():
    async def main():
        source = open_source("test:?frames=7&size=96x54&rate=12.5", realtime=False)
        assert source.nominal_fps == 12.5
        frames = await _drain(source)
        with pytest.raises(EndOfStream):
            await source.recv()
        await source.close()
        await source.close()  # idempotent
        return frames

    frames = anyio.run(main)
    assert len(frames) == 7
    assert all(f.rgb.shape == (54, 96, 3) and f.rgb.dtype == np.uint8 for f in frames)
    assert [f.index for f in frames] == list(range(7))
    assert [f.timestamp for f in frames] == pytest.approx([i / 12.5 for i in range(7)])
    assert not np.array_equal(frames[0].rgb, frames[1].rgb)  # the pattern moves


def test_test_pattern_realtime_pacing():
    async def main():
        source = open_source("test:?frames=6&size=32x32&rate=50")  # real time by default
        started = time.monotonic()
        frames = await _drain(source)
        await source.close()
        return frames, time.monotonic() - started

    frames, elapsed = anyio.run(main)
    assert len(frames) == 6 and elapsed >= 5 / 50 - 0.01


def test_file_source_frames_timestamps_and_loop(tmp_path):
    path = tmp_path / "clip.mp4"
    with ColorVideoWriter(path, 25.0) as writer:
        for i in range(5):
            writer.write(np.full((16, 24, 3), 40 * i, np.uint8))

    async def main():
        async with open_source(str(path)) as plain:
            assert plain.nominal_fps == pytest.approx(25.0)
            once = await _drain(plain)
        async with open_source(f"file:{path}?loop=1&start=1") as looped:
            twice = await _drain(looped, limit=9)
        return once, twice

    once, twice = anyio.run(main)
    assert len(once) == 5 and once[0].rgb.shape == (16, 24, 3)
    assert [f.timestamp for f in once] == pytest.approx([i / 25 for i in range(5)], abs=1e-3)
    assert len(twice) == 9
    stamps = [f.timestamp for f in twice]
    assert all(b > a for a, b in zip(stamps, stamps[1:]))  # keep rising across the loop
    # one frame period everywhere, the seam included (with start=1 the file's own time of the
    # loop's first frame used to add a gap; start=30 gave a 1 s gap)
    assert np.diff(stamps) == pytest.approx([1 / 25] * 8, abs=1e-3)
    assert round(float(twice[4].rgb.mean()) / 40) == 1  # looped back to frame "start"


def test_missing_file_source_is_a_clear_error(tmp_path):
    with pytest.raises(BadInputError, match="not found"):
        open_source(str(tmp_path / "nope.mp4"))


def test_truncated_file_source_errors_after_good_frames(tmp_path):
    path = tmp_path / "full.mp4"
    with ColorVideoWriter(path, 30.0) as writer:
        for i in range(20):
            writer.write(np.random.default_rng(i).integers(0, 255, (48, 64, 3), np.uint8))
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size * 2 // 3])

    async def main():
        source = open_source(str(cut))
        got = []
        with pytest.raises(BadInputError, match=r"cut\.mp4 (is damaged|ends early) at frame"):
            while True:
                got.append(await source.recv())
        await source.close()
        return got

    assert 0 < len(anyio.run(main)) < 20


def test_file_sinks_write_valid_files(tmp_path):
    depth = [_ramp(30, 41, shift=i / 10) for i in range(6)]  # odd width on purpose

    async def main():
        sinks = [open_sink(f"file:{tmp_path / 'd.mp4'}?cmap=turbo", fps=24), open_sink(f"file:{tmp_path / 'd.mkv'}"), open_sink(f"npy:{tmp_path / 'd.npy'}")]
        for i, d in enumerate(depth):
            for sink in sinks:
                await sink.send(DepthFrame(index=i, timestamp=i / 24, depth=d))
                await _wait_written(sink, i + 1)
        for sink in sinks:
            await sink.close()
            await sink.close()
            assert sink.dropped == 0

    anyio.run(main)
    assert len(list(iter_video_frames(tmp_path / "d.mp4"))) == 6
    assert np.array_equal(read_gray16_video(tmp_path / "d.mkv"), to_uint16(np.stack(depth)))
    stored = np.load(tmp_path / "d.npy")
    assert stored.dtype == np.float32 and stored.shape == (6, 30, 41)
    assert np.array_equal(stored, np.stack(depth))


def test_npy_sink_without_frames_writes_no_file_and_keeps_an_older_one(tmp_path):
    (tmp_path / "old.npy").write_bytes(b"an earlier run")

    async def main():
        for name in ("empty.npy", "old.npy"):
            sink = open_sink(f"npy:{tmp_path / name}")
            await sink.close()

    anyio.run(main)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.npy"]  # no empty depth or timestamps file
    assert (tmp_path / "old.npy").read_bytes() == b"an earlier run"


async def _wait_written(sink, count, timeout=10.0):
    with anyio.fail_after(timeout):
        while sink.sent < count:
            await anyio.sleep(0.002)


class _SlowSink(ThreadedSink):
    """Takes 50 ms per frame; remembers which frames it wrote."""

    def __init__(self):
        self.written = []
        self.finalised = 0
        super().__init__("slow:", queue_size=2)

    def _write(self, frame):
        time.sleep(0.05)
        self.written.append(frame.index)

    def _finalise(self):
        self.finalised += 1


def test_slow_sink_drops_oldest_and_never_stalls():
    async def main():
        sink = _SlowSink()
        started = time.monotonic()
        for i in range(20):
            await sink.send(DepthFrame(index=i, timestamp=i, depth=np.zeros((2, 2), np.float32)))
        send_time = time.monotonic() - started
        await sink.close()
        await sink.close()
        return sink, send_time

    sink, send_time = anyio.run(main)
    assert send_time < 0.04  # 20 sends took less time than writing one frame
    assert sink.dropped > 0 and sink.dropped + len(sink.written) == 20
    assert sink.written[-2:] == [18, 19]  # the newest frames survive
    assert sink.written == sorted(sink.written) and sink.finalised == 1


class _BrokenSink(ThreadedSink):
    def __init__(self):
        super().__init__("broken:")

    def _write(self, frame):
        raise OSError("disk full")

    def _finalise(self):
        pass


def test_sink_errors_come_back_as_one_line():
    async def main():
        sink = _BrokenSink()
        await sink.send(DepthFrame(0, 0.0, np.zeros((2, 2), np.float32)))
        with anyio.fail_after(5):
            while sink._error is None:
                await anyio.sleep(0.005)
        with pytest.raises(RuntimeFailure, match="broken:.*disk full"):
            await sink.send(DepthFrame(1, 0.0, np.zeros((2, 2), np.float32)))
        with pytest.raises(RuntimeFailure, match="disk full"):
            await sink.close()

    anyio.run(main)


def test_sink_rejects_wrong_depth_shape():
    async def main():
        sink = open_sink("null:")
        with pytest.raises(BadInputError, match=r"float \[H, W\]"):
            await sink.send(DepthFrame(0, 0.0, np.zeros((2, 2, 3), np.float32)))
        await sink.close()

    anyio.run(main)


def test_cancelled_recv_never_overlaps_the_next_read_or_close():
    from io_adapters.base import BlockingSource

    class SlowSource(BlockingSource):
        def __init__(self):
            super().__init__("slow:", None, realtime=False)
            self.active = 0
            self.overlaps = 0
            self.released = False

        def _read(self):
            self.active += 1
            self.overlaps += self.active > 1
            time.sleep(0.15)
            self.active -= 1
            return time.monotonic(), np.zeros((2, 2, 3), np.uint8)

        def _release(self):
            self.overlaps += self.active > 0
            self.released = True

    async def main():
        source = SlowSource()
        with anyio.move_on_after(0.02):
            await source.recv()  # cancelled: its thread keeps reading
        frame = await source.recv()
        with anyio.move_on_after(0.02):
            await source.recv()
        await source.close()
        return source, frame

    source, frame = anyio.run(main)
    assert frame.index == 0 and source.overlaps == 0 and source.released
