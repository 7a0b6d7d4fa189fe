"""Which code handles which URI scheme: one ``Scheme`` entry per scheme in ``SCHEMES``, and the
functions the rest of the program calls (``open_source``, ``check_source``, ``check_sink``,
``open_sink``, ``list_sources``) read only that table.

Sources: ``file:PATH`` (or a bare path), ``camera:INDEX_OR_NAME``, ``test:?frames=N&size=WxH&rate=R``,
``ndi:SOURCE NAME``, ``syphon:SERVER NAME``, ``spout:SENDER NAME``.
Sinks: ``file:out.mp4`` (colour map), ``file:out.mkv`` (16-bit FFV1), ``npy:out.npy``,
``ndi:NAME?format=bgra|uyvy|p216&cmap=...``, ``syphon:NAME?format=color|packed16``,
``spout:NAME?format=color|packed16``, ``null:``.
An entry names its code as ``"module:attribute"`` in ``io_adapters``, imported only when the scheme
is used, so adapters with optional libraries (NDI, Syphon, Spout, devices) cost nothing until asked for.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from io_adapters.base import Sink, Source
from io_adapters.layouts import check_sink_layout
from io_adapters.uri import ParsedUri, parse_uri, unknown_scheme_error
from pipeline.errors import BadInputError


@dataclass(frozen=True)
class Scheme:
    """One URI scheme: its code (``"module:attribute"`` names in ``io_adapters``) and its facts.

    source / sink: the class (or factory) that opens it: ``(parsed)`` or ``(parsed, realtime=)`` for
        a source, ``(parsed, fps)`` for a sink; None = not that kind.
    source_check / sink_check: ``(parsed)``: checks the options in full, opens nothing, loads no
        library (raises BadInputError), so ``rdstream run`` finds mistakes before the model loads.
    installed: ``()``: raises when the scheme's library cannot be imported here.
    lister: ``(wait_s, ips) -> (entries, notes)`` for ``rdstream sources``, shown under ``listed_as``
        (key, title).
    paced: for sources that take ``realtime=``: their pace when the user said nothing (None = the
        source paces itself).
    live: a source that delivers frames whether or not the node keeps up (``--realtime`` by default).
    named_output: a sink name other programs see (two streams may not share one).
    stream_name: the name ``rdstream run --source A --source B`` gives a stream of this source, from
        its target (None = ``stream{index}``).
    needs_target: the error for an empty target, or None where an empty target is checked later.
    """

    name: str
    source: str | None = None
    sink: str | None = None
    source_check: str | None = None
    sink_check: str | None = None
    installed: str | None = None
    lister: str | None = None
    listed_as: tuple[str, str] | None = None
    source_example: str | None = None
    sink_example: str | None = None
    paced: bool | None = None
    live: bool = False
    named_output: bool = False
    stream_name: Callable[[str], str] | None = None
    needs_target: str | None = None


def _texture_sharing(name: str, title: str, source_example: str, platform: str) -> Scheme:
    """Syphon and Spout: the same parts under each one's name, in its module ``<name>_io``."""
    module, cls = f"{name}_io", name.capitalize()
    return Scheme(name, source=f"{module}:{cls}Source", sink=f"{module}:{cls}Sink",
                  source_check=f"{module}:{name}_source_options", sink_check=f"{module}:{name}_sink_options",
                  installed=f"{module}:check_{name}_installed", lister=f"{module}:{name}_listing",
                  listed_as=(name, title), source_example=source_example,
                  sink_example=f"{name}:Depth?format=color|packed16 ({platform})", live=True, named_output=True,
                  stream_name=lambda target: target)


