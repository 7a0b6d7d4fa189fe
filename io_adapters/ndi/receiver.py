"""Receiving NDI video: ``NdiReceiver`` (one named source, reconnecting when its sender comes back)
and the ``ndi:`` source built on it."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import numpy as np

from io_adapters.base import BlockingSource
from io_adapters.ndi.finder import NdiFinder
from io_adapters.ndi.library import load_ndi
from io_adapters.ndi.options import NdiSourceOptions, ndi_source_options
from io_adapters.uri import ParsedUri
from pipeline.errors import BadInputError, RuntimeFailure

RECONNECT_BACKOFF_S = (0.25, 0.5, 1.0, 2.0, 4.0)  # then 4 s between attempts while the sender is away
# One reconnect attempt searches this long (several probes), so one attempt almost always finds a
# sender that is back: at N = 2 sending processes, 5 probes all miss with chance 1/32.
RECONNECT_SEARCH_S = 1.0


@dataclass(frozen=True)
class ReceivedVideo:
    """One video frame taken from an NDI receiver (the data is a copy, owned by us).

    fourcc: the NDIlib FourCC name, e.g. "RGBA", "BGRA", "UYVY", "P216", "PA16".
    data: uint8 array as the binding shapes it ([H, W, 4] for RGBA/BGRA, [H, W, 2] for UYVY
        and the Y plane of P216/PA16).
    frame_rate: frames per second the sender declared (0 when it did not).
    timecode: the sender's timecode, 100 ns units.
    timestamp: when the SDK sent it (sender's clock, 100 ns units since the Unix epoch).
    metadata: the frame's XML metadata string, or None.
    """

    fourcc: str
    width: int
    height: int
    data: np.ndarray
    frame_rate: float
    timecode: int = 0
    timestamp: int = 0
    metadata: str | None = None


class NdiReceiver:
    """A receiver connected to one named source that reconnects when the sender comes back.

    Args:
        name: source name, full ('MACHINE (NAME)') or just NAME.
        color: "rgb" (RGBX/RGBA 8-bit: what the depth model wants), "uyvy" (8-bit 4:2:2 as
            sent by UYVY senders) or "best" (the SDK's best: P216 arrives as P216; 8-bit
            UYVY is widened to P216 too).
        ips: extra IPs for discovery (comma-separated).
        lost_s: seconds without video before looking the source up again (a restarted sender
            usually listens on a new port, which the old connection never finds).
    """

    def __init__(self, name: str, color: str = "rgb", ips: str | None = None, lost_s: float = 2.0) -> None:
        NdiSourceOptions(name, ips, lost_s=lost_s)  # the same name rule as ndi: URIs
        self._ndi = load_ndi()
        self.name = name
        self.lost_s = lost_s
        self._color = {
            "rgb": self._ndi.RECV_COLOR_FORMAT_RGBX_RGBA,
            "uyvy": self._ndi.RECV_COLOR_FORMAT_UYVY_BGRA,
            "best": self._ndi.RECV_COLOR_FORMAT_BEST,
        }[color]
        self._finder = NdiFinder(ips)
        self._asked_other = bool(ips and ips.strip())
        self._recv = None
        self._source_url: str | None = None
        self.reconnects = 0
        self._next_search: float | None = None  # when to look the source up again if no video
        self._search_attempt = 0  # index into RECONNECT_BACKOFF_S during an outage

    def connect(self, timeout_s: float, stop: threading.Event | None = None) -> None:
        """Find the source and connect; BadInputError listing what was seen after ``timeout_s``."""
        source = self._finder.wait_for(self.name, timeout_s, stop)
        if source is None:
            if stop is not None and stop.is_set():
                return
            seen = ", ".join(repr(n) for n in sorted(self._finder.names())) or "none"
            raise BadInputError(
                f"NDI source {self.name!r} not found within {timeout_s:g} s; sources seen: {seen} "
                f"(asked {self._finder.asked.replace(',', ', ')} and mDNS" + ("" if self._asked_other else "; add ?ips=HOST for other machines") + ")"
            )
        settings = self._ndi.RecvCreateV3()
        settings.color_format = self._color
        settings.bandwidth = self._ndi.RECV_BANDWIDTH_HIGHEST
        settings.source_to_connect_to = source
        self._recv = self._ndi.recv_create_v3(settings)
        if self._recv is None:
            raise RuntimeFailure(f"could not create an NDI receiver for {source.ndi_name!r}")
        self._source_url = source.url_address

    def _reconnect(self, stop: threading.Event | None = None) -> bool:
        """Look the source up again and point the receiver at it; True when it was found.

        A sender that is merely slow keeps its connection and address: it is left alone, since
        reconnecting would drop frames in flight.
        """
        source = self._finder.wait_for(self.name, RECONNECT_SEARCH_S, stop)  # probes while the finders see only others
        if source is None:
            return False
        connected = self._ndi.recv_get_no_connections(self._recv) > 0
        if connected and source.url_address == self._source_url:
            return True
        self._ndi.recv_connect(self._recv, source)
        self._source_url = source.url_address
        self.reconnects += 1
        return True

    def capture(self, timeout_s: float, stop: threading.Event | None = None, newest: bool = True) -> ReceivedVideo | None:
        """Next video frame within ``timeout_s`` (None on timeout or when ``stop`` is set).

        While no frame comes for ``lost_s``, the source is searched again with backoff.
        newest: skip frames already queued behind the first one (lowest latency for live use).
        """
        if self._recv is None:
            self.connect(timeout_s, stop)
            if self._recv is None:
                return None
        deadline = time.monotonic() + timeout_s
        if self._next_search is None:
            self._next_search = time.monotonic() + self.lost_s
        while not (stop is not None and stop.is_set()):
            now = time.monotonic()
            if now >= deadline:
                return None
            wait_ms = int(min(0.1, deadline - now) * 1000) + 1
            kind, video, audio, meta = self._ndi.recv_capture_v2(self._recv, wait_ms)
            if kind == self._ndi.FRAME_TYPE_VIDEO:
                received = self._take(video)
                while newest and self._ndi.recv_get_queue(self._recv).video_frames > 0:
                    kind, video, audio, meta = self._ndi.recv_capture_v2(self._recv, 0)
                    if kind != self._ndi.FRAME_TYPE_VIDEO:
                        self._free_other(kind, audio, meta)
                        break
                    received = self._take(video)
                # The outage clock lives on the receiver, so it spans several capture() calls.
                self._search_attempt = 0
                self._next_search = time.monotonic() + self.lost_s
                return received
            self._free_other(kind, audio, meta)
            if time.monotonic() >= self._next_search:
                self._reconnect(stop)
                delay = RECONNECT_BACKOFF_S[min(self._search_attempt, len(RECONNECT_BACKOFF_S) - 1)]
                self._search_attempt += 1
                self._next_search = time.monotonic() + delay
        return None

    def _free_other(self, kind, audio, meta) -> None:
        """Audio and metadata frames are not used, but the SDK wants them given back."""
        if kind == self._ndi.FRAME_TYPE_AUDIO:
            self._ndi.recv_free_audio_v2(self._recv, audio)
        elif kind == self._ndi.FRAME_TYPE_METADATA:
            self._ndi.recv_free_metadata(self._recv, meta)

    def _take(self, video) -> ReceivedVideo:
        try:
            rate = video.frame_rate_N / video.frame_rate_D if video.frame_rate_D else 0.0
            return ReceivedVideo(
                fourcc=str(video.FourCC).rsplit("_", 1)[-1],
                width=video.xres,
                height=video.yres,
                data=np.array(video.data, copy=True),
                frame_rate=float(rate),
                timecode=int(video.timecode),
                timestamp=int(video.timestamp),
                metadata=video.metadata or None,
            )
        finally:
            self._ndi.recv_free_video_v2(self._recv, video)

    def close(self) -> None:
        if self._recv is not None:
            self._ndi.recv_destroy(self._recv)
            self._recv = None
        self._finder.close()


class NdiSource(BlockingSource):
    """``ndi:SOURCE NAME?ips=...&timeout=10&lost=2``: frames of a named NDI source as RGB.

    Waits up to ``timeout`` seconds for the source at the first ``recv()`` (then BadInputError
    listing the sources seen). Live: returns the newest frame, skipping older queued ones. When
    the sender disappears, ``recv()`` keeps waiting and searches for it again with backoff;
    frames may change size at any time (each frame carries its own size).
    """

    def __init__(self, uri: ParsedUri, realtime: bool = True) -> None:
        options = ndi_source_options(uri)
        self.timeout_s = options.timeout_s
        self._receiver = NdiReceiver(options.name, "rgb", options.ips, options.lost_s)
        self._stop = threading.Event()
        super().__init__(uri.text, None, realtime=False)  # live: frames come at their own pace

    def _interrupt(self) -> None:
        self._stop.set()

    def wait_until_there(self) -> None:
        """Find the sender and connect now (BadInputError after ``timeout`` s), not at the first recv."""
        with self._handle_lock:
            if self._receiver._recv is None:
                self._receiver.connect(self.timeout_s, self._stop)

    def _read(self):
        if self._receiver._recv is None:
            self._receiver.connect(self.timeout_s, self._stop)
        while not self._stop.is_set():
            received = self._receiver.capture(1.0, self._stop)
            if received is None:
                continue
            if received.frame_rate and self.nominal_fps is None:
                self.nominal_fps = received.frame_rate
            rgb = np.ascontiguousarray(received.data[..., :3]) if received.fourcc in ("RGBA", "RGBX") else _bgra_to_rgb(received)
            return time.monotonic(), rgb
        return None

    def _release(self) -> None:
        self._receiver.close()


def _bgra_to_rgb(received: ReceivedVideo) -> np.ndarray:
    if received.fourcc in ("BGRA", "BGRX"):
        return np.ascontiguousarray(received.data[..., 2::-1])
    raise RuntimeFailure(f"NDI source sent {received.fourcc} although RGBA was requested")
