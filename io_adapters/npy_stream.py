"""A .npy file written frame by frame when the number of frames is not known in advance.

The header is written first with room for the largest count, frames are appended as raw
float32, and ``close()`` rewrites the header with the real count. The header keeps its length
(padding spaces, which the .npy format allows), so the data offset never moves.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from pipeline.errors import BadInputError, RuntimeFailure

_MAGIC = b"\x93NUMPY\x01\x00"  # format version 1.0: 2-byte header length
_HEADER_BYTES = 128  # magic + length + dict + padding; a multiple of 64 as the format asks
_MAX_COUNT_DIGITS = 12


def _header(count: int, height: int, width: int) -> bytes:
    text = "{'descr': '<f4', 'fortran_order': False, 'shape': (%d, %d, %d), }" % (count, height, width)
    body_len = _HEADER_BYTES - len(_MAGIC) - 2
    if len(text) + 1 > body_len:
        raise RuntimeFailure(f"frame size {width}x{height} is too large for the .npy header")
    text = text.ljust(body_len - 1) + "\n"
    return _MAGIC + body_len.to_bytes(2, "little") + text.encode("latin1")


class NpyStreamWriter:
    """Append float32 [H, W] frames to ``path``; after ``close()`` it loads as [N, H, W].

    Frames whose size differs from the first are resampled (nearest neighbour) to the first
    frame's size, because a .npy holds one shape.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        if not self.path.parent.exists():
            raise BadInputError(f"output folder does not exist: {self.path.parent}")
        self._file = None
        self._size: tuple[int, int] | None = None  # (height, width)
        self.count = 0
        self._closed = False

    def __enter__(self):
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def write(self, depth: np.ndarray) -> None:
        """Append one frame: float [H, W]; stored as little-endian float32."""
        if self._closed:
            raise RuntimeFailure(f"write to {self.path} after close()")
        depth = np.asarray(depth, dtype="<f4")
        if depth.ndim != 2:
            raise BadInputError(f"{self.path}: depth frames must be [H, W], got {list(depth.shape)}")
        if self._file is None:
            self._size = depth.shape
            self._file = open(self.path, "wb")  # noqa: SIM115 - kept open across writes, closed in close()
            self._file.write(_header(10**_MAX_COUNT_DIGITS - 1, *self._size))
        if depth.shape != self._size:
            rows = np.arange(self._size[0]) * depth.shape[0] // self._size[0]
            cols = np.arange(self._size[1]) * depth.shape[1] // self._size[1]
            depth = depth[rows[:, None], cols[None, :]]
        self._file.write(np.ascontiguousarray(depth).tobytes())
        self.count += 1

    def close(self) -> None:
        """Write the final frame count into the header; safe to call more than once."""
        if self._closed:
            return
        self._closed = True
        if self._file is None:  # no frame came: still leave a loadable, empty array
            self.path.write_bytes(_header(0, 0, 0))
            return
        try:
            self._file.flush()
            self._file.seek(0)
            self._file.write(_header(self.count, *self._size))
        finally:
            self._file.close()