SCHEMES = {s.name: s for s in (
    Scheme("file", source="file_source:FileSource", sink="file_sink:open_file_sink",
           source_check="file_source:check_file_source", sink_check="file_sink:check_file_sink_uri",
           source_example="file:clip.mp4 or clip.mp4 (options start, frames, loop)",
           sink_example="file:depth.mp4?cmap=Spectral_r or file:depth.mkv (16-bit)", paced=False,
           stream_name=lambda target: Path(target).stem, needs_target="file: needs a path, e.g. file:clip.mp4"),
    Scheme("camera", source="camera:CameraSource", source_check="camera:camera_options",
           lister="camera:camera_listing", listed_as=("cameras", "Cameras"),
           source_example="camera:0 or camera:NAME (options size, rate, format)", live=True,
           stream_name=lambda target: f"camera{target}"),
    Scheme("test", source="file_source:TestPatternSource", source_check="file_source:TestPatternOptions.parse",
           source_example="test:?frames=90&size=640x360&rate=30", paced=True),
    Scheme("npy", sink="file_sink:NpySink", sink_check="file_sink:check_file_sink_uri", sink_example="npy:depth.npy"),
    Scheme("ndi", source="ndi.receiver:NdiSource", sink="ndi.sender:NdiSink",
           source_check="ndi.options:ndi_source_options", sink_check="ndi.options:ndi_sink_options",
           installed="ndi.library:check_ndi_installed", lister="ndi.finder:ndi_listing", listed_as=("ndi", "NDI sources"),
           source_example="ndi:Studio Cam (options ips, timeout)",
           sink_example="ndi:Depth?format=bgra|uyvy|p216", live=True, named_output=True,
           stream_name=lambda target: target),
    _texture_sharing("syphon", "Syphon servers", "syphon:Resolume (macOS)", "macOS"),
    _texture_sharing("spout", "Spout senders", "spout:TDSpoutOut (Windows)", "Windows"),
    Scheme("null", sink="file_sink:NullSink", sink_check="file_sink:check_file_sink_uri", sink_example="null:"),
)}

SOURCE_EXAMPLES = {s.name: s.source_example for s in SCHEMES.values() if s.source}
SINK_EXAMPLES = {s.name: s.sink_example for s in SCHEMES.values() if s.sink}
# Sources that deliver frames whether or not the node keeps up: they default to --realtime.
LIVE_SCHEMES = tuple(s.name for s in SCHEMES.values() if s.live)
# Outputs that are names other programs see: two streams may not share one.
NAMED_OUTPUT_SCHEMES = tuple(s.name for s in SCHEMES.values() if s.named_output)
# (key, title) of each kind ``rdstream sources`` lists, in order.
LISTED = tuple(s.listed_as for s in SCHEMES.values() if s.lister)

# Frame rates above this are typos: encoders and players top out well below it.
MAX_FPS = 1000.0


def _load(reference: str):
    """``"module:attribute.path"`` in io_adapters -> the object (the module imported now)."""
    module, _, path = reference.partition(":")
    found = importlib.import_module(f"io_adapters.{module}")
    for name in path.split("."):
        found = getattr(found, name)
    return found


def _scheme(parsed: ParsedUri, kind: str) -> Scheme:
    """The entry of a URI's scheme that handles ``kind`` ("source" or "sink"); the unknown-scheme error otherwise."""
    scheme = SCHEMES.get(parsed.scheme)
    if scheme is None or getattr(scheme, kind) is None:
        raise unknown_scheme_error(parsed, kind, SOURCE_EXAMPLES if kind == "source" else SINK_EXAMPLES)
    return scheme


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
    scheme = _scheme(parsed, "source")
    if scheme.needs_target and not parsed.target:
        raise BadInputError(scheme.needs_target)
    opener = _load(scheme.source)
    if scheme.paced is None:
        return opener(parsed)
    return opener(parsed, realtime=scheme.paced if realtime is None else bool(realtime))


