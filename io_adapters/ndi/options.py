"""The URI options of ``ndi:`` sources and sinks, read and checked without the NDI library (so a
mistake is found before the model loads)."""

from __future__ import annotations

import socket
from dataclasses import dataclass

from io_adapters.layouts import LAYOUT_OPTION_HELP, read_layout
from io_adapters.names import check_name
from io_adapters.uri import OptionReader, ParsedUri
from pipeline.errors import BadInputError

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
# The NDI library refuses a sender whose full name 'MACHINE (NAME)' exceeds this many UTF-8 bytes
# (measured with ndi-python 6.3: names of 248 bytes on a 2-character host name, 216 on a 34-character one).
NDI_FULL_NAME_MAX_BYTES = 253


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
