"""Synchronous video files through PyAV: probe, decode to RGB, write colour H.264 and 16-bit FFV1.

Decoding honours the rotation of the container's display matrix (phone videos), uses the
decoder's own threads, and accepts 8- and 10-bit inputs (everything is converted to rgb24).

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
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from pipeline.errors import BadInputError, RuntimeFailure


@dataclass(frozen=True)
class VideoInfo:
    """What a video file holds.

    width, height: pixels of the frames as displayed, i.e. AFTER the rotation metadata.
    fps: nominal frame rate from the container (average rate, else the guessed rate).
    frame_count: number of frames the container declares; 0 when it does not say (e.g. MKV).
    """

    width: int
    height: int
    fps: float
    frame_count: int


def _open_input(path: str | os.PathLike) -> tuple[av.container.InputContainer, av.video.stream.VideoStream]:
    """Open ``path`` and its first video stream, with decoder threads; BadInputError on failure."""
    path = Path(path)
    if not path.exists():
        raise BadInputError(f"video file not found: {path}")
    if not path.is_file():
        raise BadInputError(f"not a video file (a directory or device): {path}")
    try:
        container = av.open(str(path))
    except av.FFmpegError as err:
        raise BadInputError(f"cannot read {path} as a video: {_ffmpeg_reason(err)}") from None
    if not container.streams.video:
        container.close()
        raise BadInputError(f"no video stream in {path}")
    stream = container.streams.video[0]
    # Frame threads give the largest decode speed-up; AUTO lets FFmpeg fall back to slices.
    stream.thread_type = "AUTO"
    stream.codec_context.thread_count = 0
    return container, stream


def _ffmpeg_reason(err: Exception) -> str:
    """FFmpeg's own reason without the errno and file noise."""
    return getattr(err, "strerror", None) or str(err)


def _stream_fps(stream: av.video.stream.VideoStream) -> float:
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    return float(rate) if rate else 0.0


def _rotate_for_display(rgb: np.ndarray, rotation_ccw: int) -> np.ndarray:
    """Apply the display matrix rotation (degrees counter-clockwise, a multiple of 90)."""
    quarter_turns = int(round(rotation_ccw / 90.0)) % 4
    if quarter_turns == 0:
        return rgb
    # np.rot90 turns counter-clockwise as displayed (row 0 at the top); copy for a contiguous array.
    return np.ascontiguousarray(np.rot90(rgb, k=quarter_turns))


def probe_video(path: str | os.PathLike) -> VideoInfo:
    """Size (after rotation), frame rate and declared frame count of a video file.

    Raises BadInputError for a missing file, a file FFmpeg cannot read, or one without video.
    """
    container, stream = _open_input(path)
    try:
        width, height = stream.codec_context.width, stream.codec_context.height
        rotation = 0
        # The rotation lives in per-frame side data; the first frame is cheap to decode.
        try:
            for frame in container.decode(stream):
                width, height, rotation = frame.width, frame.height, frame.rotation
                break
        except av.FFmpegError as err:
            raise BadInputError(f"cannot decode the first frame of {path}: {_ffmpeg_reason(err)}") from None
        if int(round(rotation / 90.0)) % 2:
            width, height = height, width
        if width <= 0 or height <= 0:
            raise BadInputError(f"video stream of {path} has no frame size")
        return VideoInfo(width=width, height=height, fps=_stream_fps(stream), frame_count=int(stream.frames or 0))
    finally:
        container.close()


