"""NDI input and output through ndi-python (``import NDIlib``; bundles libndi 6 for Linux
x86_64 and macOS arm64).

Discovery: NDI finds sources by mDNS, which needs a running mDNS responder (avahi on Linux).
Every finder here also asks 127.0.0.1 directly (``extra_ips``), so sources on the same machine
are found without one; ``?ips=10.0.0.5,10.0.0.6`` adds machines elsewhere. An NDI config file
in ``$NDI_CONFIG_DIR/ndi-config.v1.json`` is read by the SDK itself and is honoured as well.
Asking an address directly is a TCP connection to its port 5960, which every process that sends
NDI listens on (shared port): the kernel hands each connection to ONE of those processes, and that
process lists only its own senders. A finder keeps its connection, so in a process that also sends
(an ``ndi:`` sink) it may only ever see itself. NdiFinder therefore also asks through a fresh probe
finder (a new connection, handed to another process) while it searches, and keeps the long-lived
finder for what mDNS gathers over time.

Output (``ndi:NAME?format=bgra|uyvy|p216&cmap=NAME&layout=depth|rgbd|rgbd-v``) is sent with
``clock_video`` on, so the SDK paces frames to the declared rate. Each frame carries the source
timestamp as its NDI timecode (100 ns units) and an XML metadata string with the source frame
index, timestamp, latency and display range (``ndi_formats.frame_metadata_xml``); TouchDesigner's
NDI In TOP shows both in its Info DAT. ``p216`` carries 16-bit depth in the Y plane
(U = V = 32768); NDI compresses it, to about 11 effective bits (see tests/test_io_ndi.py).

Binding quirks (ndi-python 6.3): ``VideoFrameV2.data`` only accepts uint8 arrays and resets
``xres``, ``yres`` and ``line_stride_in_bytes`` when assigned, so 16-bit buffers go in as a
uint8 view and the sizes are set AFTER ``data``; UYVY must be shaped [H, W, 2].

The SDK is initialised once per process and never torn down here: other senders/receivers
of the same process may still be using it.
"""

from __future__ import annotations

import importlib.util
import socket
import threading
import time
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from io_adapters.base import BlockingSource, ThreadedSink
from io_adapters.frames import DepthFrame
from io_adapters.layouts import LAYOUT_OPTION_HELP, compose, compose_ycbcr, needs_colour, read_layout
from io_adapters.names import check_name
from io_adapters.ndi_formats import (
    depth_to_bgra,
    depth_to_p216,
    depth_to_uyvy,
    frame_metadata_xml,
    timecode_ticks,
    ycbcr_to_p216,
    ycbcr_to_uyvy,
)
from io_adapters.uri import OptionReader, ParsedUri
from io_adapters.encodings import burn_mark, to_uint8, to_uint16
from pipeline.errors import BadInputError, RollingDepthError, RuntimeFailure

NDI_FORMATS = ("bgra", "uyvy", "p216")
NDI_SINK_OPTIONS = {
    "format": "bgra (8-bit, colour map or grey; default), uyvy (8-bit grey), p216 (16-bit grey)",
    "cmap": "matplotlib colour map for format=bgra; default: grey",
    "clock": "1 = let NDI pace frames to the rate (default), 0 = send as they come",
    "layout": LAYOUT_OPTION_HELP,
}
NDI_SOURCE_OPTIONS = {
    "ips": "extra IP addresses to ask for sources, comma-separated (127.0.0.1 is always asked)",
    "timeout": "seconds to wait for the source to appear, default 10",
    "lost": "seconds without a frame before searching for the sender again, default 2",
}
LOOPBACK = "127.0.0.1"
# The NDI library refuses a sender whose full name 'MACHINE (NAME)' exceeds this many UTF-8 bytes
# (measured with ndi-python 6.3: names of 248 bytes on a 2-character host name, 216 on a 34-character one).
NDI_FULL_NAME_MAX_BYTES = 253
RECONNECT_BACKOFF_S = (0.25, 0.5, 1.0, 2.0, 4.0)  # then 4 s between attempts while the sender is away
# While searching, a fresh probe finder every PROBE_S: with N processes sending NDI on one machine,
# each probe reaches the wanted one with chance 1/N (measured on loopback: a probe answers in ms).
PROBE_S = 0.2
# One reconnect attempt searches this long (several probes), so one attempt almost always finds a
# sender that is back: at N = 2 sending processes, 5 probes all miss with chance 1/32.
RECONNECT_SEARCH_S = 1.0


