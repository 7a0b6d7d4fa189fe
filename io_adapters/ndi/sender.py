"""Sending depth over NDI: sender names checked against the machine, ``NdiSender`` (one named output
in one of ``NDI_FORMATS``) and the ``ndi:`` sink built on it."""

from __future__ import annotations

import time
from fractions import Fraction

import numpy as np

from io_adapters.base import ThreadedSink
from io_adapters.encodings import burn_mark, to_uint8, to_uint16
from io_adapters.frames import DepthFrame
from io_adapters.layouts import compose, compose_ycbcr, needs_colour
from io_adapters.ndi.formats import (depth_to_bgra, depth_to_p216, depth_to_uyvy, frame_metadata_xml, timecode_ticks,
                                     ycbcr_to_p216, ycbcr_to_uyvy)
from io_adapters.ndi.library import load_ndi
from io_adapters.ndi.options import NdiSinkOptions, ndi_sink_options
from io_adapters.uri import ParsedUri
from pipeline.errors import BadInputError, RuntimeFailure

def check_sender_names_free(names: list[str]) -> None:
    """BadInputError when an NDI sender name is given twice or another sender on this machine
    holds it (checked by creating the sender for a moment: the library's own rule)."""
    seen: set[str] = set()
    for name in names:
        if name.casefold() in seen:
            raise BadInputError(f"two ndi: sinks are named {name!r}; NDI allows one sender per name, give each its own")
        seen.add(name.casefold())
        if not sender_name_free(name):
            raise BadInputError(f"the NDI name {name!r} is in use by another sender on this machine (NDI allows one "
                                f"sender per name); stop that sender or choose another name, e.g. ndi:{name} 2")


def sender_name_free(name: str) -> bool:
    """True when an NDI sender called ``name`` can be created here now (the NDI library locks
    sender names per machine, so a second sender of one name fails)."""
    ndi = load_ndi()
    settings = ndi.SendCreate()
    settings.ndi_name = name
    handle = ndi.send_create(settings)
    if handle is None:
        return False
    ndi.send_destroy(handle)
    return True