def _declared_duration_s(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> float | None:
    """Duration the file header declares for the video (seconds), or None when unknown.

    The container-wide duration is only trusted when video is the only stream, because an
    audio track may legitimately outlast the video.
    """
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None and len(container.streams) == 1:
        return container.duration / av.time_base
    return None


def iter_video_frames(
    path: str | os.PathLike, start_frame: int = 0, frame_count: int = 0
) -> Iterator[np.ndarray]:
    """Decode a video file to RGB frames.

    Args:
        path: any file FFmpeg reads (8- or 10-bit; rotation metadata is applied).
        start_frame: index of the first frame to yield (frames before it are decoded and skipped,
            which is frame-exact, unlike seeking).
        frame_count: how many frames to yield; 0 = all until the end.
    Yields:
        uint8 [H, W, 3] RGB frames, H and W as displayed (after rotation).
    Raises:
        BadInputError: unreadable file, or damage found while decoding. The frames before the
            damage are yielded first; the message names the file and the frame number.
    """
    for _, rgb in iter_timed_video_frames(path, start_frame, frame_count):
        yield rgb


def iter_timed_video_frames(
    path: str | os.PathLike, start_frame: int = 0, frame_count: int = 0
) -> Iterator[tuple[float, np.ndarray]]:
    """Like ``iter_video_frames`` but yields ``(time_s, rgb)``.

    time_s: presentation time in seconds from the container (frame index / fps when the file
        has no timestamps), so variable-frame-rate files keep their timing.
    """
    if start_frame < 0 or frame_count < 0:
        raise BadInputError(f"start_frame and frame_count must be >= 0, got {start_frame} and {frame_count}")
    container, stream = _open_input(path)
    fps = _stream_fps(stream)
    frame_period = 1.0 / fps if fps > 0 else 0.0
    index = 0  # decoded frames so far, i.e. the number of the next frame
    last_end_s = 0.0
    try:
        try:
            for frame in container.decode(stream):
                time_s = frame.time if frame.time is not None else index * frame_period
                last_end_s = max(last_end_s, time_s + frame_period)
                if index >= start_frame:
                    yield time_s, _rotate_for_display(frame.to_ndarray(format="rgb24"), frame.rotation)
                index += 1
                if frame_count and index >= start_frame + frame_count:
                    return
        except av.FFmpegError as err:
            raise BadInputError(
                f"{path} is damaged at frame {index}: {_ffmpeg_reason(err)} "
                f"(frames 0..{index - 1} decoded fine)"
            ) from None
        # A truncated Matroska/WebM file ends without any error: compare with the header's length.
        declared = _declared_duration_s(container, stream)
        if declared is not None and fps > 0 and last_end_s + max(2.0 * frame_period, 0.1) < declared:
            raise BadInputError(
                f"{path} ends early at frame {index} ({last_end_s:.2f} s of the {declared:.2f} s "
                f"its header declares): the file looks truncated"
            )
    finally:
        container.close()


def _rate(fps: float) -> Fraction:
    """A float frame rate as the exact fraction encoders want (29.97 -> 2997/100, 30000/1001 kept)."""
    if not (isinstance(fps, (int, float)) and np.isfinite(fps) and 0 < fps <= 1000):
        raise BadInputError(f"frame rate must be a number in (0, 1000], got {fps!r}")
    return Fraction(fps).limit_denominator(1001)


# Frame times count in 1/90000 s (MPEG's clock): exact for 24, 25, 30, 50, 60 and 29.97 fps, and
# fine enough for the uneven gaps of a stream that dropped frames.
TIME_BASE = Fraction(1, 90000)


def holds_a_frame(path: str | os.PathLike) -> bool:
    """Whether a (possibly cut short) video file holds at least one video packet."""
    try:
        with av.open(str(path)) as container:
            return any(packet.size for packet in container.demux(video=0))
    except (av.FFmpegError, OSError, IndexError):
        return False


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
            raise RuntimeFailure(f"cannot create {self.path}: {_ffmpeg_reason(err)}") from None
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
                                 f"{_ffmpeg_reason(err)}{self._kept()}") from None
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
            raise RuntimeFailure(f"finishing {self.path} failed: {_ffmpeg_reason(err)}{self._kept()}") from None


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


def read_gray16_video(path: str | os.PathLike) -> np.ndarray:
    """Read a 16-bit greyscale video (e.g. from ``Gray16VideoWriter``) into uint16 [N, H, W]."""
    container, stream = _open_input(path)
    try:
        frames = [frame.to_ndarray(format="gray16le") for frame in container.decode(stream)]
    except av.FFmpegError as err:
        raise BadInputError(f"{path} is damaged: {_ffmpeg_reason(err)}") from None
    finally:
        container.close()
    if not frames:
        raise BadInputError(f"{path} holds no frames")
    return np.stack(frames)
