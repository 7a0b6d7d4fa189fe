"""URI parsing and the scheme/option errors (io_adapters/uri.py, registry.py)."""

import sys

import pytest

from io_adapters.registry import check_sink, check_source, open_sink, open_source
from io_adapters.uri import OptionReader, parse_uri
from pipeline.errors import BadInputError, RollingDepthError, RuntimeFailure


@pytest.mark.parametrize(
    "text, scheme, target, options",
    [
        ("clip.mp4", "file", "clip.mp4", {}),
        ("./a:b.mp4", "file", "./a:b.mp4", {}),
        ("C:\\clips\\a.mp4", "file", "C:\\clips\\a.mp4", {}),
        ("/tmp/my clip.mov", "file", "/tmp/my clip.mov", {}),
        ("file:clip 1.mp4", "file", "clip 1.mp4", {}),
        ("camera:0", "camera", "0", {}),
        ("test:?frames=90&size=640x360&rate=30", "test", "", {"frames": "90", "size": "640x360", "rate": "30"}),
        ("ndi:Studio Cam", "ndi", "Studio Cam", {}),
        ("NDI:VM (Depth)?format=p216", "ndi", "VM (Depth)", {"format": "p216"}),
        ("syphon:Depth?format=packed16", "syphon", "Depth", {"format": "packed16"}),
        ("ndi:X?ips=10.0.0.5%2C10.0.0.6", "ndi", "X", {"ips": "10.0.0.5,10.0.0.6"}),
        ("null:", "null", "", {}),
    ],
)
def test_parse_uri(text, scheme, target, options):
    parsed = parse_uri(text)
    assert (parsed.scheme, parsed.target, parsed.options) == (scheme, target, options)


@pytest.mark.parametrize("text, match", [("", "empty"), ("ndi:x?format", "name=value"), ("test:?frames=1&frames=2", "twice")])
def test_parse_uri_errors(text, match):
    with pytest.raises(BadInputError, match=match):
        parse_uri(text)


def test_unknown_scheme_lists_the_known_ones():
    with pytest.raises(BadInputError, match=r"unknown source scheme 'rtsp'.*camera:.*ndi:.*syphon:"):
        open_source("rtsp://host/stream")
    with pytest.raises(BadInputError, match=r"unknown sink scheme 'foo'.*npy:.*null:"):
        open_sink("foo:bar")


def test_unknown_option_lists_the_allowed_ones():
    with pytest.raises(BadInputError, match=r"unknown option 'fps'.*frames.*size.*rate"):
        open_source("test:?fps=30")
    with pytest.raises(BadInputError, match=r"unknown option 'cmap'.*allowed: none"):
        open_sink("null:?cmap=turbo")


def test_option_values_are_checked():
    uri = parse_uri("test:?size=640by360&rate=-3&frames=x&loop=maybe&format=abc")
    reader = OptionReader(uri, {"size": "", "rate": "", "frames": "", "loop": "", "format": ""})
    with pytest.raises(BadInputError, match="WIDTHxHEIGHT"):
        reader.size("size", None)
    with pytest.raises(BadInputError, match="number > 0"):
        reader.number("rate", 30.0)
    with pytest.raises(BadInputError, match="whole number"):
        reader.integer("frames", 0)
    with pytest.raises(BadInputError, match="1/0"):
        reader.flag("loop", False)
    with pytest.raises(BadInputError, match="one of a, b"):
        reader.choice("format", ("a", "b"), "a")
    assert OptionReader(parse_uri("test:?rate=30000/1001"), {"rate": ""}).number("rate", 1.0) == pytest.approx(29.97, abs=1e-3)


def test_sink_option_errors():
    with pytest.raises(BadInputError, match="unknown colour map"):
        open_sink("file:/tmp/x.mp4?cmap=nope")
    with pytest.raises(BadInputError, match=r"\.mp4.*\.mkv"):
        open_sink("file:/tmp/x.avi")
    with pytest.raises(BadInputError, match="does not exist"):
        open_sink("file:/no/such/folder/x.mkv")
    with pytest.raises(BadInputError, match="frame rate"):
        open_sink("null:", fps=0)


