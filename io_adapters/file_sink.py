"""Sinks that write files (``file:out.mp4``, ``file:out.mkv``, ``npy:out.npy``) and ``null:``.

File sinks keep a deeper queue than live outputs (encoders are fast, a file should not lose
frames to a short hiccup) but still drop the oldest frame rather than stall the node.
"""

from __future__ import annotations

from pathlib import Path

from io_adapters.base import ThreadedSink
from io_adapters.frames import DepthFrame
from io_adapters.layouts import LAYOUT_OPTION_HELP, compose, needs_colour, read_layout
from io_adapters.npy_stream import NpyStreamWriter
from io_adapters.uri import OptionReader, ParsedUri
from io_adapters.video_file import ColorVideoWriter, Gray16VideoWriter
from io_adapters.encodings import apply_colormap, colormap_lut, to_uint16
from pipeline.errors import BadInputError

FILE_SINK_QUEUE = 32
DEFAULT_FILE_CMAP = "Spectral_r"  # the reference's default colour map
COLOR_FILE_OPTIONS = {"cmap": f"matplotlib colour map, default {DEFAULT_FILE_CMAP}", "crf": "H.264 quality 0..51, default 18",
                      "layout": LAYOUT_OPTION_HELP}
FILE_SINK_SUFFIXES = {".mp4": "colour-mapped H.264", ".mkv": "lossless 16-bit FFV1"}


class ColorFileSink(ThreadedSink):
    """``file:out.mp4?cmap=NAME&crf=18``: colour-mapped H.264 (even size, padded; see video_file)."""

    def __init__(self, uri: ParsedUri, fps: float) -> None:
        options = OptionReader(uri, COLOR_FILE_OPTIONS)
        self.cmap = options.text("cmap", DEFAULT_FILE_CMAP)
        colormap_lut(self.cmap)  # unknown names fail now, not in the writer thread
        self.layout = read_layout(options)
        self.wants_colour = needs_colour(self.layout)
        # veryfast: a live node must not fall behind the encoder (medium is ~3x slower).
        self._writer = ColorVideoWriter(uri.target, fps, crf=options.integer("crf", 18, 0, 51), preset="veryfast")
        super().__init__(uri.text, FILE_SINK_QUEUE)

    def _write(self, frame: DepthFrame) -> None:
        self._writer.write(compose(apply_colormap(frame.depth, frame.cmap or self.cmap), frame.rgb, self.layout, "rgb"))

    def _finalise(self) -> None:
        self._writer.close()


class Gray16FileSink(ThreadedSink):
    """``file:out.mkv``: depth as 16-bit grey (0..65535, 1 = nearest), FFV1, bit-exact."""

    def __init__(self, uri: ParsedUri, fps: float) -> None:
        self.layout = read_layout(OptionReader(uri, {"layout": LAYOUT_OPTION_HELP}))
        self.wants_colour = needs_colour(self.layout)
        self._writer = Gray16VideoWriter(uri.target, fps)
        super().__init__(uri.text, FILE_SINK_QUEUE)

    def _write(self, frame: DepthFrame) -> None:
        self._writer.write(compose(to_uint16(frame.depth), frame.rgb, self.layout, "grey16"))

    def _finalise(self) -> None:
        self._writer.close()


class NpySink(ThreadedSink):
    """``npy:out.npy``: float32 [N, H, W] depth in [0, 1]; a valid .npy once closed."""

    def __init__(self, uri: ParsedUri, fps: float) -> None:
        OptionReader(uri, {})
        if not uri.target:
            raise BadInputError("npy: needs a file name, e.g. npy:depth.npy")
        self._writer = NpyStreamWriter(uri.target)
        super().__init__(uri.text, FILE_SINK_QUEUE)

    def _write(self, frame: DepthFrame) -> None:
        self._writer.write(frame.depth)

    def _finalise(self) -> None:
        self._writer.close()


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
    suffix = Path(uri.target).suffix.lower()
    if suffix == ".mp4":
        return ColorFileSink(uri, fps)
    if suffix == ".mkv":
        return Gray16FileSink(uri, fps)
    kinds = ", ".join(f"{s} ({what})" for s, what in FILE_SINK_SUFFIXES.items())
    raise BadInputError(f"file sink {uri.target!r}: unsupported extension {suffix or '(none)'}; use {kinds}, or npy:NAME.npy")
