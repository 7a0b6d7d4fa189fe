"""RGB-D layouts: one video frame that carries the colour input beside the depth computed from it.

A sink option ``layout`` picks the picture every video sink (``file:``, ``ndi:``, ``syphon:``) sends:

* ``depth`` (default): the encoded depth alone, [H, W].
* ``rgbd``: colour on the left, depth on the right, [H, 2W].
* ``rgbd-v``: colour on top, depth below, [2H, W].

The colour is the processed input frame the depth came from (``DepthFrame.rgb``, at the
processing size), so both halves are frame-locked: one transport, one frame, no drift. One Crop
TOP in TouchDesigner splits them (docs/live_io.md).

The colour half always travels in the same pixel format as the depth half:

* ``rgb`` (uint8 [H, W, 3], H.264 files): the colour as it is.
* ``bgra`` (uint8 [H, W, 4]; NDI bgra, Syphon color AND Syphon packed16): the colour as plain
  BGRA. In packed16 only the depth half is packed (R = high byte, G = low byte); the colour half
  is an ordinary picture, so the Crop TOP that takes it needs no GLSL.
* NDI ``uyvy`` and ``p216`` (YUV 4:2:2, ``compose_ycbcr``): the colour half is real colour,
  Rec. 709 video range (Y 16..235, Cb/Cr 16..240, x 256 for 16 bits): what NDI receivers convert
  to RGB with, so it shows as the input's colours. The depth half keeps its own encoding (depth
  in Y over the full range, neutral chroma).
* ``grey16`` (uint16 [H, W]; 16-bit mkv files) carries one value per pixel, so the colour half
  is the frame's Rec. 709 luma, full range (0..65535 = luma * 257): a grey picture of the input.

Pure numpy, no I/O.
"""

from __future__ import annotations

import numpy as np

from io_adapters.uri import OptionReader, ParsedUri, parse_uri
from pipeline.errors import BadInputError, RuntimeFailure

LAYOUTS = ("depth", "rgbd", "rgbd-v")
LAYOUT_OPTION_HELP = "depth (default), rgbd (colour left, depth right) or rgbd-v (colour on top, depth below)"
PIXEL_FORMATS = ("rgb", "bgra", "grey16")
# Sinks whose output is a picture; the others (npy:, null:) write depth values or nothing.
VIDEO_SINK_SCHEMES = ("file", "ndi", "syphon", "spout")
# Rec. 709 luma weights for R, G, B, and the chroma scales: Pb = (B - Y) / 1.8556, Pr = (R - Y) / 1.5748.
_LUMA_709 = np.array([0.2126, 0.7152, 0.0722], np.float32)
_PB_709 = (np.array([0.0, 0.0, 1.0], np.float32) - _LUMA_709) / 1.8556
_PR_709 = (np.array([1.0, 0.0, 0.0], np.float32) - _LUMA_709) / 1.5748


def read_layout(options: OptionReader) -> str:
    """The ``layout`` option of a sink URI (the sink's OptionReader must allow ``layout``)."""
    return options.choice("layout", LAYOUTS, "depth")


def needs_colour(layout: str) -> bool:
    return layout != "depth"


def check_sink_layout(uri: str | ParsedUri) -> str:
    """Validate a sink URI's ``layout`` without opening anything (run before the model loads).

    Returns the layout; raises BadInputError for an unknown layout or one the sink cannot carry.
    """
    parsed = parse_uri(uri) if isinstance(uri, str) else uri
    value = parsed.options.get("layout")
    if value is None:
        return "depth"
    layout = value.lower()
    if layout not in LAYOUTS:
        raise BadInputError(f"option layout={value!r} in {parsed.text!r}: expected one of {', '.join(LAYOUTS)}")
    if parsed.scheme not in VIDEO_SINK_SCHEMES:
        raise BadInputError(
            f"{parsed.scheme}: sinks cannot carry layout={layout} ({parsed.text!r}): they write depth values only; "
            f"use a video sink (file:NAME.mp4, file:NAME.mkv, ndi:NAME, syphon:NAME)"
        )
    return layout


