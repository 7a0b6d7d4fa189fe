"""NDI frame buffers built from normalised depth (pure numpy, no NDI import).

Layouts (NDI SDK):
* BGRA: uint8 [H, W, 4], B, G, R, A per pixel.
* UYVY: 8-bit 4:2:2, uint8 [H, W, 2]: per pixel (chroma, luma) with chroma alternating U, V
  along the row (one U, V pair per two pixels). Grey depth: luma = depth * 255 (rounded),
  U = V = 128.
* P216: 16-bit 4:2:2, two planes of uint16 stacked into [2H, W]: the Y plane [H, W], then the
  interleaved UV plane [H, W] (U, V, U, V ...). Depth goes in Y (0..65535), U = V = 32768.
* RGB-D layouts (io_adapters/layouts.py ``compose_ycbcr``) add a colour half in real colour.

4:2:2 needs an even width: an odd width is padded by repeating the last column.

Per frame the sender also sets the NDI timecode (the source timestamp in 100 ns units) and an
XML metadata string (``frame_metadata_xml``).
"""

from __future__ import annotations

import math
from xml.etree import ElementTree

import numpy as np

from io_adapters.encodings import apply_colormap_bgra, to_uint8, to_uint16
from io_adapters.frames import DepthFrame

CHROMA_ZERO_8 = 128
CHROMA_ZERO_16 = 32768


def _even_width(image: np.ndarray) -> np.ndarray:
    """Pad [H, W, ...] to an even W by repeating the last column."""
    if image.shape[1] % 2 == 0:
        return image
    pad = [(0, 0), (0, 1)] + [(0, 0)] * (image.ndim - 2)
    return np.pad(image, pad, mode="edge")


def depth_to_bgra(depth01: np.ndarray, cmap: str | None) -> np.ndarray:
    """float [H, W] in [0, 1] -> uint8 [H, W, 4] BGRA: colour-mapped, or grey when cmap is None."""
    if cmap is not None:
        return apply_colormap_bgra(depth01, cmap)
    # One uint32 word per pixel, bytes (B, G, R, A) = (v, v, v, 255) in little-endian memory:
    # several times faster than writing three strided channels.
    grey = to_uint8(depth01).astype("<u4")
    words = grey * np.uint32(0x00010101) | np.uint32(0xFF000000)
    return words.view(np.uint8).reshape(grey.shape + (4,))


def depth_to_uyvy(depth01: np.ndarray) -> np.ndarray:
    """float [H, W] in [0, 1] -> uint8 [H, W', 2] UYVY grey (W' = W rounded up to even)."""
    luma = _even_width(to_uint8(depth01))
    uyvy = np.empty(luma.shape + (2,), np.uint8)
    uyvy[..., 0] = CHROMA_ZERO_8  # neutral chroma needs no averaging: filled directly (per-frame path)
    uyvy[..., 1] = luma
    return uyvy


def depth_to_p216(depth01: np.ndarray) -> np.ndarray:
    """float [H, W] in [0, 1] -> uint16 [2H, W'] P216: Y plane on top, UV plane below."""
    luma = _even_width(to_uint16(depth01))
    planes = np.empty((2 * luma.shape[0], luma.shape[1]), np.uint16)
    planes[: luma.shape[0]] = luma
    planes[luma.shape[0] :] = CHROMA_ZERO_16
    return planes


def _chroma_422(cb: np.ndarray, cr: np.ndarray) -> np.ndarray:
    """Full-resolution Cb, Cr [H, W'] (W' even) -> [H, W'] interleaved U, V, U, V: one (U, V)
    per pixel pair, the mean of the pair."""
    wide = np.uint32
    out = np.empty_like(cb)
    out[:, 0::2] = (cb[:, 0::2].astype(wide) + cb[:, 1::2] + 1) // 2
    out[:, 1::2] = (cr[:, 0::2].astype(wide) + cr[:, 1::2] + 1) // 2
    return out


def ycbcr_to_uyvy(y: np.ndarray, cb: np.ndarray, cr: np.ndarray) -> np.ndarray:
    """uint8 Y, Cb, Cr [H, W] -> uint8 [H, W', 2] UYVY (W' = W rounded up to even)."""
    y, cb, cr = (_even_width(plane) for plane in (y, cb, cr))
    uyvy = np.empty(y.shape + (2,), np.uint8)
    uyvy[..., 0] = _chroma_422(cb, cr)
    uyvy[..., 1] = y
    return uyvy


def ycbcr_to_p216(y: np.ndarray, cb: np.ndarray, cr: np.ndarray) -> np.ndarray:
    """uint16 Y, Cb, Cr [H, W] -> uint16 [2H, W'] P216: Y plane, then the interleaved UV plane."""
    y, cb, cr = (_even_width(plane) for plane in (y, cb, cr))
    return np.concatenate([y, _chroma_422(cb, cr)])


def p216_luma(data: np.ndarray, width: int, height: int) -> np.ndarray:
    """Y plane of a received P216/PA16 frame -> uint16 [H, W].

    data: the frame as ndi-python hands it out, uint8 [H, W, 2] (the Y plane; the binding's
    numpy strides already skip any row padding of the SDK's line stride).
    """
    rows = np.ascontiguousarray(data).reshape(height, -1)
    if rows.shape[1] < 2 * width:
        raise ValueError(f"P216 buffer too small: {rows.shape[1]} bytes per row for width {width}")
    return np.ascontiguousarray(rows[:, : 2 * width]).view("<u2")


# NDI timecodes count 100 ns ticks.
NDI_TICKS_PER_SECOND = 10_000_000
FRAME_METADATA_TAG = "rdstream_frame"


def timecode_ticks(timestamp_s: float) -> int:
    """Seconds -> NDI timecode (int, 100 ns units)."""
    return int(round(timestamp_s * NDI_TICKS_PER_SECOND))


def frame_metadata_xml(frame: DepthFrame, latency_ms: float | None) -> str:
    """The per-frame NDI metadata: one XML element, e.g.
    ``<rdstream_frame index="12" timestamp="0.400000" latency_ms="812.3" near="0.9132" far="-0.8271" />``.

    index: the source frame index; timestamp: source seconds; latency_ms: capture to send;
    near/far: the display range in the aligned depth's units (attributes absent when unknown);
    keyframe (1 = the frame's own model depth, 0 = carried) and depth_age_ms (how much older the
    keyframe is than this frame) with ``--fill flow|hold`` only.
    """
    attributes = {"index": str(frame.index), "timestamp": f"{frame.timestamp:.6f}"}
    if latency_ms is not None:
        attributes["latency_ms"] = f"{latency_ms:.1f}"
    if frame.display_range is not None and all(math.isfinite(v) for v in frame.display_range):
        attributes["near"], attributes["far"] = (f"{v:.6g}" for v in frame.display_range)
    if frame.keyframe is not None:
        attributes["keyframe"] = "1" if frame.keyframe else "0"
    if frame.depth_age_ms is not None:
        attributes["depth_age_ms"] = f"{frame.depth_age_ms:.1f}"
    return ElementTree.tostring(ElementTree.Element(FRAME_METADATA_TAG, attributes), encoding="unicode")


def parse_frame_metadata(xml: str) -> dict:
    """Inverse of ``frame_metadata_xml`` (for receivers and tests): attribute name -> float/int."""
    element = ElementTree.fromstring(xml)
    if element.tag != FRAME_METADATA_TAG:
        raise ValueError(f"not rdstream frame metadata: {xml[:80]!r}")
    return {key: int(value) if key in ("index", "keyframe") else float(value) for key, value in element.attrib.items()}