class NdiSender:
    """A named NDI output of depth frames in one of ``NDI_FORMATS``.

    Args:
        name: the NDI name receivers see (as 'MACHINE (NAME)').
        fps: declared frame rate; with ``clock`` the SDK paces sends to it.
        fmt: "bgra" (colour map or grey), "uyvy" (8-bit grey), "p216" (16-bit grey).
        cmap: colour map for bgra; None = grey.
        layout: "depth", "rgbd" or "rgbd-v" (io_adapters.layouts): colour beside/above the depth.
    """

    def __init__(self, name: str, fps: float, fmt: str = "bgra", cmap: str | None = None, clock: bool = True,
                 layout: str = "depth") -> None:
        NdiSinkOptions(name, fmt, cmap, clock, layout)  # the same rules as ndi: URIs
        self._ndi = load_ndi()
        self.fmt, self.cmap, self.layout = fmt, cmap, layout
        rate = Fraction(fps).limit_denominator(1001)
        self._rate = (rate.numerator, rate.denominator)
        settings = self._ndi.SendCreate()
        settings.ndi_name = name
        settings.clock_video = clock
        self._send = self._ndi.send_create(settings)
        if self._send is None:
            raise RuntimeFailure(f"could not create the NDI sender {name!r}: the name is in use by another sender on this "
                                 f"machine (NDI allows one sender per name); choose another name, e.g. ndi:{name} 2")
        self._fourcc = {
            "bgra": self._ndi.FOURCC_VIDEO_TYPE_BGRA,
            "uyvy": self._ndi.FOURCC_VIDEO_TYPE_UYVY,
            "p216": self._ndi.FOURCC_VIDEO_TYPE_P216,
        }[fmt]

    def picture(self, depth01: np.ndarray, rgb: np.ndarray | None = None, cmap: str | None = None,
                mark: str | None = None):
        """(buffer, width, height, line stride in bytes) of one frame in this sender's format and layout.

        depth01: float [H, W] in [0, 1]; rgb: uint8 [H, W, 3], needed for rgbd layouts;
        cmap: a colour map replacing this sender's for this frame (bgra only; grey formats ignore it).
        mark: text burnt into the depth picture of bgra (``DepthFrame.mark``); grey formats carry raw values.
        """
        if self.fmt == "bgra":
            picture = depth_to_bgra(depth01, cmap or self.cmap)
            buffer = compose(burn_mark(picture, mark) if mark else picture, rgb, self.layout, "bgra")
            return buffer, buffer.shape[1], buffer.shape[0], buffer.shape[1] * 4
        if self.fmt == "uyvy":
            buffer = (depth_to_uyvy(depth01) if self.layout == "depth"
                      else ycbcr_to_uyvy(*compose_ycbcr(to_uint8(depth01), rgb, self.layout)))
            return buffer, buffer.shape[1], buffer.shape[0], buffer.shape[1] * 2
        planes = (depth_to_p216(depth01) if self.layout == "depth"
                  else ycbcr_to_p216(*compose_ycbcr(to_uint16(depth01), rgb, self.layout)))
        return planes.view(np.uint8), planes.shape[1], planes.shape[0] // 2, planes.shape[1] * 2  # binding takes uint8 only

    def send(self, depth01: np.ndarray, rgb: np.ndarray | None = None, *, timestamp_s: float | None = None,
             metadata: str | None = None, cmap: str | None = None, mark: str | None = None) -> None:
        """Send float [H, W] in [0, 1]; blocks until the SDK took it (and, with clock, paces).

        timestamp_s: the source timestamp, sent as the NDI timecode (100 ns units); None lets the
        SDK synthesise one. metadata: an XML string attached to the frame (NDI frame metadata).
        mark: text burnt into a colour (bgra) picture, see ``DepthFrame.mark``.
        """
        buffer, width, height, stride = self.picture(depth01, rgb, cmap, mark)
        frame = self._ndi.VideoFrameV2()
        frame.data = np.ascontiguousarray(buffer)
        # Assigning data resets these; set them afterwards (docs/method.md, section 10).
        frame.FourCC = self._fourcc
        frame.xres, frame.yres, frame.line_stride_in_bytes = width, height, stride
        frame.frame_rate_N, frame.frame_rate_D = self._rate
        frame.frame_format_type = self._ndi.FRAME_FORMAT_TYPE_PROGRESSIVE
        frame.timecode = self._ndi.SEND_TIMECODE_SYNTHESIZE if timestamp_s is None else timecode_ticks(timestamp_s)
        if metadata is not None:
            frame.metadata = metadata
        self._ndi.send_send_video_v2(self._send, frame)

    def connections(self) -> int:
        return self._ndi.send_get_no_connections(self._send, 0)

    def close(self) -> None:
        if self._send is not None:
            self._ndi.send_destroy(self._send)
            self._send = None


class NdiSink(ThreadedSink):
    """``ndi:NAME?format=bgra|uyvy|p216&cmap=NAME&clock=1&layout=depth|rgbd|rgbd-v``: depth as an
    NDI output. Every frame carries the source timestamp as its timecode and ``frame_metadata_xml``."""

    def __init__(self, uri: ParsedUri, fps: float) -> None:
        options = ndi_sink_options(uri)
        self.layout = options.layout
        self.wants_colour = needs_colour(self.layout)
        self.sender = NdiSender(options.name, fps, options.fmt, options.cmap, options.clock, options.layout)
        super().__init__(uri.text)

    def _write(self, frame: DepthFrame) -> None:
        latency_ms = None if frame.received_at is None else (time.perf_counter() - frame.received_at) * 1000.0
        self.sender.send(frame.depth, frame.rgb, timestamp_s=frame.timestamp,
                         metadata=frame_metadata_xml(frame, latency_ms), cmap=frame.cmap, mark=frame.mark)

    def _finalise(self) -> None:
        self.sender.close()
