"""Writing video files through PyAV: colour H.264 and 16-bit FFV1 (reading: ``video_file``).

Writers finalise their file in ``close()`` (idempotent; also on leaving a ``with`` block, so an
interrupted run still leaves a valid file). H.264 needs even sizes: ``ColorVideoWriter`` PADS
an odd width or height by repeating the last column/row (no pixel of the input is lost).
Frames of a different size than the first are scaled to the first frame's size, because a
live source may change resolution while a file cannot.
"""

from __future__ import annotations

import errno
import io
import os
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from io_adapters.video_file import ffmpeg_reason, holds_a_frame
from pipeline.errors import BadInputError, RuntimeFailure


def _rate(fps: float) -> Fraction:
    """A float frame rate as the exact fraction encoders want (29.97 -> 2997/100, 30000/1001 kept)."""
    if not (isinstance(fps, (int, float)) and np.isfinite(fps) and 0 < fps <= 1000):
        raise BadInputError(f"frame rate must be a number in (0, 1000], got {fps!r}")
    return Fraction(fps).limit_denominator(1001)


# Frame times count in 1/90000 s (MPEG's clock): exact for 24, 25, 30, 50, 60 and 29.97 fps, and
# fine enough for the uneven gaps of a stream that dropped frames.
TIME_BASE = Fraction(1, 90000)


class _WholeWritesFile(io.FileIO):
    """An unbuffered file whose ``write`` writes everything or raises: a raw write may take only part
    of the data (a disk filling up), which FFmpeg, reading the count through PyAV, would miss; the
    cut back to the last complete piece then kept a damaged one."""

    def write(self, data) -> int:
        view = memoryview(data).cast("B")
        done = 0
        while done < len(view):
            written = super().write(view[done:])
            if not written:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            done += written
        return done


