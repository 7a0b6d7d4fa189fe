"""Synchronous video files through PyAV: probe and decode to RGB (writing: ``video_writers``).

Decoding honours the rotation of the container's display matrix (phone videos), uses the
decoder's own threads, and accepts 8- and 10-bit inputs (everything is converted to rgb24).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from pipeline.errors import BadInputError


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
        raise BadInputError(f"cannot read {path} as a video: {ffmpeg_reason(err)}") from None
    if not container.streams.video:
        container.close()
        raise BadInputError(f"no video stream in {path}")
    stream = container.streams.video[0]
    # Frame threads give the largest decode speed-up; AUTO lets FFmpeg fall back to slices.
    stream.thread_type = "AUTO"
    stream.codec_context.thread_count = 0
    return container, stream


def ffmpeg_reason(err: Exception) -> str:
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
            raise BadInputError(f"cannot decode the first frame of {path}: {ffmpeg_reason(err)}") from None
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
                f"{path} is damaged at frame {index}: {ffmpeg_reason(err)} "
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


def holds_a_frame(path: str | os.PathLike) -> bool:
    """Whether a (possibly cut short) video file holds at least one video packet."""
    try:
        with av.open(str(path)) as container:
            return any(packet.size for packet in container.demux(video=0))
    except (av.FFmpegError, OSError, IndexError):
        return False


def read_gray16_video(path: str | os.PathLike) -> np.ndarray:
    """Read a 16-bit greyscale video (e.g. from ``Gray16VideoWriter``) into uint16 [N, H, W]."""
    container, stream = _open_input(path)
    try:
        frames = [frame.to_ndarray(format="gray16le") for frame in container.decode(stream)]
    except av.FFmpegError as err:
        raise BadInputError(f"{path} is damaged: {ffmpeg_reason(err)}") from None
    finally:
        container.close()
    if not frames:
        raise BadInputError(f"{path} holds no frames")
    return np.stack(frames)