def _check_bare_path_options(parsed: ParsedUri) -> None:
    """A bare path is one file name, '?' included: ``clip.mp4?frames=8`` that is no file means
    options were meant, and options need ``file:``."""
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
    after a model load); ``ndi:``, ``syphon:`` and ``spout:`` then also check that their library
    can be imported (for Syphon off macOS: the "macOS only" error). What only opening can tell (a
    camera or an NDI source that is not there) is left to ``open_source``.
    Raises:
        BadInputError: unknown scheme, unknown option, bad option value, syphon: off macOS,
            spout: off Windows.
        RuntimeFailure: ndi-python, syphon-python (on macOS) or SpoutGL (on Windows) is not installed.
    """
    parsed = parse_uri(uri)
    scheme = _scheme(parsed, "source")
    _check_bare_path_options(parsed)
    if scheme.needs_target and not parsed.target:
        raise BadInputError(scheme.needs_target)
    _load(scheme.source_check)(parsed)
    if scheme.installed:
        _load(scheme.installed)()


def check_sink(uri: str) -> None:
    """Check a sink URI's scheme and options without opening anything (no file written, no NDI
    or Syphon library loaded), so ``rdstream run`` finds mistakes before the model loads.

    Every sink's options are checked in full (extension, colour map, format, layout, name);
    ``ndi:``, ``syphon:`` and ``spout:`` then also check that their library can be imported (for
    Syphon off macOS: the "macOS only" error, after any option error, so a URI is judged the
    same on every platform).
    Raises:
        BadInputError: unknown scheme, extension or option, bad option value, syphon: off macOS,
            spout: off Windows.
        RuntimeFailure: ndi-python, syphon-python (on macOS) or SpoutGL (on Windows) is not installed.
    """
    parsed = parse_uri(uri)
    scheme = _scheme(parsed, "sink")
    check_sink_layout(parsed)
    _load(scheme.sink_check)(parsed)
    if scheme.installed:
        _load(scheme.installed)()


def check_sinks_free(uris: list[str]) -> None:
    """What only the NDI library can tell before the sinks open: an ``ndi:`` name that another
    sender on this machine holds, or that two sinks share (call after ``check_sink``).

    Raises:
        BadInputError: a taken or repeated NDI sender name.
    """
    names = [parse_uri(uri).target for uri in uris if parse_uri(uri).scheme == "ndi"]
    if names:
        from io_adapters.ndi.sender import check_sender_names_free

        check_sender_names_free(names)


def open_sink(uri: str, *, fps: float = 30.0) -> Sink:
    """Open the sink a URI names; ``fps`` is the rate written into files and declared to NDI.

    Raises:
        BadInputError: unknown scheme, extension or option, bad option value, missing folder.
    """
    if not (isinstance(fps, (int, float)) and math.isfinite(fps) and 0 < fps <= MAX_FPS):
        raise BadInputError(f"sink frame rate must be in (0, {MAX_FPS:g}], got {fps!r}")
    parsed = parse_uri(uri)
    return _load(_scheme(parsed, "sink").sink)(parsed, fps)


def stream_name(source: str, index: int) -> str:
    """The name of a stream of ``source`` in ``rdstream run --source A --source B``: the file's stem,
    the NDI/Syphon/Spout name, ``camera`` and the camera's number or name; ``stream{index}`` for test
    patterns and anything else."""
    parsed = parse_uri(source)
    target = parsed.target.strip()
    scheme = SCHEMES.get(parsed.scheme)
    if scheme is not None and scheme.stream_name is not None and target:
        return scheme.stream_name(target)
    return f"stream{index}"


def list_sources(ndi_wait_s: float = 1.5, ndi_ips: str | None = None) -> dict:
    """What can be opened as a source here, for ``rdstream sources``.

    Returns a dict with a list of URIs per listed kind (``LISTED``: ``cameras``, ``ndi``, ``syphon``,
    ``spout``) and a list of ``notes`` (why a kind is empty or unavailable). Never raises for a
    missing library.
    """
    listing: dict = {}
    notes: list[str] = []
    for scheme in SCHEMES.values():
        if scheme.lister:
            entries, said = _load(scheme.lister)(ndi_wait_s, ndi_ips)
            listing[scheme.listed_as[0]] = entries
            notes.extend(said)
    return {**listing, "notes": notes}


__all__ = ["ParsedUri", "SCHEMES", "Scheme", "parse_uri", "check_source", "check_sink", "check_sinks_free", "open_source",
           "open_sink", "list_sources", "stream_name", "Source", "Sink"]
