"""Colour maps and 8/16-bit encodings of normalised depth, shared by every sink.

All functions are pure and vectorised (one table lookup or one arithmetic pass per call,
no per-pixel Python). Depth here means the node's output: float in [0, 1], 1 = nearest.

16-bit packing for 8-bit-only transports (Syphon surfaces are always BGRA8): the 16-bit
value v = round(depth * 65535) is split into its high byte (v >> 8) in the RED channel and its
low byte (v & 255) in the GREEN channel; blue is 0 and alpha 255. A receiver samples the texture
as normalised floats and rebuilds ``v = r * 255 * 256 + g * 255`` (see docs/live_io.md for the
TouchDesigner GLSL TOP). The layout is BGRA in memory: [..., 0] = B, [..., 1] = G, [..., 2] = R,
[..., 3] = A.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from pipeline.errors import BadInputError

# Channel positions inside a BGRA pixel; the packing layout is defined once, here.
_B, _G, _R, _A = 0, 1, 2, 3
PACK16_HIGH_CHANNEL = _R
PACK16_LOW_CHANNEL = _G


def _known_colormaps() -> list[str]:
    import matplotlib

    return sorted(matplotlib.colormaps)


@lru_cache(maxsize=32)
def colormap_lut(name: str) -> np.ndarray:
    """256-entry RGB lookup table of a matplotlib colour map (built once per name, read-only).

    Args:
        name: a matplotlib colour-map name, e.g. "Spectral_r", "Greys_r", "turbo", "inferno".
    Returns:
        uint8 [256, 3] RGB; entry i is the colour of depth i / 255.
    Raises:
        BadInputError: the name is not a matplotlib colour map (the message lists some valid ones).
    """
    import matplotlib

    try:
        cmap = matplotlib.colormaps[name]
    except (KeyError, ValueError, TypeError):
        examples = ", ".join(["Spectral_r", "Greys_r", "turbo", "inferno", "viridis", "magma"])
        raise BadInputError(
            f"unknown colour map {name!r}; use a matplotlib colour map such as {examples} "
            f"({len(_known_colormaps())} available; append _r to reverse one)"
        ) from None
    rgba = cmap(np.linspace(0.0, 1.0, 256))
    lut = np.round(rgba[:, :3] * 255.0).astype(np.uint8)
    lut.setflags(write=False)  # shared by every caller through the cache
    return lut


def _scaled_rounded(depth01: np.ndarray, top: float) -> np.ndarray:
    """float [...] -> float32 [...] = depth * top clipped to [0, top], plus 0.5 for rounding.

    Truncating the result rounds half up. NaN becomes 0 (farthest) so it never wraps around.
    Works in place on one float32 buffer: at 1080p each extra pass costs milliseconds.
    """
    depth = np.asarray(depth01, dtype=np.float32)
    scaled = np.multiply(depth, np.float32(top), out=np.empty(depth.shape, np.float32))
    np.clip(scaled, 0.0, top, out=scaled)
    scaled += np.float32(0.5)
    np.nan_to_num(scaled, copy=False, nan=0.0)
    return scaled


def to_uint8(depth01: np.ndarray) -> np.ndarray:
    """float [...] in [0, 1] -> uint8 [...] in 0..255 (rounded; values outside are clipped)."""
    return _scaled_rounded(depth01, 255.0).astype(np.uint8)


def to_uint16(depth01: np.ndarray) -> np.ndarray:
    """float [...] in [0, 1] -> uint16 [...] in 0..65535 (rounded; values outside are clipped).

    float32 is exact enough: depth * 65535 is off by at most 0.004 before rounding.
    """
    return _scaled_rounded(depth01, 65535.0).astype(np.uint16)


@lru_cache(maxsize=32)
def _bgra_lut_words(name: str) -> np.ndarray:
    """uint32 [256]: each entry one BGRA pixel (alpha 255) in memory order (built once per name)."""
    rgb = colormap_lut(name)
    bgra = np.empty((256, 4), np.uint8)
    bgra[:, :3] = rgb[:, ::-1]
    bgra[:, 3] = 255
    words = bgra.view(np.uint32).reshape(256)
    words.setflags(write=False)
    return words


def apply_colormap_bgra(depth01: np.ndarray, name: str) -> np.ndarray:
    """Colour-map normalised depth straight to BGRA (what NDI and Syphon carry).

    Args:
        depth01: float [..., H, W] in [0, 1] (1 = nearest); values outside are clipped.
        name: a matplotlib colour-map name (see ``colormap_lut``).
    Returns:
        uint8 [..., H, W, 4] BGRA, alpha 255.
    """
    # Gathering one 4-byte word per pixel is several times faster than indexing 3 channels.
    words = _bgra_lut_words(name)[to_uint8(depth01)]
    return words.view(np.uint8).reshape(words.shape + (4,))


def apply_colormap(depth01: np.ndarray, name: str) -> np.ndarray:
    """Colour-map normalised depth.

    Args:
        depth01: float [..., H, W] in [0, 1] (1 = nearest); values outside are clipped.
        name: a matplotlib colour-map name (see ``colormap_lut``).
    Returns:
        uint8 [..., H, W, 3] RGB.
    """
    bgra = apply_colormap_bgra(depth01, name)
    return np.ascontiguousarray(bgra[..., 2::-1])


def pack16_bgra(depth01: np.ndarray) -> np.ndarray:
    """Pack normalised depth as 16 bits into an 8-bit BGRA image (layout in the module docstring).

    Args:
        depth01: float [H, W] in [0, 1]; values outside are clipped.
    Returns:
        uint8 [H, W, 4] BGRA: R = high byte, G = low byte, B = 0, A = 255.
    """
    value = to_uint16(depth01)
    bgra = np.zeros(value.shape + (4,), dtype=np.uint8)
    bgra[..., PACK16_HIGH_CHANNEL] = value >> 8
    bgra[..., PACK16_LOW_CHANNEL] = value & 0xFF
    bgra[..., _A] = 255
    return bgra


def unpack16_bgra(bgra: np.ndarray) -> np.ndarray:
    """Inverse of ``pack16_bgra``: uint8 [H, W, 4] BGRA -> uint16 [H, W] in 0..65535."""
    bgra = np.asarray(bgra)
    if bgra.dtype != np.uint8 or bgra.ndim < 3 or bgra.shape[-1] != 4:
        raise BadInputError(
            f"unpack16_bgra needs a uint8 [H, W, 4] BGRA image, got {bgra.dtype} {list(bgra.shape)}"
        )
    high = bgra[..., PACK16_HIGH_CHANNEL].astype(np.uint16)
    low = bgra[..., PACK16_LOW_CHANNEL].astype(np.uint16)
    return (high << 8) | low


# Burnt into every colour picture made with the tiny random test checkpoint (its output is noise
# that looks like depth): a screenshot of a demo or a test run cannot pass for real depth.
RANDOM_MODEL_MARK = "RANDOM TEST MODEL - NOT DEPTH"


@dataclass(frozen=True)
class MarkedOutput:
    """Whether one sink format carries the mark: ``scheme`` and ``fmt`` as in its URI (``fmt`` is
    the file extension for ``file:``), ``label`` as said to the user."""

    scheme: str
    fmt: str
    label: str
    marked: bool


# The one statement of which outputs carry the mark: every 8-bit picture drawn through a colour
# map (Greys_r included) does; raw values, which a receiver unpacks or measures, stay exact. The
# banner (RANDOM_MARK_NOTE) is built from it and tests check it against what each sink sends.
MARKED_OUTPUTS = (
    MarkedOutput("file", ".mp4", ".mp4 files (every colour map, Greys_r included)", True),
    MarkedOutput("ndi", "bgra", "NDI bgra", True),
    MarkedOutput("syphon", "color", "Syphon color", True),
    MarkedOutput("spout", "color", "Spout color", True),
    MarkedOutput("npy", "", ".npy and .npz files", False),
    MarkedOutput("file", ".mkv", "16-bit .mkv files", False),
    MarkedOutput("ndi", "uyvy", "NDI uyvy (8-bit grey)", False),
    MarkedOutput("ndi", "p216", "NDI p216 (16-bit grey)", False),
    MarkedOutput("syphon", "packed16", "Syphon packed16", False),
    MarkedOutput("spout", "packed16", "Spout packed16", False),
)


def random_mark_note(outputs: tuple[MarkedOutput, ...] = MARKED_OUTPUTS) -> str:
    """What a run of the random test model says about the mark, built from ``MARKED_OUTPUTS``."""
    marked = ", ".join(o.label for o in outputs if o.marked)
    raw = ", ".join(o.label for o in outputs if not o.marked)
    return (f"Pictures drawn through a colour map carry a '{RANDOM_MODEL_MARK}' mark: {marked}. "
            f"Raw values carry none and are not depth either: {raw}.")


RANDOM_MARK_NOTE = random_mark_note()
_MARK_MIN_FONT = 8  # below this the text is unreadable: it is split over two lines instead


@lru_cache(maxsize=8)
def _mark_mask(text: str, height: int, width: int) -> np.ndarray:
    """bool [rows, width]: True where the text's pixels are, on a band across the top rows
    (rows <= height). The font is as large as fits the width (and an eighth of the height)."""
    from PIL import Image, ImageDraw, ImageFont

    def font_of(size: int):
        try:
            return ImageFont.load_default(size=size)
        except (TypeError, OSError, ImportError):  # a Pillow without FreeType: its fixed bitmap font
            return ImageFont.load_default()

    lines = [text]
    size = max(_MARK_MIN_FONT, height // 8)
    while True:
        font = font_of(size)
        widest = max(font.getbbox(line)[2] for line in lines)
        if widest <= width - 4 or size <= _MARK_MIN_FONT:
            if widest > width - 4 and len(lines) == 1 and " - " in text:
                lines, size = text.split(" - ", 1), max(_MARK_MIN_FONT, height // 8)
                continue
            break
        size -= 1
    line_height = max(font.getbbox(line)[3] for line in lines) + 2
    rows = min(height, line_height * len(lines) + 2)
    canvas = Image.new("L", (width, rows), 0)
    draw = ImageDraw.Draw(canvas)
    for i, line in enumerate(lines):
        draw.text((2, 1 + i * line_height), line, fill=255, font=font)
    mask = np.asarray(canvas) > 127
    mask.setflags(write=False)
    return mask


def burn_mark(picture: np.ndarray, text: str = RANDOM_MODEL_MARK) -> np.ndarray:
    """Write ``text`` in white on a black band across the top of ``picture``, in place.

    picture: uint8 [H, W, 3] RGB or [H, W, 4] BGRA (alpha left as it is). Returns ``picture``.
    """
    height, width = picture.shape[:2]
    mask = _mark_mask(text, height, width)
    band = picture[: mask.shape[0], :, :3]
    band[...] = 0
    band[mask] = 255
    return picture
