"""A .npy file written frame by frame that numpy can load at every moment.

The file is created with the first frame (a run stopped before its first output frame leaves no
file, as the video sinks do; a file that was there before is left as it was). After each frame's
data is on disk the header is rewritten with the true count, so a run that is killed (even with kill -9) or
fails (a full disk) leaves a file that loads with every frame written so far; numpy ignores any
bytes past the count the header claims. The header keeps its length (padding spaces, which the
.npy format allows), so the data offset never moves.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from pipeline.errors import BadInputError, RuntimeFailure

_MAGIC = b"\x93NUMPY\x01\x00"  # format version 1.0: 2-byte header length
_HEADER_BYTES = 128  # magic + length + dict + padding; a multiple of 64 as the format asks


def timestamps_path(path: str | os.PathLike) -> Path:
    """Where ``npy:NAME.npy`` keeps its frames' timestamps: ``NAME.timestamps.npy`` beside it."""
    path = Path(path)
    return path.with_name(f"{path.stem}.timestamps.npy")


def _header(descr: str, shape: tuple[int, ...]) -> bytes:
    shape_text = "(%s,)" % shape[0] if len(shape) == 1 else "(%s)" % ", ".join(map(str, shape))
    text = "{'descr': '%s', 'fortran_order': False, 'shape': %s, }" % (descr, shape_text)
    body_len = _HEADER_BYTES - len(_MAGIC) - 2
    if len(text) + 1 > body_len:
        raise RuntimeFailure(f"frame shape {shape[1:]} is too large for the .npy header")
    text = text.ljust(body_len - 1) + "\n"
    return _MAGIC + body_len.to_bytes(2, "little") + text.encode("latin1")


class NpyStreamWriter:
    """Append frames of one shape to ``path``; the file always loads as [N, *frame_shape].

    Args:
        path: the .npy file; created (or emptied) at the first frame, its folder must exist.
        dtype: little-endian numpy dtype of the stored frames, e.g. ``"<f4"`` (depth) or
            ``"<f8"`` (timestamps in seconds).
        frame_ndim: dimensions of one frame: 2 for depth [H, W], 0 for a scalar per frame.

    2-D frames whose size differs from the first are resampled (nearest neighbour) to the first
    frame's size, because a .npy holds one shape.
    """

    def __init__(self, path: str | os.PathLike, dtype: str = "<f4", frame_ndim: int = 2) -> None:
        self.path = Path(path)
        self.dtype = np.dtype(dtype)
        self.frame_ndim = frame_ndim
        if not self.path.parent.is_dir():
            raise BadInputError(f"output folder does not exist: {self.path.parent}")
        if self.path.is_dir():
            raise BadInputError(f"npy output {self.path} is a folder; give a file name such as {self.path / 'depth.npy'}")
        self._frame_shape: tuple[int, ...] | None = None
        self.count = 0
        self._closed = False
        self._file = None  # opened by the first write

    def _create(self) -> None:
        try:
            # Unbuffered: each frame reaches the file in one write, before the header counts it.
            self._file = open(self.path, "w+b", buffering=0)  # noqa: SIM115 - closed in close()
            self._file.write(_header(self.dtype.str, (0,) * (1 + self.frame_ndim)))
        except OSError as err:
            if self._file is not None:
                self._file.close()
                self._file = None
                self.path.unlink(missing_ok=True)
            raise RuntimeFailure(f"cannot create {self.path}: {err.strerror or err}") from None

    def __enter__(self):
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def write(self, frame: np.ndarray | float) -> None:
        """Append one frame (``frame_ndim`` dimensions); stored with ``dtype``.

        Raises RuntimeFailure when the disk refuses the data; the file then still holds (and
        its header still claims) exactly the frames written before.
        """
        if self._closed:
            raise RuntimeFailure(f"write to {self.path} after close()")
        frame = np.asarray(frame, dtype=self.dtype)
        if frame.ndim != self.frame_ndim:
            raise BadInputError(f"{self.path}: frames must have {self.frame_ndim} dimensions, got {list(frame.shape)}")
        if self._file is None:
            self._create()
        if self._frame_shape is None:
            self._frame_shape = frame.shape
        if frame.shape != self._frame_shape:
            rows = np.arange(self._frame_shape[0]) * frame.shape[0] // self._frame_shape[0]
            cols = np.arange(self._frame_shape[1]) * frame.shape[1] // self._frame_shape[1]
            frame = frame[rows[:, None], cols[None, :]]
        data = np.ascontiguousarray(frame).tobytes()
        good_end = _HEADER_BYTES + self.count * len(data)
        try:
            self._file.seek(good_end)
            written = 0
            while written < len(data):  # a raw file may take only part of a large write
                written += self._file.write(memoryview(data)[written:])
            self._file.seek(0)
            self._file.write(_header(self.dtype.str, (self.count + 1, *self._frame_shape)))
        except OSError as err:
            self._drop_partial_frame(good_end)
            raise RuntimeFailure(
                f"writing {self.path} failed at frame {self.count}: {err.strerror or err} "
                f"(the file keeps the {self.count} frames written before)"
            ) from None
        self.count += 1

    def _drop_partial_frame(self, good_end: int) -> None:
        """After a failed write: cut the file back to whole frames (best effort, the disk is failing)."""
        try:
            self._file.truncate(good_end)
        except OSError:
            pass  # the header still claims only whole frames, so numpy loads the file anyway

    def close(self) -> None:
        """Close the file (its header already holds the true count); safe to call more than once."""
        if self._closed:
            return
        self._closed = True
        if self._file is not None:
            self._file.close()
