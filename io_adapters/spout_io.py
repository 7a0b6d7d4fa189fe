"""Spout output and input (Windows) through SpoutGL, the pybind11 wrapper of the Spout SDK.

Spout shares GPU textures between programs on one Windows machine, as Syphon does on macOS
(TouchDesigner: Spout In / Spout Out TOP; Resolume, OBS). This module mirrors
io_adapters/syphon_io.py:

* Sink ``spout:NAME?format=color|packed16&cmap=NAME&layout=depth|rgbd|rgbd-v``: a Spout sender.
  SpoutGL's ``sendImage`` takes 8-bit pixels only (GL_RGBA, GL_BGRA_EXT, GL_RGB, GL_BGR_EXT:
  its byte-count check rejects every other GL format), so, as for Syphon, ``color`` sends the
  colour-mapped depth (default cmap Greys_r = white is near) and ``packed16`` sends 16-bit depth
  split over two 8-bit channels (R = high byte, G = low byte; docs/live_io.md has the GLSL TOP
  that rebuilds it). Pixels go out as GL_BGRA_EXT, the same bytes as a Syphon surface.
* Source ``spout:SENDER NAME?timeout=10``: a receiver of a named sender. When the sender goes
  away the source waits for a sender of that name to come back (Spout reconnects by name).

The Spout SDK does not refuse a second sender of a taken name: it renames the new one
(``Depth_1``), so a TouchDesigner Spout In TOP would silently keep showing the OTHER sender.
We refuse instead, with the same one line as a taken NDI name.

SpoutGL exists only on Windows: it is imported lazily, and elsewhere a ``spout:`` URI gives one
clear line suggesting ndi: (or syphon: on macOS). ``spout_sink_options`` /
``spout_source_options`` check a URI's options on any platform without importing it.
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
from io_adapters.layouts import needs_colour
from io_adapters.names import check_name
from io_adapters.syphon_io import depth_to_syphon_bgra
from io_adapters.texture_options import (TextureSinkOptions, TextureSourceOptions, texture_sink_options,
                                         texture_source_options)
from io_adapters.uri import ParsedUri
from pipeline.errors import BadInputError, RuntimeFailure

# The Spout SDK keeps sender names in 256-byte C strings (SpoutMaxSenderNameLen), NUL included.
MAX_SPOUT_NAME_BYTES = 255
# OpenGL pixel-format enums (the values SpoutGL.enums re-exports; fixed by the GL headers).
GL_RGBA = 0x1908
GL_BGRA_EXT = 0x80E1
_POLL_S = 0.002  # receiveImage does not block: poll often, cheaply


def _check_name(name: str, example: str) -> None:
    check_name(name, "spout: sender name", example, MAX_SPOUT_NAME_BYTES, " (Spout keeps names in 256-byte strings)")


def spout_sink_options(uri: ParsedUri) -> TextureSinkOptions:
    """The options of ``spout:NAME?format=color|packed16&cmap=NAME&layout=...``
    (``io_adapters.texture_options``; format=rgba16 is refused: Spout carries 8-bit only), checked
    without importing SpoutGL (Windows only)."""
    return texture_sink_options(uri, lambda name: _check_name(name, "spout:Depth?format=packed16"))


def spout_source_options(uri: ParsedUri) -> TextureSourceOptions:
    """The options of ``spout:SENDER NAME?timeout=10``, checked without importing SpoutGL."""
    return texture_source_options(uri, "sender", lambda name: _check_name(name, "spout:TDSpoutOut (see `rdstream sources`)"))


def _spout_missing() -> BadInputError:
    """The error when SpoutGL cannot be imported: off Windows no install can help. Bad input
    (exit 2) either way, found before the model loads."""
    if sys.platform != "win32":
        instead = "syphon:NAME or ndi:NAME" if sys.platform == "darwin" else "ndi:NAME"
        return BadInputError(f"spout: URIs need Windows (Spout is a Windows GPU-sharing system; this is "
                             f"{sys.platform}); use {instead} instead")
    return BadInputError("spout: URIs need the SpoutGL package: pip install \"rollingdepth-stream[spout]\" "
                         "(py tasks.py installs it on Windows)")


def check_spout_installed() -> None:
    """The error of ``load_spout`` for a missing SpoutGL (elsewhere than Windows: Windows only),
    found without importing it, so ``rdstream run`` says it before the model loads."""
    if importlib.util.find_spec("SpoutGL") is None:
        raise _spout_missing()


def load_spout():
    """Import SpoutGL; one clear line where that is impossible."""
    try:
        return importlib.import_module("SpoutGL")
    except ImportError:
        raise _spout_missing() from None


def _sender_names(spout) -> list[str]:
    """Names of the Spout senders registered on this machine now."""
    receiver = spout.SpoutReceiver()
    try:
        return list(receiver.getSenderList())
    finally:
        receiver.releaseReceiver()


class SpoutSink(ThreadedSink):
    """A Spout sender publishing depth as 8-bit BGRA; the shared texture follows the frame size."""

    def __init__(self, uri: ParsedUri, fps: float) -> None:
        options = spout_sink_options(uri)
        self.fmt, self.cmap, self.layout = options.fmt, options.cmap, options.layout
        self.name = options.name
        self.wants_colour = needs_colour(self.layout)
        self._spout = load_spout()
        if self.name in _sender_names(self._spout):
            raise RuntimeFailure(f"could not create the Spout sender {self.name!r}: the name is in use by another sender "
                                 f"on this machine (Spout would rename ours); choose another name, e.g. spout:{self.name} 2")
        self.sender = self._spout.SpoutSender()
        self.sender.setSenderName(self.name)
        super().__init__(uri.text)

    def _write(self, frame: DepthFrame) -> None:
        bgra = np.ascontiguousarray(depth_to_syphon_bgra(frame.depth, self.fmt, frame.cmap or self.cmap,
                                                         frame.rgb, self.layout, frame.mark))
        height, width = bgra.shape[:2]
        # Row 0 of the array is the top of the picture; sent as it is (invert=False), as Spout's
        # examples send top-down images. Not seen on a real receiver here: docs/live_io.md says what to do.
        if not self.sender.sendImage(bgra, width, height, GL_BGRA_EXT, False, 0):
            raise RuntimeFailure(f"Spout could not send to {self.name!r} (no OpenGL/DirectX interop on this GPU driver?)")
        self.sender.setFrameSync(self.name)  # wakes receivers that wait for a new frame

    def _finalise(self) -> None:
        self.sender.releaseSender()


class SpoutSource(BlockingSource):
    """Frames of a named Spout sender as RGB (timestamps: arrival time; the newest frame wins).

    Every Spout call runs on one thread of its own: a receiver's OpenGL context belongs to the
    thread that made it, and ``recv()`` runs ``_read`` on whichever worker thread is free.
    """

    def __init__(self, uri: ParsedUri, realtime: bool = True) -> None:
        options = spout_source_options(uri)
        self.timeout_s, self.sender_name = options.timeout_s, options.name
        self._spout = load_spout()
        self._stop = threading.Event()
        self._arrived = threading.Condition()
        self._latest: tuple[float, np.ndarray] | None = None
        self._error: BaseException | None = None
        self._receiving: threading.Thread | None = None
        super().__init__(uri.text, None, realtime=False)

    def _connect(self):
        deadline = time.monotonic() + self.timeout_s
        while not self._stop.is_set():
            names = _sender_names(self._spout)
            if self.sender_name in names:
                receiver = self._spout.SpoutReceiver()
                receiver.setReceiverName(self.sender_name)
                return receiver
            if time.monotonic() >= deadline:
                seen = ", ".join(repr(name) for name in names) or "none"
                raise BadInputError(f"Spout sender {self.sender_name!r} not found within {self.timeout_s:g} s; senders seen: {seen}")
            time.sleep(0.05)
        return None

    def _receive(self) -> None:
        """The receiving thread: connect, then keep the newest frame in ``_latest``."""
        receiver = None
        try:
            receiver = self._connect()
            buffer = None
            while not self._stop.is_set():
                # After a (re)connection or a size change the call only reports the sender's size
                # (isUpdated); the buffer is then made to fit and the next call fills it.
                received = receiver.receiveImage(buffer, GL_RGBA, False, 0)
                if receiver.isUpdated():
                    buffer = np.zeros((receiver.getSenderHeight(), receiver.getSenderWidth(), 4), np.uint8)
                    continue
                if received and buffer is not None and receiver.isFrameNew():
                    with self._arrived:
                        self._latest = (time.monotonic(), np.ascontiguousarray(buffer[..., :3]))
                        self._arrived.notify_all()
                    continue
                # No new frame, or the sender went away: Spout reconnects by name when it returns.
                time.sleep(_POLL_S)
        except Exception as err:  # said by the next recv(), in one line
            with self._arrived:
                self._error = err
                self._arrived.notify_all()
        finally:
            if receiver is not None:
                receiver.releaseReceiver()
            self._stop.set()
            with self._arrived:
                self._arrived.notify_all()

    def _read(self):
        if self._receiving is None:
            self._receiving = threading.Thread(target=self._receive, name=f"spout {self.sender_name}", daemon=True)
            self._receiving.start()
        with self._arrived:
            while self._latest is None and self._error is None and not self._stop.is_set():
                self._arrived.wait(0.1)
            if self._error is not None:
                raise self._error
            item, self._latest = self._latest, None
            return item  # None after a stop: the end of the stream

    def _interrupt(self) -> None:
        self._stop.set()
        with self._arrived:
            self._arrived.notify_all()

    def _release(self) -> None:
        self._stop.set()
        if self._receiving is not None:
            self._receiving.join(timeout=5)


def list_spout_senders() -> list[str]:
    """Names of the visible Spout senders (empty off Windows or without SpoutGL)."""
    try:
        spout = load_spout()
    except BadInputError:
        return []
    return sorted(_sender_names(spout))


def spout_listing(wait_s: float = 0.0, ips: str | None = None) -> tuple[list[str], list[str]]:
    """``rdstream sources``: (Spout sender URIs, notes); ``wait_s`` and ``ips`` are for network sources."""
    entries = [f"spout:{name}" for name in list_spout_senders()]
    return entries, [] if sys.platform == "win32" else ["Spout is Windows only"]