class _VideoWriter:
    """Shared open/encode/close of the two writers; subclasses pick the codec and frame format.

    ``live`` writers are for recordings that may end at any moment: the container is written in
    pieces that are each complete on disk (fragmented MP4, Matroska clusters), one per frame, and
    the encoder holds no frames back, so a killed process leaves a playable file holding every
    frame but the last one written (the muxer completes a piece when the next frame arrives).
    Pieces are cut per frame, not per second of media time: at 0.3-1 fps a second of media is
    30-60 s of work, all of it lost to a kill. When the disk refuses data
    the file is cut back to the last complete piece (or removed when no frame reached it) and
    the write raises RuntimeFailure at once.
    """

    codec: str
    pix_fmt: str
    input_format: str
    container_format: str

    def __init__(self, path: str | os.PathLike, fps: float, options: dict[str, str], live: bool = False) -> None:
        self.path = Path(path)
        self._rate = _rate(fps)
        self._options = options
        self.live = live
        self._container: av.container.OutputContainer | None = None
        self._file = None  # our own descriptor, for live files
        self._stream: av.video.stream.VideoStream | None = None
        self._size: tuple[int, int] | None = None  # (width, height) of the encoded frames
        self._closed = False
        self._failed = False
        self._good_bytes = 0  # file size after the last packet the muxer took without error
        self._first_time_s: float | None = None
        self._last_pts: int | None = None
        self.frames_written = 0
        if not self.path.parent.exists():
            raise BadInputError(f"output folder does not exist: {self.path.parent}")

    def __enter__(self):
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def _encoded_size(self, width: int, height: int) -> tuple[int, int]:
        return width, height

    def _open(self, width: int, height: int) -> None:
        try:
            if self.live:
                # We own the descriptor: FFmpeg leaves its own open when writing the header fails
                # (a full disk), and unbuffered writes reach the file as each packet is muxed.
                self._file = _WholeWritesFile(self.path, "wb")  # noqa: SIM115 - closed in _release
                options = {**self._live_container_options(), "flush_packets": "1"}
                self._container = av.open(self._file, mode="w", format=self.container_format, options=options)
            else:
                self._container = av.open(str(self.path), mode="w", options=self._container_options())
            stream = self._container.add_stream(self.codec, rate=self._rate, options=self._codec_options())
        except (av.FFmpegError, OSError) as err:
            self._fail()
            raise RuntimeFailure(f"cannot create {self.path}: {ffmpeg_reason(err)}") from None
        stream.width, stream.height = self._encoded_size(width, height)
        stream.pix_fmt = self.pix_fmt
        # The encoder must count in TIME_BASE too, or uneven frame times are rounded onto 1/fps.
        stream.codec_context.time_base = TIME_BASE
        stream.time_base = TIME_BASE
        self._stream = stream
        self._size = (width, height)

    def _container_options(self) -> dict[str, str]:
        return {}

    def _live_container_options(self) -> dict[str, str]:
        return {}

    def _codec_options(self) -> dict[str, str]:
        return self._options

    def _next_pts(self, time_s: float | None) -> int:
        """Ticks of TIME_BASE since the first frame's time. No time: the frame's place at the
        nominal rate. A time that does not move forward (a source that restarted its clock)
        counts as one frame period on, because a file's frame times must rise."""
        if time_s is None:
            time_s = float(self.frames_written / self._rate)
        if self._first_time_s is None:
            self._first_time_s = time_s
        pts = round((time_s - self._first_time_s) * TIME_BASE.denominator)
        if self._last_pts is not None and pts <= self._last_pts:
            pts = self._last_pts + round(TIME_BASE.denominator / self._rate)
        return pts

    def _encode(self, image: np.ndarray, time_s: float | None) -> None:
        height, width = image.shape[:2]
        if self._closed:
            raise RuntimeFailure(f"write to {self.path} after close()")
        if self._failed:
            raise RuntimeFailure(f"write to {self.path} after it failed")
        if self._container is None:
            self._open(width, height)
        frame = av.VideoFrame.from_ndarray(self._prepare(image), format=self.input_format)
        out_w, out_h = self._encoded_size(*self._size)
        # One reformat does the size change (live sources may switch resolution) and the pixel format.
        frame = frame.reformat(width=out_w, height=out_h, format=self.pix_fmt)
        frame.pts = self._next_pts(time_s)
        frame.time_base = TIME_BASE
        try:
            for packet in self._stream.encode(frame):
                self._mux(packet)
        except (av.FFmpegError, OSError) as err:
            self._fail()
            raise RuntimeFailure(f"writing {self.path} failed at frame {self.frames_written}: "
                                 f"{ffmpeg_reason(err)}{self._kept()}") from None
        self._last_pts = frame.pts
        self.frames_written += 1

    def _mux(self, packet: av.Packet) -> None:
        self._container.mux(packet)
        if self.live:
            self._good_bytes = os.fstat(self._file.fileno()).st_size

    def _release(self) -> None:
        """Close the container (writing its trailer) and our descriptor, whatever fails."""
        try:
            if self._container is not None:
                self._container.close()
        finally:
            self._container = None
            if self._file is not None:
                self._file.close()
                self._file = None

    def _fail(self) -> None:
        """After an error: release the container and keep only what is complete on disk."""
        self._failed = True
        try:
            self._release()
        except (av.FFmpegError, OSError):
            pass  # the disk refuses the trailer too; the cut below keeps the complete part
        if not self.live or not self.path.exists():
            return
        try:
            os.truncate(self.path, self._good_bytes)
        except OSError:
            pass
        if not holds_a_frame(self.path):  # a header without frames plays nowhere: leave nothing
            self.path.unlink(missing_ok=True)

    def _kept(self) -> str:
        if not self.live:
            return ""
        if self.path.exists():
            return " (the file keeps the frames before it that reached the disk)"
        return " (no frame reached the file; removed)"

    def _prepare(self, image: np.ndarray) -> np.ndarray:
        return image

    def close(self) -> None:
        """Flush the encoder and finalise the file; safe to call more than once.

        Raises RuntimeFailure when the disk refuses the last frames or the index; a live file
        then keeps every complete piece.
        """
        if self._closed:
            return
        self._closed = True
        if self._container is None or self._failed:
            return
        try:
            for packet in self._stream.encode():
                self._mux(packet)
            self._release()
        except (av.FFmpegError, OSError) as err:
            self._fail()
            raise RuntimeFailure(f"finishing {self.path} failed: {ffmpeg_reason(err)}{self._kept()}") from None


X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow")


