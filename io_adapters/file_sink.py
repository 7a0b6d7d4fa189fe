"""Sinks that write files (``file:out.mp4``, ``file:out.mkv``, ``npy:out.npy``) and ``null:``.

File sinks keep a deeper queue than live outputs (encoders are fast, a file should not lose
frames to a short hiccup) but still drop the oldest frame rather than stall the node.

Every file is valid at every moment of the run, also after kill -9 or a full disk: videos are
written in self-contained pieces of one frame (fragmented MP4, Matroska clusters),
.npy files keep a header that counts only the frames on disk. Each frame is stamped with its own
timestamp (a file starts at 0 at its first frame), so a run that dropped frames gives a
variable-frame-rate file that keeps the source's timing.
"""

from __future__ import annotations

from pathlib import Path

from io_adapters.base import ThreadedSink
from io_adapters.frames import DepthFrame
from io_adapters.layouts import LAYOUT_OPTION_HELP, compose, needs_colour, read_layout
from io_adapters.npy_stream import NpyStreamWriter, timestamps_path
from io_adapters.uri import OptionReader, ParsedUri
from io_adapters.video_writers import ColorVideoWriter, Gray16VideoWriter
from io_adapters.encodings import apply_colormap, burn_mark, to_uint16
from pipeline.errors import BadInputError

FILE_SINK_QUEUE = 32
DEFAULT_FILE_CMAP = "Spectral_r"  # the reference's default colour map
COLOR_FILE_OPTIONS = {"cmap": f"matplotlib colour map, default {DEFAULT_FILE_CMAP}", "crf": "H.264 quality 0..51, default 18",
                      "layout": LAYOUT_OPTION_HELP}
GRAY16_FILE_OPTIONS = {"layout": LAYOUT_OPTION_HELP}
FILE_SINK_SUFFIXES = {".mp4": "colour-mapped H.264", ".mkv": "lossless 16-bit FFV1"}


def color_file_options(uri: ParsedUri) -> tuple[str, int, str]:
    """(cmap, crf, layout) of ``file:out.mp4?cmap=NAME&crf=18&layout=rgbd``; unknown colour maps
    fail here, not in the writer thread."""
    options = OptionReader(uri, COLOR_FILE_OPTIONS)
    cmap = options.colormap("cmap", DEFAULT_FILE_CMAP)
    return cmap, options.integer("crf", 18, 0, 51), read_layout(options)


def file_sink_suffix(uri: ParsedUri) -> str:
    """``.mp4`` or ``.mkv``, the kind of file a ``file:PATH`` sink writes; BadInputError otherwise."""
    suffix = Path(uri.target).suffix.lower()
    if suffix not in FILE_SINK_SUFFIXES:
        kinds = ", ".join(f"{s} ({what})" for s, what in FILE_SINK_SUFFIXES.items())
        raise BadInputError(f"file sink {uri.target!r}: unsupported extension {suffix or '(none)'}; use {kinds}, or npy:NAME.npy")
    return suffix


def npy_target(uri: ParsedUri) -> str:
    """The file an ``npy:NAME.npy`` sink writes (it takes no options); BadInputError without a name."""
    OptionReader(uri, {})
    if not uri.target:
        raise BadInputError("npy: needs a file name, e.g. npy:depth.npy")
    return uri.target


def check_file_sink_uri(uri: ParsedUri) -> None:
    """Check a ``file:``, ``npy:`` or ``null:`` sink URI (extension, options, values) without
    opening anything, so the CLI finds mistakes before the model loads."""
    if uri.scheme == "file":
        if file_sink_suffix(uri) == ".mp4":
            color_file_options(uri)
        else:
            read_layout(OptionReader(uri, GRAY16_FILE_OPTIONS))
    elif uri.scheme == "npy":
        npy_target(uri)
    elif uri.scheme == "null":
        OptionReader(uri, {})


class ColorFileSink(ThreadedSink):
    """``file:out.mp4?cmap=NAME&crf=18``: colour-mapped H.264 (even size, padded; see video_file)."""

    def __init__(self, uri: ParsedUri, fps: float) -> None:
        self.cmap, crf, self.layout = color_file_options(uri)
        self.wants_colour = needs_colour(self.layout)
        # veryfast: a live node must not fall behind the encoder (medium is ~3x slower).
        self._writer = ColorVideoWriter(uri.target, fps, crf=crf, preset="veryfast", live=True)
        super().__init__(uri.text, FILE_SINK_QUEUE)

    def _write(self, frame: DepthFrame) -> None:
        picture = apply_colormap(frame.depth, frame.cmap or self.cmap)
        if frame.mark:  # on the depth picture only: the input colour of rgbd layouts stays as it came
            burn_mark(picture, frame.mark)
        self._writer.write(compose(picture, frame.rgb, self.layout, "rgb"), frame.timestamp)

    def _finalise(self) -> None:
        self._writer.close()


class Gray16FileSink(ThreadedSink):
    """``file:out.mkv``: depth as 16-bit grey (0..65535, 1 = nearest), FFV1, bit-exact."""

    def __init__(self, uri: ParsedUri, fps: float) -> None:
        self.layout = read_layout(OptionReader(uri, GRAY16_FILE_OPTIONS))
        self.wants_colour = needs_colour(self.layout)
        self._writer = Gray16VideoWriter(uri.target, fps, live=True)
        super().__init__(uri.text, FILE_SINK_QUEUE)

    def _write(self, frame: DepthFrame) -> None:
        self._writer.write(compose(to_uint16(frame.depth), frame.rgb, self.layout, "grey16"), frame.timestamp)

    def _finalise(self) -> None:
        self._writer.close()


class NpySink(ThreadedSink):
    """``npy:out.npy``: float32 [N, H, W] depth in [0, 1] (1 = nearest), and beside it
    ``out.timestamps.npy``: float64 [N], each frame's timestamp in seconds from the source's
    first frame. Both load with numpy at any moment of the run (see npy_stream)."""

    def __init__(self, uri: ParsedUri, fps: float) -> None:
        self._depth = NpyStreamWriter(npy_target(uri), "<f4", frame_ndim=2)
        try:
            self._timestamps = NpyStreamWriter(timestamps_path(uri.target), "<f8", frame_ndim=0)
        except BaseException:
            self._depth.close()
            raise
        super().__init__(uri.text, FILE_SINK_QUEUE)

    def _write(self, frame: DepthFrame) -> None:
        # Depth first: after a failure or a kill the timestamps never claim a frame that is missing.
        self._depth.write(frame.depth)
        self._timestamps.write(frame.timestamp)

    def _finalise(self) -> None:
        try:
            self._depth.close()
        finally:
            self._timestamps.close()


class NullSink(ThreadedSink):
    """``null:``: accepts and discards frames (benchmarks, dry runs); counts them in ``sent``."""

    def __init__(self, uri: ParsedUri, fps: float) -> None:
        OptionReader(uri, {})
        super().__init__(uri.text, FILE_SINK_QUEUE)

    def _write(self, frame: DepthFrame) -> None:
        pass

    def _finalise(self) -> None:
        pass


def open_file_sink(uri: ParsedUri, fps: float) -> ThreadedSink:
    """Pick the file sink from the suffix of ``file:PATH``."""
    return ColorFileSink(uri, fps) if file_sink_suffix(uri) == ".mp4" else Gray16FileSink(uri, fps)
