"""URI options of the texture-sharing schemes (``syphon:``, ``spout:``), read by one set of pure
functions that load no library, so every platform judges a URI the same before the model loads.

Sinks: ``NAME?format=color|packed16&cmap=NAME&layout=...``; sources: ``NAME?timeout=SECONDS``.
Each scheme passes its own name check (Syphon: not empty; Spout: also the SDK's length limit).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from io_adapters.layouts import LAYOUT_OPTION_HELP, read_layout
from io_adapters.uri import OptionReader, ParsedUri
from pipeline.errors import BadInputError

TEXTURE_FORMATS = ("color", "packed16")
TEXTURE_SINK_OPTIONS = {
    "format": "color (colour-mapped BGRA, default) or packed16 (16-bit depth: R = high byte, G = low byte)",
    "cmap": "matplotlib colour map for format=color, default Greys_r",
    "layout": LAYOUT_OPTION_HELP,
}
DEFAULT_TEXTURE_CMAP = "Greys_r"


@dataclass(frozen=True)
class TextureSinkOptions:
    """What a texture-sharing sink publishes: its name, format (one of TEXTURE_FORMATS), colour map
    for format=color, layout (one of io_adapters.layouts.LAYOUTS)."""

    name: str
    fmt: str = "color"
    cmap: str = DEFAULT_TEXTURE_CMAP
    layout: str = "depth"


@dataclass(frozen=True)
class TextureSourceOptions:
    """Which server or sender to receive and how long to wait for it to appear (seconds)."""

    name: str
    timeout_s: float = 10.0


def texture_sink_options(uri: ParsedUri, check_name: Callable[[str], None]) -> TextureSinkOptions:
    """A sink URI's options; ``check_name(target)`` raises for a name the scheme cannot carry.

    Raises:
        BadInputError: unknown option, bad value, cmap with packed16, a bad name.
    """
    options = OptionReader(uri, TEXTURE_SINK_OPTIONS)
    fmt = options.choice("format", TEXTURE_FORMATS, "color")
    cmap = options.colormap("cmap", DEFAULT_TEXTURE_CMAP)
    if fmt == "packed16" and "cmap" in uri.options:
        raise BadInputError(f"cmap only applies to {uri.scheme} format=color (got cmap={cmap!r} with format=packed16; "
                            f"packed16 carries raw 16-bit depth)")
    layout = read_layout(options)
    check_name(uri.target)
    return TextureSinkOptions(uri.target, fmt, cmap, layout)


def texture_source_options(uri: ParsedUri, what: str, check_name: Callable[[str], None]) -> TextureSourceOptions:
    """A source URI's options; ``what`` names the thing waited for in the help ("server", "sender").

    Raises:
        BadInputError: unknown option, bad value, a bad name.
    """
    options = OptionReader(uri, {"timeout": f"seconds to wait for the {what} to appear, default 10"})
    timeout_s = options.number("timeout", 10.0)
    check_name(uri.target)
    return TextureSourceOptions(uri.target, timeout_s)
