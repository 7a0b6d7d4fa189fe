"""Syphon output and input (macOS) through syphon-python's Metal classes.

* Sink ``syphon:NAME?format=color|packed16&cmap=NAME``: a Syphon server. Syphon surfaces are
  always 8-bit BGRA, so ``color`` publishes the colour-mapped depth (default cmap Greys_r =
  white is near), and ``packed16`` publishes 16-bit depth split over two channels (R = high
  byte, G = low byte; io_adapters/encodings.py ``pack16_bgra``). docs/live_io.md has the
  TouchDesigner GLSL TOP that rebuilds the 16-bit value. ``layout=rgbd|rgbd-v`` puts the input
  colour frame beside / above the depth (io_adapters/layouts.py).
* Source ``syphon:SERVER NAME``: a client of a named server (its name, or its app name).

syphon-python (PyObjC + Metal) only exists on macOS: it is imported lazily, and elsewhere a
``syphon:`` URI gives one clear line suggesting ndi: instead. ``syphon_sink_options`` /
``syphon_source_options`` check a URI's options on any platform without importing it.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import threading
import time

import numpy as np

from io_adapters.base import BlockingSource, ThreadedSink
from io_adapters.frames import DepthFrame
from io_adapters.layouts import compose, needs_colour
from io_adapters.names import check_name
from io_adapters.texture_options import (TextureSinkOptions, TextureSourceOptions, texture_sink_options,
                                         texture_source_options)
from io_adapters.uri import ParsedUri
from io_adapters.encodings import apply_colormap_bgra, burn_mark, pack16_bgra
from pipeline.errors import BadInputError, RuntimeFailure

_POLL_S = 0.002  # the client has no frame callback in syphon-python: poll often, cheaply


# Syphon itself sets no limit; this one keeps a server name usable in Spout too (the same rule there).
MAX_SYPHON_NAME_BYTES = 255
SYPHON_LIMIT = " (kept within Spout's limit, so one name works for both)"


def _sink_name(name: str) -> None:
    check_name(name, "syphon: server name", "syphon:Depth?format=packed16", MAX_SYPHON_NAME_BYTES, SYPHON_LIMIT)


def _source_name(name: str) -> None:
    check_name(name, "syphon: server name", "syphon:Resolume (see `rdstream sources`)", MAX_SYPHON_NAME_BYTES,
               SYPHON_LIMIT)


def syphon_sink_options(uri: ParsedUri) -> TextureSinkOptions:
    """The options of ``syphon:NAME?format=color|packed16&cmap=NAME&layout=...``
    (``io_adapters.texture_options``), checked without importing syphon-python (macOS only)."""
    return texture_sink_options(uri, _sink_name)


def syphon_source_options(uri: ParsedUri) -> TextureSourceOptions:
    """The options of ``syphon:SERVER NAME?timeout=10``, checked without importing syphon-python."""
    return texture_source_options(uri, "server", _source_name)


def _syphon_missing() -> BadInputError | RuntimeFailure:
    """The error when syphon-python cannot be imported: off macOS no install can help."""
    if sys.platform != "darwin":
        return BadInputError(
            f"syphon: URIs need macOS (Syphon is a macOS framework; this is {sys.platform}); use ndi:NAME instead"
        )
    return RuntimeFailure("syphon: URIs need the syphon-python package: pip install 'rollingdepth-stream[syphon]'")


def check_syphon_installed() -> None:
    """The error of ``load_syphon`` for a missing syphon-python (on Linux: macOS only), found
    without importing it, so ``rdstream run`` says it before the model loads."""
    if importlib.util.find_spec("syphon") is None:
        raise _syphon_missing()


def load_syphon():
    """Import syphon and its numpy/raw helpers; one clear line where that is impossible."""
    try:
        syphon = importlib.import_module("syphon")
        numpy_utils = importlib.import_module("syphon.utils.numpy")
        raw_utils = importlib.import_module("syphon.utils.raw")
    except ImportError:
        raise _syphon_missing() from None
    return syphon, numpy_utils, raw_utils


def depth_to_syphon_bgra(depth01: np.ndarray, fmt: str, cmap: str, rgb: np.ndarray | None = None,
                         layout: str = "depth", mark: str | None = None) -> np.ndarray:
    """float [H, W] in [0, 1] -> uint8 BGRA for a Syphon surface: [H, W, 4] for layout=depth,
    [H, 2W, 4] / [2H, W, 4] with the colour frame rgb (uint8 [H, W, 3]) for rgbd / rgbd-v.
    With packed16 only the depth half is packed; the colour half is plain BGRA. ``mark`` is burnt
    into a colour-mapped depth picture (packed16 is raw data: a mark would corrupt it)."""
    depth_picture = pack16_bgra(depth01) if fmt == "packed16" else apply_colormap_bgra(depth01, cmap)
    if mark and fmt != "packed16":
        burn_mark(depth_picture, mark)
    return compose(depth_picture, rgb, layout, "bgra")


class SyphonSink(ThreadedSink):
    """A Syphon Metal server publishing depth; the texture follows the frame size."""

    def __init__(self, uri: ParsedUri, fps: float) -> None:
        options = syphon_sink_options(uri)
        self.fmt, self.cmap, self.layout = options.fmt, options.cmap, options.layout
        self.wants_colour = needs_colour(self.layout)
        self._syphon, self._numpy_utils, self._raw_utils = load_syphon()
        self.server = self._syphon.SyphonMetalServer(options.name)
        self._texture = None
        self._texture_size: tuple[int, int] | None = None
        super().__init__(uri.text)

    def _write(self, frame: DepthFrame) -> None:
        bgra = depth_to_syphon_bgra(frame.depth, self.fmt, frame.cmap or self.cmap, frame.rgb, self.layout, frame.mark)
        height, width = bgra.shape[:2]
        if self._texture_size != (width, height):  # new size: new texture (Syphon follows it)
            self._texture = self._raw_utils.create_mtl_texture(self.server.device, width, height)
            self._texture_size = (width, height)
        self._numpy_utils.copy_image_to_mtl_texture(bgra, self._texture)
        # Row 0 of the array is the top of the picture, as in a Metal texture: not flipped.
        self.server.publish_frame_texture(self._texture, is_flipped=False)

    def _finalise(self) -> None:
        self.server.stop()


class SyphonSource(BlockingSource):
    """Frames of a named Syphon server as RGB (timestamps: arrival time)."""

    def __init__(self, uri: ParsedUri, realtime: bool = True) -> None:
        options = syphon_source_options(uri)
        self.timeout_s, self.server_name = options.timeout_s, options.name
        self._syphon, self._numpy_utils, _ = load_syphon()
        self._directory = self._syphon.SyphonServerDirectory()
        self._directory.run_loop_interval = 0.05  # its default spins the run loop for a whole second
        self._client = None
        self._stop = threading.Event()
        super().__init__(uri.text, None, realtime=False)

    def _connect(self) -> None:
        deadline = time.monotonic() + self.timeout_s
        while not self._stop.is_set():
            servers = self._directory.servers
            for server in servers:
                if self.server_name in (server.name, server.app_name):
                    self._client = self._syphon.SyphonMetalClient(server)
                    return
            if time.monotonic() >= deadline:
                seen = ", ".join(repr(f"{s.app_name}: {s.name}") for s in servers) or "none"
                raise BadInputError(f"Syphon server {self.server_name!r} not found within {self.timeout_s:g} s; servers seen: {seen}")

    def _interrupt(self) -> None:
        self._stop.set()

    def _read(self):
        if self._client is None:
            self._connect()
        while not self._stop.is_set():
            if self._client.has_new_frame:
                bgra = self._numpy_utils.copy_mtl_texture_to_image(self._client.new_frame_image)
                return time.monotonic(), np.ascontiguousarray(bgra[..., 2::-1])
            time.sleep(_POLL_S)
        return None

    def _release(self) -> None:
        if self._client is not None:
            self._client.stop()
            self._client = None


def list_syphon_servers() -> list[tuple[str, str]]:
    """(name, app name) of the visible Syphon servers (empty off macOS or without syphon-python)."""
    try:
        syphon, _, _ = load_syphon()
    except (BadInputError, RuntimeFailure):
        return []
    directory = syphon.SyphonServerDirectory()
    directory.run_loop_interval = 0.2
    return sorted((server.name, server.app_name) for server in directory.servers)


def syphon_listing(wait_s: float = 0.0, ips: str | None = None) -> tuple[list[str], list[str]]:
    """``rdstream sources``: (Syphon server URIs with their apps, notes); ``wait_s`` and ``ips`` are
    for network sources."""
    entries = [f"syphon:{name}  ({app})" for name, app in list_syphon_servers()]
    return entries, [] if sys.platform == "darwin" else ["Syphon is macOS only"]
