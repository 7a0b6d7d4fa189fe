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
* ``grey8`` (uint8 [H, W]; NDI uyvy) and ``grey16`` (uint16 [H, W]; NDI p216, 16-bit mkv): the
  grey formats carry one value per pixel, so the colour half is the frame's Rec. 709 luma,
  full range (0..255, or 0..65535 = luma * 257): a grey picture of the input.

Pure numpy, no I/O.
"""

from __future__ import annotations

import numpy as np

from io_adapters.uri import OptionReader, ParsedUri, parse_uri
from pipeline.errors import BadInputError, RuntimeFailure

LAYOUTS = ("depth", "rgbd", "rgbd-v")
LAYOUT_OPTION_HELP = "depth (default), rgbd (colour left, depth right) or rgbd-v (colour on top, depth below)"
PIXEL_FORMATS = ("rgb", "bgra", "grey8", "grey16")
# Sinks whose output is a picture; the others (npy:, null:) write depth values or nothing.
VIDEO_SINK_SCHEMES = ("file", "ndi", "syphon")
# Rec. 709 luma weights for R, G, B.
_LUMA_709 = np.array([0.2126, 0.7152, 0.0722], np.float32)


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

    Returns uint8 [H, W, 3] (rgb), uint8 [H, W, 4] (bgra, alpha 255), uint8 [H, W] (grey8) or
    uint16 [H, W] (grey16).
    """
    if pixel == "rgb":
        return rgb
    if pixel == "bgra":
        bgra = np.empty(rgb.shape[:2] + (4,), np.uint8)
        bgra[..., :3] = rgb[..., ::-1]
        bgra[..., 3] = 255
        return bgra
    luma = rgb.astype(np.float32) @ _LUMA_709  # [H, W] in [0, 255]
    if pixel == "grey8":
        return np.clip(np.rint(luma), 0, 255).astype(np.uint8)
    if pixel == "grey16":
        return np.clip(np.rint(luma * 257.0), 0, 65535).astype(np.uint16)
    raise ValueError(f"unknown pixel format {pixel!r}; one of {', '.join(PIXEL_FORMATS)}")


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
    if layout not in LAYOUTS:
        raise BadInputError(f"unknown layout {layout!r}; use one of {', '.join(LAYOUTS)}")
    if rgb is None:
        raise RuntimeFailure(f"layout={layout} needs the colour frame, but this depth frame came without one")
    colour = colour_as(colour_to_depth_size(rgb, depth_picture.shape[:2]), pixel)
    return np.concatenate([colour, depth_picture], axis=1 if layout == "rgbd" else 0)


def split(picture: np.ndarray, layout: str) -> tuple[np.ndarray | None, np.ndarray]:
    """Inverse of ``compose`` for receivers and tests: (colour half or None, depth half)."""
    if layout == "depth":
        return None, picture
    if layout == "rgbd":
        half = picture.shape[1] // 2
        return picture[:, :half], picture[:, half:]
    half = picture.shape[0] // 2
    return picture[:half], picture[half:]