def colour_to_depth_size(rgb: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """uint8 [h, w, 3] -> uint8 [H, W, 3] for ``shape`` = (H, W), nearest neighbour (a copy-free
    pass-through when the sizes already match, as they do in the node)."""
    height, width = shape
    if rgb.shape[:2] == (height, width):
        return rgb
    rows = (np.arange(height) * rgb.shape[0]) // height
    cols = (np.arange(width) * rgb.shape[1]) // width
    return rgb[rows[:, None], cols[None, :]]


def colour_as(rgb: np.ndarray, pixel: str) -> np.ndarray:
    """uint8 [H, W, 3] RGB -> the same picture in ``pixel`` format (see the module docstring).

    Returns uint8 [H, W, 3] (rgb), uint8 [H, W, 4] (bgra, alpha 255) or uint16 [H, W] (grey16).
    """
    if pixel == "rgb":
        return rgb
    if pixel == "bgra":
        bgra = np.empty(rgb.shape[:2] + (4,), np.uint8)
        bgra[..., :3] = rgb[..., ::-1]
        bgra[..., 3] = 255
        return bgra
    if pixel == "grey16":
        luma = rgb.astype(np.float32) @ _LUMA_709  # [H, W] in [0, 255]
        return np.clip(np.rint(luma * 257.0), 0, 65535).astype(np.uint16)
    raise ValueError(f"unknown pixel format {pixel!r}; one of {', '.join(PIXEL_FORMATS)}")


def place(colour_picture: np.ndarray, depth_picture: np.ndarray, layout: str) -> np.ndarray:
    """Put two pictures of the same size and dtype side by side (rgbd) or one above the other
    (rgbd-v), colour first; ``depth`` returns the depth picture alone."""
    if layout == "depth":
        return depth_picture
    if layout not in LAYOUTS:
        raise BadInputError(f"unknown layout {layout!r}; use one of {', '.join(LAYOUTS)}")
    return np.concatenate([colour_picture, depth_picture], axis=1 if layout == "rgbd" else 0)


def colour_ycbcr(rgb: np.ndarray, bits: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """uint8 [H, W, 3] RGB -> (Y, Cb, Cr), each [H, W], Rec. 709 video range at ``bits`` (8 or 16):
    Y in 16..235 and Cb, Cr in 16..240 (times 256 for 16 bits), uint8 or uint16."""
    unit = rgb.astype(np.float32) / 255.0
    scale = 256.0 if bits == 16 else 1.0
    dtype = np.uint16 if bits == 16 else np.uint8
    y = (16.0 + 219.0 * (unit @ _LUMA_709)) * scale
    cb = (128.0 + 224.0 * (unit @ _PB_709)) * scale
    cr = (128.0 + 224.0 * (unit @ _PR_709)) * scale
    return tuple(np.rint(plane).astype(dtype) for plane in (y, cb, cr))


def compose_ycbcr(depth_luma: np.ndarray, rgb: np.ndarray | None, layout: str
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The three full-resolution planes of a YUV frame: depth in Y with neutral chroma, beside or
    above the colour frame in Rec. 709 video range (``colour_ycbcr``).

    depth_luma: uint8 or uint16 [H, W] (the depth's 8- or 16-bit encoding). Returns (Y, Cb, Cr),
    each [H, 2W] (rgbd), [2H, W] (rgbd-v) or [H, W] (depth), of depth_luma's dtype.
    """
    bits = 16 if depth_luma.dtype == np.uint16 else 8
    neutral = np.full_like(depth_luma, 1 << (bits - 1))
    if layout == "depth":
        return depth_luma, neutral, neutral
    if rgb is None:
        raise RuntimeFailure(f"layout={layout} needs the colour frame, but this depth frame came without one")
    y, cb, cr = colour_ycbcr(colour_to_depth_size(rgb, depth_luma.shape), bits)
    return place(y, depth_luma, layout), place(cb, neutral, layout), place(cr, neutral, layout)


def compose(depth_picture: np.ndarray, rgb: np.ndarray | None, layout: str, pixel: str) -> np.ndarray:
    """Place the colour frame beside (``rgbd``) or above (``rgbd-v``) the encoded depth.

    Args:
        depth_picture: the depth already encoded in ``pixel`` format, [H, W] or [H, W, C].
        rgb: the input frame the depth came from, uint8 [h, w, 3] (scaled to [H, W] if needed);
            may be None for ``layout=depth``.
        layout: one of LAYOUTS.
        pixel: one of PIXEL_FORMATS, the format of ``depth_picture``.
    Returns:
        ``depth_picture`` itself for ``depth``; else [H, 2W, ...] (rgbd) or [2H, W, ...] (rgbd-v)
        of the same dtype.
    """
    if layout == "depth":
        return depth_picture
    if rgb is None:
        raise RuntimeFailure(f"layout={layout} needs the colour frame, but this depth frame came without one")
    return place(colour_as(colour_to_depth_size(rgb, depth_picture.shape[:2]), pixel), depth_picture, layout)


def split(picture: np.ndarray, layout: str) -> tuple[np.ndarray | None, np.ndarray]:
    """Inverse of ``compose`` for receivers and tests: (colour half or None, depth half)."""
    if layout == "depth":
        return None, picture
    if layout == "rgbd":
        half = picture.shape[1] // 2
        return picture[:, :half], picture[:, half:]
    half = picture.shape[0] // 2
    return picture[:half], picture[half:]
