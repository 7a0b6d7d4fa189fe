"""A URI picks the class: ``open_source`` / ``open_sink`` and the source listing.

Sources: ``file:PATH`` (or a bare path), ``camera:INDEX_OR_NAME``, ``test:?frames=N&size=WxH&rate=R``,
``ndi:SOURCE NAME``, ``syphon:SERVER NAME``, ``spout:SENDER NAME``.
Sinks: ``file:out.mp4`` (colour map), ``file:out.mkv`` (16-bit FFV1), ``npy:out.npy``,
``ndi:NAME?format=bgra|uyvy|p216&cmap=...``, ``syphon:NAME?format=color|packed16``,
``spout:NAME?format=color|packed16``, ``null:``.
Adapters with optional libraries (NDI, Syphon, Spout, devices) are imported only when their scheme is used.
"""

from __future__ import annotations

import math
import sys

from io_adapters.base import Sink, Source
from io_adapters.layouts import check_sink_layout
from io_adapters.uri import ParsedUri, parse_uri, unknown_scheme_error
from pipeline.errors import BadInputError, RollingDepthError

SOURCE_EXAMPLES = {
    "file": "file:clip.mp4 or clip.mp4 (options start, frames, loop)",
    "camera": "camera:0 or camera:NAME (options size, rate, format)",
    "test": "test:?frames=90&size=640x360&rate=30",
    "ndi": "ndi:Studio Cam (options ips, timeout)",
    "syphon": "syphon:Resolume (macOS)",
    "spout": "spout:TDSpoutOut (Windows)",
}
SINK_EXAMPLES = {
    "file": "file:depth.mp4?cmap=Spectral_r or file:depth.mkv (16-bit)",
    "npy": "npy:depth.npy",
    "ndi": "ndi:Depth?format=bgra|uyvy|p216",
    "syphon": "syphon:Depth?format=color|packed16 (macOS)",
    "spout": "spout:Depth?format=color|packed16 (Windows)",
    "null": "null:",
}

# Frame rates above this are typos: encoders and players top out well below it.
MAX_FPS = 1000.0


def open_source(uri: str, *, realtime: bool | None = None) -> Source:
    """Open the source a URI names.

    Args:
        uri: see the module docstring (docs/method.md, section 11).
        realtime: pace frames to their timestamps. None = the source's own habit: files come as
            fast as they decode, ``test:`` plays in real time, live inputs pace themselves.
    Raises:
        BadInputError: unknown scheme or option, bad option value, missing file or device.
    """
    parsed = parse_uri(uri)
    scheme = parsed.scheme
    if scheme == "file":
        from io_adapters.file_source import FileSource

        if not parsed.target:
            raise BadInputError("file: needs a path, e.g. file:clip.mp4")
        return FileSource(parsed, realtime=bool(realtime))
    if scheme == "test":
        from io_adapters.file_source import TestPatternSource

        return TestPatternSource(parsed, realtime=True if realtime is None else realtime)
    if scheme == "camera":
        from io_adapters.camera import CameraSource

        return CameraSource(parsed)
    if scheme == "ndi":
        from io_adapters.ndi import NdiSource

        return NdiSource(parsed)
    if scheme == "syphon":
        from io_adapters.syphon_io import SyphonSource

        return SyphonSource(parsed)
    if scheme == "spout":
        from io_adapters.spout_io import SpoutSource

        return SpoutSource(parsed)
    raise unknown_scheme_error(parsed, "source", SOURCE_EXAMPLES)


def _check_bare_path_options(parsed: ParsedUri) -> None:
    """A bare path is one file name, '?' included: ``clip.mp4?frames=8`` that is no file means
    options were meant, and options need ``file:``."""
    from pathlib import Path

    if parsed.scheme == "file" and not parsed.text.lower().startswith("file:") and "?" in parsed.target \
            and not Path(parsed.target).exists():
        path, _, query = parsed.target.partition("?")
        raise BadInputError(f"{parsed.text!r}: options need the file: scheme, e.g. file:{path}?{query} "
                            "(a path without a scheme is taken whole as a file name)")