class ColorVideoWriter(_VideoWriter):
    """H.264 (libx264, yuv420p) MP4 writer for RGB frames.

    Odd widths/heights are PADDED to even by repeating the last column/row (H.264 4:2:0 needs
    even sizes). A file written at once (``live=False``) gets its index at the front on close
    (faststart): players can start at once. A ``live`` file is fragmented MP4 (an empty index
    first, then a self-contained fragment per frame), so it plays up to the last complete
    fragment whenever the process stops, even killed.

    Args:
        path: output .mp4 path (its folder must exist).
        fps: nominal frame rate, float (e.g. 29.97); frames without a time are 1/fps apart.
        crf: x264 constant rate factor, 0 (lossless) .. 51; 18 is visually lossless.
        preset: x264 speed/size trade-off; "medium" for offline files, "veryfast" when the
            writer must keep up with a live stream.
        live: fragmented, crash-safe recording (see above).
    """

    codec = "libx264"
    pix_fmt = "yuv420p"
    input_format = "rgb24"
    container_format = "mp4"

    def __init__(self, path: str | os.PathLike, fps: float, crf: int = 18, preset: str = "medium",
                 live: bool = False) -> None:
        if not (isinstance(crf, int) and 0 <= crf <= 51):
            raise BadInputError(f"crf must be an integer in 0..51, got {crf!r}")
        if preset not in X264_PRESETS:
            raise BadInputError(f"x264 preset {preset!r} is not one of {', '.join(X264_PRESETS)}")
        super().__init__(path, fps, {"crf": str(crf), "preset": preset}, live=live)

    def _container_options(self) -> dict[str, str]:
        return {"movflags": "+faststart"}

    def _live_container_options(self) -> dict[str, str]:
        # A fragment per frame: some hundred bytes each, about 1% of a 30 fps recording.
        return {"movflags": "+frag_every_frame+empty_moov+default_base_moof"}

    def _codec_options(self) -> dict[str, str]:
        # zerolatency: each frame leaves the encoder at once. No B-frames (also: the first frame
        # shows at time 0 in a fragmented file, which has no edit list to hide a reorder delay), no
        # lookahead, slice threads instead of frame threads, and rate control that does not wait
        # for the next frame's time (the frames keep their own times). veryfast's lookahead and
        # frame threads held a dozen frames, a dozen seconds of work at 1 fps, lost to a kill. The
        # price is the macroblock tree's saving: about 2x the bytes on smooth depth at crf 18
        # (offline files keep it).
        return {**self._options, "tune": "zerolatency"} if self.live else self._options

    def _encoded_size(self, width: int, height: int) -> tuple[int, int]:
        return width + width % 2, height + height % 2

    def _prepare(self, image: np.ndarray) -> np.ndarray:
        image = np.asarray(image)
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise BadInputError(f"ColorVideoWriter needs uint8 [H, W, 3] RGB, got {image.dtype} {list(image.shape)}")
        height, width = image.shape[:2]
        if (width, height) != self._size:
            return np.ascontiguousarray(image)  # reformat scales it to the first frame's size
        pad_h, pad_w = height % 2, width % 2
        if pad_h or pad_w:
            image = np.pad(image, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge")
        return np.ascontiguousarray(image)

    def write(self, rgb: np.ndarray, time_s: float | None = None) -> None:
        """Append one frame: uint8 [H, W, 3] RGB, shown at ``time_s`` seconds (its timestamp;
        the file starts at the first frame's). None: one frame period after the previous frame."""
        self._encode(np.asarray(rgb), time_s)


class Gray16VideoWriter(_VideoWriter):
    """Lossless 16-bit greyscale writer: FFV1, gray16le, Matroska (.mkv).

    Any size is allowed (FFV1 has no even-size rule). Read back with ``read_gray16_video``.
    A ``live`` file closes a Matroska cluster per frame, so it plays up to the last complete
    cluster whenever the process stops, even killed.
    """

    codec = "ffv1"
    pix_fmt = "gray16le"
    input_format = "gray16le"
    container_format = "matroska"

    def __init__(self, path: str | os.PathLike, fps: float, live: bool = False) -> None:
        # level 3 with slice CRCs: a damaged file is detected instead of decoding garbage.
        super().__init__(path, fps, {"level": "3", "slicecrc": "1"}, live=live)

    def _live_container_options(self) -> dict[str, str]:
        # Any size limit closes a cluster per frame (every FFV1 frame is a keyframe).
        return {"cluster_size_limit": "1"}

    def _prepare(self, image: np.ndarray) -> np.ndarray:
        image = np.asarray(image)
        if image.dtype != np.uint16 or image.ndim != 2:
            raise BadInputError(f"Gray16VideoWriter needs uint16 [H, W] depth, got {image.dtype} {list(image.shape)}")
        return np.ascontiguousarray(image)

    def write(self, depth: np.ndarray, time_s: float | None = None) -> None:
        """Append one frame: uint16 [H, W] (0..65535), shown at ``time_s`` (see ColorVideoWriter.write)."""
        self._encode(np.asarray(depth), time_s)
