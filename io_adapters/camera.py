"""Cameras through PyAV's capture devices: avfoundation (macOS), v4l2 (Linux), dshow (Windows).

``camera:INDEX_OR_NAME?size=1280x720&rate=30&format=mjpeg``

* macOS: the device is ``"INDEX"`` or ``"NAME"`` for avfoundation with ``:none`` (no audio).
  avfoundation refuses rates a camera does not offer, and FFmpeg's default (29.97) is refused by
  most built-in cameras, so 30 is always asked for unless ``rate`` says otherwise.
* Linux: ``camera:0`` is ``/dev/video0``; a path (``camera:/dev/video2``) or a device name
  (matched against the v4l2 device list) also works. ``format`` becomes v4l2's ``input_format``
  (e.g. mjpeg, which many USB cameras need for 1080p at 30 fps).
* Windows: dshow addresses cameras by name (``video=NAME``); an index is looked up in the
  device list.

``camera_options`` checks a URI's options and ``camera_open_args`` computes what to pass to
``av.open``, both without touching a device, so mistakes are found before the model loads and
the per-OS choices are testable everywhere.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field

import av
import numpy as np

from io_adapters.base import BlockingSource
from io_adapters.uri import OptionReader, ParsedUri
from pipeline.errors import BadInputError

CAMERA_OPTIONS = {
    "size": "WIDTHxHEIGHT the camera should deliver, e.g. 1280x720 (default: the camera's)",
    "rate": "frames per second to ask for (default 30)",
    "format": "pixel/input format, e.g. mjpeg, yuyv422, uyvy422, nv12 (default: the camera's)",
}
CAMERA_DEVICE_FORMATS = {"darwin": "avfoundation", "linux": "v4l2", "win32": "dshow"}


@dataclass(frozen=True)
class CameraOpenArgs:
    """Arguments for ``av.open(file, format=format, options=options)``."""

    file: str
    format: str
    options: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class CameraOptions:
    """What ``camera:INDEX_OR_NAME?size=WxH&rate=R&format=F`` asks for.

    target: index, name or /dev path, stripped (non-empty). size: (width, height) or None for
    the camera's own. rate: frames per second or None (30 is asked for). pixel_format: e.g.
    mjpeg, or None for the camera's own.
    """

    target: str
    size: tuple[int, int] | None = None
    rate: float | None = None
    pixel_format: str | None = None


def camera_options(uri: ParsedUri) -> CameraOptions:
    """The options of a ``camera:`` URI, checked without touching any device.

    Raises:
        BadInputError: unknown option, bad size or rate, empty target.
    """
    options = OptionReader(uri, CAMERA_OPTIONS)
    return CameraOptions(
        target=camera_target(uri.target),
        size=options.size("size", None),
        rate=options.number("rate", None),
        pixel_format=options.text("format") or None,
    )


def camera_target(target: str) -> str:
    """The camera index, name or path without surrounding spaces; BadInputError when empty."""
    target = target.strip()
    if not target:
        raise BadInputError("camera: needs an index or a name, e.g. camera:0 (see `rdstream sources`)")
    return target


def _platform_key(platform: str) -> str:
    if platform.startswith("linux"):
        return "linux"
    if platform.startswith("win"):
        return "win32"
    return platform


def camera_open_args(
    target: str,
    size: tuple[int, int] | None,
    rate: float | None,
    pixel_format: str | None,
    platform: str = sys.platform,
    devices: list[tuple[str, str]] | None = None,
) -> CameraOpenArgs:
    """Device string, demuxer and its options for a camera on ``platform``.

    Args:
        target: "INDEX" or a device name (or a /dev path on Linux).
        size: (width, height) to request, or None for the camera's default.
        rate: frames per second to request (None: 30).
        pixel_format: mjpeg, yuyv422, ... or None.
        devices: (name, description) pairs as ``av.enumerate_input_devices`` lists them; used to
            turn a Linux name or a Windows index into the device string.
    Raises:
        BadInputError: empty target, an unsupported platform, or an index/name not in ``devices``.
    """
    key = _platform_key(platform)
    if key not in CAMERA_DEVICE_FORMATS:
        raise BadInputError(f"camera: is not supported on {platform}; use a file, test:, ndi: or syphon: source")
    target = camera_target(target)
    options: dict[str, str] = {}
    rate_text = f"{rate:g}" if rate else "30"
    size_text = f"{size[0]}x{size[1]}" if size else None
    if key == "darwin":
        options["framerate"] = rate_text
        if size_text:
            options["video_size"] = size_text
        if pixel_format:
            options["pixel_format"] = pixel_format
        return CameraOpenArgs(f"{target}:none", "avfoundation", options)
    if key == "linux":
        options["framerate"] = rate_text
        if size_text:
            options["video_size"] = size_text
        if pixel_format:
            options["input_format"] = pixel_format
        if target.isdigit():
            device = f"/dev/video{int(target)}"
        elif target.startswith("/dev/"):
            device = target
        else:
            device = _device_by_name(target, devices or [], "v4l2")
        return CameraOpenArgs(device, "v4l2", options)
    # Windows
    options["framerate"] = rate_text
    if size_text:
        options["video_size"] = size_text
    if pixel_format:
        # dshow names the compressed formats vcodec and the raw ones pixel_format.
        options["vcodec" if pixel_format in ("mjpeg", "h264") else "pixel_format"] = pixel_format
    if target.isdigit():
        video_devices = devices or []
        index = int(target)
        if index >= len(video_devices):
            found = ", ".join(f"{i}: {d}" for i, (_, d) in enumerate(video_devices)) or "none"
            raise BadInputError(f"no camera number {index}; cameras found: {found}")
        name = video_devices[index][1] or video_devices[index][0]
    else:
        name = target
    return CameraOpenArgs(f"video={name}", "dshow", options)


def _device_by_name(name: str, devices: list[tuple[str, str]], demuxer: str) -> str:
    for device, description in devices:
        if name.casefold() in (device.casefold(), description.casefold()):
            return device
    found = ", ".join(f"{d} ({desc})" for d, desc in devices) or "none"
    raise BadInputError(f"no camera named {name!r} ({demuxer}); cameras found: {found}")


def list_cameras(platform: str = sys.platform) -> list[tuple[str, str]]:
    """(device, description) of the video capture devices FFmpeg can enumerate here.

    Empty when there are none or the platform's demuxer cannot list them.
    """
    demuxer = CAMERA_DEVICE_FORMATS.get(_platform_key(platform))
    if demuxer is None:
        return []
    try:
        devices = av.enumerate_input_devices(demuxer)
    except (ValueError, av.FFmpegError, OSError):
        return []
    return [(d.name, d.description) for d in devices if not d.media_types or "video" in d.media_types]


def camera_uris(platform: str = sys.platform) -> list[tuple[str, str]]:
    """(URI, description) for each camera: ``camera:N`` (on Linux N of /dev/videoN)."""
    uris = []
    for index, (device, description) in enumerate(list_cameras(platform)):
        if _platform_key(platform) == "linux" and device.startswith("/dev/video") and device[10:].isdigit():
            index = int(device[10:])
        uris.append((f"camera:{index}", description or device))
    return uris


def camera_listing(wait_s: float = 0.0, ips: str | None = None) -> tuple[list[str], list[str]]:
    """``rdstream sources``: (camera URIs with their descriptions, notes); ``wait_s`` and ``ips``
    are for network sources (the registry asks every lister the same)."""
    entries = [f"{uri}  ({description})" for uri, description in camera_uris()]
    return entries, [] if entries else ["no camera found (or this platform cannot list them)"]


class CameraSource(BlockingSource):
    """Frames of a camera as RGB; timestamps from the device clock (from 0).

    Opening fails with one line when the camera is missing or busy; the message says which
    device string and options were tried.
    """

    def __init__(self, uri: ParsedUri, realtime: bool = True) -> None:
        options = camera_options(uri)
        target, rate = options.target, options.rate
        needs_list = not (target.isdigit() or target.startswith("/dev/")) or _platform_key(sys.platform) == "win32"
        args = camera_open_args(target, options.size, rate, options.pixel_format,
                                devices=list_cameras() if needs_list else None)
        try:
            self._container = av.open(args.file, format=args.format, options=args.options)
        except (av.FFmpegError, OSError, ValueError) as err:
            found = ", ".join(f"{d} ({desc})" for d, desc in list_cameras()) or "none found"
            raise BadInputError(
                f"cannot open camera {uri.target!r} ({args.format} {args.file}, {args.options}): "
                f"{getattr(err, 'strerror', None) or err}; cameras: {found}"
            ) from None
        if not self._container.streams.video:
            self._container.close()
            raise BadInputError(f"camera {uri.target!r} ({args.format} {args.file}) delivers no video stream")
        stream = self._container.streams.video[0]
        stream.thread_type = "AUTO"
        fps = float(stream.average_rate or stream.guessed_rate or (rate or 30.0))
        super().__init__(uri.text, fps, realtime=False)  # a camera paces itself
        self._frames = self._container.decode(stream)

    def _read(self):
        frame = next(self._frames, None)
        if frame is None:
            return None
        timestamp = frame.time if frame.time is not None else time.monotonic()
        return timestamp, np.ascontiguousarray(frame.to_ndarray(format="rgb24"))

    def _release(self) -> None:
        self._container.close()