def check_source(uri: str) -> None:
    """Check a source URI's scheme and options without opening anything (no device, no file,
    no NDI or Syphon library loaded), so ``rdstream run`` finds mistakes before the model loads.

    Every scheme's options are checked in full (``test:`` sizes at most MAX_FRAME_SIDE per
    side); a ``file:`` source is probed (milliseconds: a missing or damaged file is said now, not
    after a model load); ``ndi:`` and ``syphon:`` then also check that their library can be
    imported (for Syphon off macOS: the "macOS only" error). What only opening can tell (a
    camera or an NDI source that is not there) is left to ``open_source``.
    Raises:
        BadInputError: unknown scheme, unknown option, bad option value, syphon: off macOS,
            spout: off Windows.
        RuntimeFailure: ndi-python, syphon-python (on macOS) or SpoutGL (on Windows) is not installed.
    """
    parsed = parse_uri(uri)
    if parsed.scheme not in SOURCE_EXAMPLES:
        raise unknown_scheme_error(parsed, "source", SOURCE_EXAMPLES)
    _check_bare_path_options(parsed)
    if parsed.scheme == "file":
        from io_adapters.file_source import check_file_source_options

        if not parsed.target:
            raise BadInputError("file: needs a path, e.g. file:clip.mp4")
        check_file_source_options(parsed)
        from io_adapters.video_file import probe_video

        probe_video(parsed.target)
    elif parsed.scheme == "test":
        from io_adapters.file_source import TestPatternOptions

        TestPatternOptions.parse(parsed)
    elif parsed.scheme == "camera":
        from io_adapters.camera import camera_options

        camera_options(parsed)
    elif parsed.scheme == "ndi":
        from io_adapters.ndi import check_ndi_installed, ndi_source_options

        ndi_source_options(parsed)
        check_ndi_installed()
    elif parsed.scheme == "syphon":
        from io_adapters.syphon_io import check_syphon_installed, syphon_source_options

        syphon_source_options(parsed)
        check_syphon_installed()
    elif parsed.scheme == "spout":
        from io_adapters.spout_io import check_spout_installed, spout_source_options

        spout_source_options(parsed)
        check_spout_installed()


def check_sink(uri: str) -> None:
    """Check a sink URI's scheme and options without opening anything (no file written, no NDI
    or Syphon library loaded), so ``rdstream run`` finds mistakes before the model loads.

    Every sink's options are checked in full (extension, colour map, format, layout, name);
    ``ndi:`` and ``syphon:`` then also check that their library can be imported (for Syphon
    off macOS: the "macOS only" error, after any option error, so a URI is judged the same on
    every platform).
    Raises:
        BadInputError: unknown scheme, extension or option, bad option value, syphon: off macOS,
            spout: off Windows.
        RuntimeFailure: ndi-python, syphon-python (on macOS) or SpoutGL (on Windows) is not installed.
    """
    parsed = parse_uri(uri)
    if parsed.scheme not in SINK_EXAMPLES:
        raise unknown_scheme_error(parsed, "sink", SINK_EXAMPLES)
    check_sink_layout(parsed)
    if parsed.scheme in ("file", "npy", "null"):
        from io_adapters.file_sink import check_file_sink_uri

        check_file_sink_uri(parsed)
    elif parsed.scheme == "ndi":
        from io_adapters.ndi import check_ndi_installed, ndi_sink_options

        ndi_sink_options(parsed)
        check_ndi_installed()
    elif parsed.scheme == "syphon":
        from io_adapters.syphon_io import check_syphon_installed, syphon_sink_options

        syphon_sink_options(parsed)
        check_syphon_installed()
    elif parsed.scheme == "spout":
        from io_adapters.spout_io import check_spout_installed, spout_sink_options

        spout_sink_options(parsed)
        check_spout_installed()