@dataclass(frozen=True)
class NdiSinkOptions:
    """What an ``ndi:`` sink sends; creating one checks the rules between the values.

    name: the sender name receivers see (non-empty). fmt: one of NDI_FORMATS. cmap: colour map
    for bgra (None = grey; only bgra carries colour). clock: let the SDK pace sends to the rate.
    layout: one of io_adapters.layouts.LAYOUTS.
    """

    name: str
    fmt: str = "bgra"
    cmap: str | None = None
    clock: bool = True
    layout: str = "depth"

    def __post_init__(self) -> None:
        if self.fmt not in NDI_FORMATS:
            raise BadInputError(f"NDI format {self.fmt!r} is not one of {', '.join(NDI_FORMATS)}")
        if self.cmap is not None and self.fmt != "bgra":
            raise BadInputError(f"cmap only applies to format=bgra (got cmap={self.cmap!r} with format={self.fmt}; "
                                f"uyvy and p216 carry grey depth)")
        check_sender_name_length(self.name)


def check_sender_name_length(name: str, host: str | None = None) -> None:
    """BadInputError when NDI would refuse the sender name ``name``: empty, or too long. The full
    name 'MACHINE (NAME)' may be at most NDI_FULL_NAME_MAX_BYTES bytes (UTF-8), so the limit
    depends on this machine's name ``host`` (default: socket.gethostname())."""
    host = socket.gethostname() if host is None else host
    room = NDI_FULL_NAME_MAX_BYTES - len(host.encode()) - len(" ()")
    check_name(name, "ndi: sink name", "ndi:Depth?format=p216", room,
               f" on this machine ({host!r}: NDI limits the full name '{host} (NAME)' to {NDI_FULL_NAME_MAX_BYTES})")


def ndi_sink_options(uri: ParsedUri) -> NdiSinkOptions:
    """The options of ``ndi:NAME?format=...&cmap=...&clock=...&layout=...``, checked without
    touching the NDI library (so a mistake is found before the model loads).

    Raises:
        BadInputError: unknown option, bad value, cmap with a grey format, empty name.
    """
    options = OptionReader(uri, NDI_SINK_OPTIONS)
    return NdiSinkOptions(
        name=uri.target,
        fmt=options.choice("format", NDI_FORMATS, "bgra"),
        cmap=options.colormap("cmap", None),
        clock=options.flag("clock", True),
        layout=read_layout(options),
    )


@dataclass(frozen=True)
class NdiSourceOptions:
    """Which NDI source to receive and how long to wait; creating one checks the name.

    name: source name, full ('MACHINE (NAME)') or just NAME. ips: extra IPs for discovery
    (comma-separated) or None. timeout_s: wait for the source at the start. lost_s: seconds
    without video before looking the source up again.
    """

    name: str
    ips: str | None = None
    timeout_s: float = 10.0
    lost_s: float = 2.0

    def __post_init__(self) -> None:
        check_name(self.name, "ndi: source name", "ndi:Studio Cam (see `rdstream sources`)")


def ndi_source_options(uri: ParsedUri) -> NdiSourceOptions:
    """The options of ``ndi:SOURCE NAME?ips=...&timeout=10&lost=2``, checked without touching
    the NDI library.

    Raises:
        BadInputError: unknown option, bad value, empty source name.
    """
    options = OptionReader(uri, NDI_SOURCE_OPTIONS)
    return NdiSourceOptions(
        name=uri.target,
        ips=options.text("ips"),
        timeout_s=options.number("timeout", 10.0),
        lost_s=options.number("lost", 2.0),
    )


def _ndi_missing() -> RuntimeFailure:
    return RuntimeFailure(
        "ndi: URIs need the ndi-python package: pip install 'rollingdepth-stream[ndi]' (Linux x86_64, macOS arm64)"
    )


def check_ndi_installed() -> None:
    """RuntimeFailure when ndi-python is not installed; looks for it without importing it."""
    if importlib.util.find_spec("NDIlib") is None:
        raise _ndi_missing()


def load_ndi():
    """Import ndi-python and initialise the SDK; RuntimeFailure with the fix when it cannot."""
    try:
        import NDIlib as ndi
    except ImportError:
        raise _ndi_missing() from None
    if not ndi.initialize():
        raise RuntimeFailure("the NDI library failed to initialise (unsupported CPU?); ndi: URIs are unavailable")
    return ndi


