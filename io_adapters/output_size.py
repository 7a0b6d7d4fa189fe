"""Depth at the camera's size: ``--output-size`` and a sink's ``?size=`` option.

``source`` = the source frame's size, ``WxH`` = that size; each side 1..8192 (as source sizes).
The node reads ``size=`` off every sink URI before the sink is opened (``split_size_option``), so any
sink scheme takes it. The depth is resized bilinearly (``pipeline.upsample.upsample_depth``) before
the sink encodes it; a sink that shows colour beside the depth (``layout=rgbd``) gets the source
frame at that size (the full-size colour when the node kept it, ``--fill``; otherwise the
processing-size colour resized).
"""

from __future__ import annotations

import re
from dataclasses import replace

import cv2
import numpy as np

from io_adapters.frames import DepthFrame
from io_adapters.uri import MAX_FRAME_SIDE as MAX_SIDE, parse_uri
from pipeline.errors import BadInputError

SOURCE_SIZE = "source"
SIZE_HELP = f"source (the camera's size) or WIDTHxHEIGHT, each side 1..{MAX_SIDE}"


def parse_output_size(text: str, where: str) -> str | tuple[int, int]:
    """``source`` or ``WxH`` -> ``"source"`` or (width, height); BadInputError naming ``where`` otherwise."""
    value = text.strip().lower()
    if value == SOURCE_SIZE:
        return SOURCE_SIZE
    match = re.fullmatch(r"(\d+)\s*x\s*(\d+)", value)
    if not match:
        raise BadInputError(f"{where} {text!r}: expected {SIZE_HELP}, e.g. source or 1280x720")
    width, height = int(match.group(1)), int(match.group(2))
    if not (1 <= width <= MAX_SIDE and 1 <= height <= MAX_SIDE):
        raise BadInputError(f"{where} {text!r}: each side must be 1..{MAX_SIDE}")
    return width, height


def split_size_option(uri: str) -> tuple[str, str | tuple[int, int] | None]:
    """A sink URI -> (the URI without ``size=``, its parsed size or None). Other options keep their order."""
    parsed = parse_uri(uri)
    if "size" not in parsed.options:
        return uri, None
    size = parse_output_size(parsed.options["size"], f"size= in {uri!r}:")
    base, _, query = uri.partition("?")
    rest = [part for part in query.split("&") if part and part.partition("=")[0].strip() != "size"]
    return (f"{base}?{'&'.join(rest)}" if rest else base), size


def target_size(size: str | tuple[int, int], source_size: tuple[int, int] | None) -> tuple[int, int] | None:
    """(width, height) to resize to; ``source`` takes ``source_size`` (width, height), None if unknown."""
    return source_size if size == SOURCE_SIZE else size


def sized_frame(frame: DepthFrame, size: tuple[int, int], source_rgb: np.ndarray | None = None) -> DepthFrame:
    """``frame`` with depth float32 [H, W] at ``size`` (W, H), bilinear; its colour (if any) at that
    size too, taken from ``source_rgb`` (uint8 [h, w, 3], the full-size input) when given."""
    from pipeline.upsample import upsample_depth  # torch: not for the start-up checks that import this module

    width, height = size
    if frame.depth.shape == (height, width):
        return frame
    depth = upsample_depth(frame.depth, (width, height))  # a new array: clipped in place (float rounding at 1)
    np.clip(depth, 0.0, 1.0, out=depth)
    rgb = frame.rgb
    if rgb is not None:
        rgb = source_rgb if source_rgb is not None else rgb
        if rgb.shape[:2] != (height, width):
            rgb = cv2.resize(rgb, (width, height), interpolation=cv2.INTER_LINEAR)
    return replace(frame, depth=depth, rgb=rgb)