def check_sinks_free(uris: list[str]) -> None:
    """What only the NDI library can tell before the sinks open: an ``ndi:`` name that another
    sender on this machine holds, or that two sinks share (call after ``check_sink``).

    Raises:
        BadInputError: a taken or repeated NDI sender name.
    """
    names = [parse_uri(uri).target for uri in uris if parse_uri(uri).scheme == "ndi"]
    if names:
        from io_adapters.ndi import check_sender_names_free

        check_sender_names_free(names)


def open_sink(uri: str, *, fps: float = 30.0) -> Sink:
    """Open the sink a URI names; ``fps`` is the rate written into files and declared to NDI.

    Raises:
        BadInputError: unknown scheme, extension or option, bad option value, missing folder.
    """
    if not (isinstance(fps, (int, float)) and math.isfinite(fps) and 0 < fps <= MAX_FPS):
        raise BadInputError(f"sink frame rate must be in (0, {MAX_FPS:g}], got {fps!r}")
    parsed = parse_uri(uri)
    scheme = parsed.scheme
    if scheme == "file":
        from io_adapters.file_sink import open_file_sink

        return open_file_sink(parsed, fps)
    if scheme == "npy":
        from io_adapters.file_sink import NpySink

        return NpySink(parsed, fps)
    if scheme == "null":
        from io_adapters.file_sink import NullSink

        return NullSink(parsed, fps)
    if scheme == "ndi":
        from io_adapters.ndi import NdiSink

        return NdiSink(parsed, fps)
    if scheme == "syphon":
        from io_adapters.syphon_io import SyphonSink

        return SyphonSink(parsed, fps)
    if scheme == "spout":
        from io_adapters.spout_io import SpoutSink

        return SpoutSink(parsed, fps)
    raise unknown_scheme_error(parsed, "sink", SINK_EXAMPLES)


def list_sources(ndi_wait_s: float = 1.5, ndi_ips: str | None = None) -> dict:
    """What can be opened as a source here, for ``rdstream sources``.

    Returns a dict with lists of URIs ``cameras``, ``ndi``, ``syphon`` and ``spout`` and a list of
    ``notes`` (why a kind is empty or unavailable). Never raises for a missing library.
    """
    from io_adapters.camera import camera_uris

    notes: list[str] = []
    cameras = [f"{uri}  ({description})" for uri, description in camera_uris()]
    if not cameras:
        notes.append("no camera found (or this platform cannot list them)")
    ndi_sources: list[str] = []
    try:
        from io_adapters.ndi import list_ndi_sources

        ndi_sources = [f"ndi:{name}" for name in list_ndi_sources(ndi_wait_s, ndi_ips)]
        if not ndi_sources:
            from io_adapters.ndi import extra_ips

            notes.append(f"no NDI source seen in {ndi_wait_s:g} s (asked mDNS and {extra_ips(ndi_ips).replace(',', ', ')}"
                         + ("" if ndi_ips else "; add IPs of other machines with --ndi-ips") + ")")
    except RollingDepthError as err:
        notes.append(str(err))
    syphon_servers: list[str] = []
    from io_adapters.syphon_io import list_syphon_servers

    syphon_servers = [f"syphon:{name}  ({app})" for name, app in list_syphon_servers()]
    if sys.platform != "darwin":
        notes.append("Syphon is macOS only")
    from io_adapters.spout_io import list_spout_senders

    spout_senders = [f"spout:{name}" for name in list_spout_senders()]
    if sys.platform != "win32":
        notes.append("Spout is Windows only")
    return {"cameras": cameras, "ndi": ndi_sources, "syphon": syphon_servers, "spout": spout_senders, "notes": notes}


__all__ = ["ParsedUri", "parse_uri", "check_source", "check_sink", "check_sinks_free", "open_source", "open_sink", "list_sources", "Source", "Sink"]