def extra_ips(user_ips: str | None) -> str:
    """Comma-separated addresses a finder asks directly: always the loopback, plus the user's."""
    ips = [LOOPBACK] + [ip.strip() for ip in (user_ips or "").split(",") if ip.strip() and ip.strip() != LOOPBACK]
    return ",".join(ips)


def matches_source_name(wanted: str, full_name: str) -> bool:
    """NDI names are 'MACHINE (NAME)': accept the full name or just NAME, case-insensitively."""
    wanted_folded = wanted.strip().casefold()
    full = full_name.casefold()
    if wanted_folded == full:
        return True
    if full.endswith(")") and "(" in full:
        return full[full.index("(") + 1 : -1] == wanted_folded
    return False


class NdiFinder:
    """A live list of NDI sources (keep one open: discovery fills it in the background).

    ``sources()`` is what the long-lived finder saw plus what the current probe saw; ``probe()``
    replaces the probe, i.e. asks the direct addresses again over a new connection (see the
    module docstring: on a shared port each connection reaches one sending process).
    """

    def __init__(self, ips: str | None = None) -> None:
        self._ndi = load_ndi()
        self.asked = extra_ips(ips)
        self._find = self._create()
        self._probe = None

    def _create(self):
        settings = self._ndi.FindCreate()
        settings.show_local_sources = True
        settings.extra_ips = self.asked
        find = self._ndi.find_create_v2(settings)
        if find is None:
            raise RuntimeFailure("could not create an NDI finder")
        return find

    def probe(self) -> None:
        """Ask the direct addresses again over a new connection (replaces the previous probe)."""
        if self._probe is not None:
            self._ndi.find_destroy(self._probe)
            self._probe = None
        self._probe = self._create()

    def sources(self) -> list:
        """Current NDIlib.Source objects (``.ndi_name``, ``.url_address``), each name once."""
        found = {}
        for find in (self._find, self._probe):
            if find is not None:
                for source in self._ndi.find_get_current_sources(find):
                    found.setdefault(source.ndi_name, source)
        return list(found.values())

    def names(self) -> list[str]:
        return [source.ndi_name for source in self.sources()]

    def find(self, wanted: str):
        """The source named ``wanted`` among those seen now (see ``matches_source_name``), or None."""
        for source in self.sources():
            if matches_source_name(wanted, source.ndi_name):
                return source
        return None

    def wait_for(self, wanted: str, timeout_s: float, stop: threading.Event | None = None):
        """The source named ``wanted``, or None after ``timeout_s`` (probing again every PROBE_S)."""
        deadline = time.monotonic() + timeout_s
        next_probe = time.monotonic()  # what the long-lived finder has is checked first, then probes
        while True:
            source = self.find(wanted)
            if source is not None:
                return source
            now = time.monotonic()
            left = deadline - now
            if left <= 0 or (stop is not None and stop.is_set()):
                return None
            if now >= next_probe:
                self.probe()
                next_probe = now + PROBE_S
            self.wait(min(left, 0.05))

    def wait(self, seconds: float) -> None:
        """Block up to ``seconds`` until the newest finder's list changes."""
        self._ndi.find_wait_for_sources(self._probe or self._find, int(seconds * 1000) + 1)

    def close(self) -> None:
        for find in (self._find, self._probe):
            if find is not None:
                self._ndi.find_destroy(find)
        self._find = self._probe = None


def list_ndi_sources(wait_s: float = 1.5, ips: str | None = None) -> list[str]:
    """Names of the NDI sources visible within ``wait_s`` seconds."""
    finder = NdiFinder(ips)
    names: set[str] = set()
    try:
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            finder.probe()  # each probe may reach another sending process (see the module docstring)
            finder.wait(PROBE_S)
            names.update(finder.names())
        return sorted(names)
    finally:
        finder.close()


def ndi_listing(wait_s: float = 1.5, ips: str | None = None) -> tuple[list[str], list[str]]:
    """``rdstream sources``: (NDI source URIs seen in ``wait_s`` seconds, notes: why none, or why
    NDI cannot be asked here). Never raises for a missing library."""
    try:
        entries = [f"ndi:{name}" for name in list_ndi_sources(wait_s, ips)]
        if entries:
            return entries, []
        return [], [f"no NDI source seen in {wait_s:g} s (asked mDNS and {extra_ips(ips).replace(',', ', ')}"
                    + ("" if ips else "; add IPs of other machines with --ndi-ips") + ")"]
    except RollingDepthError as err:
        return [], [str(err)]


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