@pytest.mark.parametrize("kind, uri, expected", [
    ("sink", "ndi:X?format=bogus", ["format='bogus'", "bgra, p216, uyvy"]),
    ("sink", "ndi:X?cmap=nosuchmap", ["cmap='nosuchmap'", "unknown colour map"]),
    ("sink", "ndi:X?format=p216&cmap=turbo", ["cmap='turbo'", "format=p216", "only applies to format=bgra"]),
    ("sink", "ndi:X?clock=maybe", ["clock='maybe'"]),
    ("sink", "ndi:?format=p216", ["ndi: sink name is empty"]),
    ("sink", "ndi: ", ["ndi: sink name is empty"]),
    ("sink", "syphon:X?format=bogus", ["format='bogus'", "color, packed16"]),
    ("sink", "syphon:X?cmap=nosuchmap", ["cmap='nosuchmap'", "unknown colour map"]),
    ("sink", "syphon:X?format=packed16&cmap=turbo", ["cmap='turbo'", "format=packed16"]),
    ("sink", "syphon:?format=packed16", ["syphon: server name is empty"]),
    ("sink", "spout:X?format=rgba16", ["format='rgba16'", "color, packed16"]),
    ("sink", "spout:X?format=packed16&cmap=turbo", ["cmap='turbo'", "format=packed16"]),
    ("sink", "spout: ?layout=rgbd", ["spout: sender name is empty"]),
    ("sink", "spout:" + "n" * 256, ["at most 255 bytes"]),
    ("sink", "file:/tmp/x.mp4?cmap=nosuchmap", ["cmap='nosuchmap'", "unknown colour map"]),
    ("source", "camera:0?bogus=1", ["unknown option 'bogus'", "size", "rate", "format"]),
    ("source", "camera:0?size=abc", ["size='abc'", "WIDTHxHEIGHT"]),
    ("source", "camera:0?rate=fast", ["rate='fast'"]),
    ("source", "camera: ", ["camera: needs an index or a name"]),
    ("source", "ndi:X?timeout=soon", ["timeout='soon'"]),
    ("source", "ndi:X?lost=0", ["lost='0'"]),
    ("source", "ndi:X?bogus=1", ["unknown option 'bogus'", "ips"]),
    ("source", "ndi:", ["ndi: source name is empty"]),
    ("source", "syphon:X?timeout=abc", ["timeout='abc'"]),
    ("source", "syphon:X?bogus=1", ["unknown option 'bogus'", "timeout"]),
    ("source", "syphon:", ["syphon: server name is empty"]),
    ("source", "spout:X?timeout=0", ["timeout='0'"]),
    ("source", "spout:", ["spout: sender name is empty"]),
])
def test_live_uri_options_are_checked_before_opening_with_the_rule_opening_uses(kind, uri, expected):
    """check_source/check_sink (run before the model loads) reject what opening would reject, with
    the same one line: both call the adapter's one options function, which loads no library."""
    check, open_it = (check_sink, open_sink) if kind == "sink" else (check_source, open_source)
    with pytest.raises(BadInputError) as checked:
        check(uri)
    message = str(checked.value)
    assert "\n" not in message and all(part in message for part in expected), message
    with pytest.raises(BadInputError) as opened:
        open_it(uri)
    assert str(opened.value) == message


@pytest.mark.parametrize("uri", ["ndi:Depth?format=p216&layout=rgbd", "ndi:Depth?cmap=turbo&clock=0",
                                 "syphon:Depth?format=packed16", "syphon:Depth?cmap=turbo&layout=rgbd-v"])
def test_good_live_sink_options_pass_the_check_up_to_the_library(uri, monkeypatch):
    monkeypatch.setitem(sys.modules, "NDIlib", None)  # not installed: find_spec says so, nothing imported
    monkeypatch.setitem(sys.modules, "syphon", None)
    with pytest.raises(RollingDepthError, match="ndi-python package" if uri.startswith("ndi:") else "syphon: URIs need"):
        check_sink(uri)


def test_good_live_source_options_pass_the_check(monkeypatch):
    check_source("camera:0?size=1280x720&rate=30000/1001&format=mjpeg")
    check_source("camera:/dev/video2")
    monkeypatch.setitem(sys.modules, "NDIlib", None)
    with pytest.raises(RuntimeFailure, match="ndi-python package"):
        check_source("ndi:Studio Cam?ips=10.0.0.5&timeout=3&lost=1")


@pytest.mark.skipif(sys.platform == "darwin", reason="the macOS-only error is for other platforms")
def test_syphon_off_macos_is_said_by_the_check_after_any_option_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "syphon", None)
    for check, uri in ((check_sink, "syphon:Depth?format=packed16"), (check_source, "syphon:Resolume?timeout=2")):
        with pytest.raises(BadInputError, match=r"syphon: URIs need macOS.*ndi:"):
            check(uri)
    with pytest.raises(BadInputError, match="format='bogus'"):  # the URI is judged the same everywhere
        check_sink("syphon:Depth?format=bogus")
