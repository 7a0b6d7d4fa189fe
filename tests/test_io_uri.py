"""URI parsing and the scheme/option errors (io_adapters/uri.py, registry.py)."""

import pytest

from io_adapters.registry import open_sink, open_source
from io_adapters.uri import OptionReader, parse_uri
from pipeline.errors import BadInputError


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
