"""Sources that read with PyAV: a video file (``file:PATH`` or a bare path) and FFmpeg's
lavfi test pattern (``test:?frames=N&size=WxH&rate=R``).

``check_file_source_options`` and ``TestPatternOptions.parse`` check a URI's options without
opening anything, so the CLI finds bad values before the model loads.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import av
import numpy as np

from io_adapters.base import BlockingSource
from io_adapters.uri import MAX_FRAME_SIDE, OptionReader, ParsedUri
from io_adapters.video_file import iter_timed_video_frames, probe_video
from pipeline.errors import BadInputError, RuntimeFailure

FILE_SOURCE_OPTIONS = {
    "start": "first frame to read, default 0",
    "frames": "number of frames, default 0 = all",
    "loop": "1 = start again at the end (timestamps keep rising), default 0",
}
TEST_SOURCE_OPTIONS = {
    "frames": "number of frames, default 0 = endless",
    "size": f"WIDTHxHEIGHT, default 640x360, at most {MAX_FRAME_SIDE} per side",
    "rate": "frames per second, default 30",
    "pattern": "testsrc2 (default), testsrc, smptehdbars, mandelbrot, rgbtestsrc",
}
TEST_PATTERNS = ("testsrc2", "testsrc", "smptehdbars", "mandelbrot", "rgbtestsrc")


def check_file_source_options(uri: ParsedUri) -> None:
    """Raise BadInputError for an unknown option or a bad value of a ``file:`` source."""
    options = OptionReader(uri, FILE_SOURCE_OPTIONS)
    options.integer("start", 0)
    options.integer("frames", 0)
    options.flag("loop", False)


def check_file_source(uri: ParsedUri) -> None:
    """A ``file:`` source's options, then a probe of the file (milliseconds: a missing or damaged
    file is said before the model loads, not after). Raises BadInputError."""
    check_file_source_options(uri)
    probe_video(uri.target)


@dataclass(frozen=True)
class TestPatternOptions:
    """The options of a ``test:`` URI. size: (width, height), each 2..MAX_FRAME_SIDE pixels."""

    __test__ = False  # not a pytest test class despite the name

    frames: int
    size: tuple[int, int]
    rate: Fraction
    pattern: str

    @classmethod
    def parse(cls, uri: ParsedUri) -> "TestPatternOptions":
        """Raises BadInputError for a target, an unknown option or a bad value."""
        options = OptionReader(uri, TEST_SOURCE_OPTIONS)
        if uri.target:
            raise BadInputError(f"test: takes no target, only options (got {uri.target!r}); e.g. test:?frames=90&size=640x360&rate=30")
        rate = options.number("rate", 30.0)
        if rate > 1000:
            raise BadInputError(f"test: rate must be <= 1000, got {rate}")
        return cls(frames=options.integer("frames", 0), size=options.size("size", (640, 360)),
                   rate=Fraction(rate).limit_denominator(1001),
                   pattern=options.choice("pattern", TEST_PATTERNS, "testsrc2"))


class FileSource(BlockingSource):
    """Frames of a video file, decoded with threads, rotation applied.

    Timestamps are the file's presentation times (from 0). With ``realtime`` the file plays at
    its own frame rate, like a live input; without it frames come as fast as they decode.
    """

    def __init__(self, uri: ParsedUri, realtime: bool = False) -> None:
        options = OptionReader(uri, FILE_SOURCE_OPTIONS)
        self.path = uri.target
        self.start_frame = options.integer("start", 0)
        self.frame_count = options.integer("frames", 0)
        self.loop = options.flag("loop", False)
        self.info = probe_video(self.path)  # BadInputError for missing/unreadable files, now
        super().__init__(uri.text, self.info.fps or None, realtime)
        self._frames = None
        self._time_offset = 0.0  # added per loop so timestamps keep rising
        self._last_time = 0.0

    def _open_frames(self):
        return iter_timed_video_frames(self.path, self.start_frame, self.frame_count)

    def _read(self):
        if self._frames is None:
            self._frames = self._open_frames()
        item = next(self._frames, None)
        if item is None and self.loop:
            period = 1.0 / self.info.fps if self.info.fps else 0.0
            self._frames = self._open_frames()
            item = next(self._frames, None)
            if item is not None:
                # The loop's first frame comes one period after the last one: its own time in the
                # file (1 s for ?start=30 at 30 fps) is taken out, so there is no gap at the seam.
                self._time_offset = self._last_time + period - item[0]
        if item is None:
            return None
        time_s, rgb = item
        self._last_time = self._time_offset + time_s
        return self._last_time, rgb

    def _release(self) -> None:
        if self._frames is not None:
            self._frames.close()  # the generator's finally closes the container
            self._frames = None


class TestPatternSource(BlockingSource):
    """FFmpeg's lavfi test pattern at an exact size and rate.

    Frame i has timestamp i / rate. ``frames=N`` gives exactly N frames, then EndOfStream;
    without it the pattern never ends. Paced in real time unless ``realtime=False``.
    """

    __test__ = False  # not a pytest test class despite the name

    def __init__(self, uri: ParsedUri, realtime: bool = True) -> None:
        options = TestPatternOptions.parse(uri)
        self.frames = options.frames
        self.width, self.height = options.size
        self.rate = options.rate
        self.pattern = options.pattern
        super().__init__(uri.text, float(self.rate), realtime)
        graph = f"{self.pattern}=size={self.width}x{self.height}:rate={self.rate.numerator}/{self.rate.denominator}"
        try:
            self._container = av.open(graph, format="lavfi")
        except av.FFmpegError as err:
            raise RuntimeFailure(f"cannot start the FFmpeg test pattern {graph!r}: {err}") from None
        self._decoded = self._container.decode(video=0)
        self._count = 0

    def _read(self):
        if self.frames and self._count >= self.frames:
            return None
        frame = next(self._decoded, None)
        if frame is None:
            return None
        rgb = frame.to_ndarray(format="rgb24")
        if rgb.shape[:2] != (self.height, self.width):  # e.g. mandelbrot ignores odd sizes
            rgb = frame.reformat(width=self.width, height=self.height, format="rgb24").to_ndarray()
        timestamp = float(self._count / self.rate)
        self._count += 1
        return timestamp, np.ascontiguousarray(rgb)

    def _release(self) -> None:
        self._container.close()
