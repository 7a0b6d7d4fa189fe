"""The scheme table (io_adapters/registry.py): every entry names code that exists, the facts other
modules read come from it, and a scheme added to it alone is opened, checked and named."""

from __future__ import annotations

import anyio
import pytest

from io_adapters import registry
from io_adapters.registry import SCHEMES, Scheme, check_sink, check_source, open_source, stream_name
from pipeline.errors import BadInputError


def test_every_entry_names_code_that_exists_and_an_example_for_each_kind():
    for scheme in SCHEMES.values():
        for field in ("source", "sink", "source_check", "sink_check", "installed", "lister"):
            reference = getattr(scheme, field)
            if reference is not None:
                assert callable(registry._load(reference)), (scheme.name, field, reference)
        assert (scheme.source is None) == (scheme.source_check is None) == (scheme.source_example is None)
        assert (scheme.sink is None) == (scheme.sink_check is None) == (scheme.sink_example is None)
        assert (scheme.lister is None) == (scheme.listed_as is None)


def test_the_facts_other_modules_read_come_from_the_table():
    from io_adapters.listing import format_sources
    from stream.cli import rig_file, run_checks

    assert run_checks.LIVE_SCHEMES is registry.LIVE_SCHEMES == ("camera", "ndi", "syphon", "spout")
    assert rig_file.NAMED_OUTPUT_SCHEMES is registry.NAMED_OUTPUT_SCHEMES == ("ndi", "syphon", "spout")
    assert rig_file.stream_name is stream_name
    assert [stream_name(uri, 3) for uri in ("file:shows/intro.mp4", "ndi:Stage Left", "camera:1", "test:", "spout:")] \
        == ["intro", "Stage Left", "camera1", "stream3", "stream3"]
    listing = {key: [] for key, _ in registry.LISTED} | {"notes": []}
    assert format_sources(listing).splitlines()[::2] == ["Cameras:", "NDI sources:", "Syphon servers:", "Spout senders:"]


def test_a_scheme_added_to_the_table_alone_is_checked_opened_and_named(monkeypatch):
    monkeypatch.setitem(SCHEMES, "pattern", Scheme(
        "pattern", source="file_source:TestPatternSource", source_check="file_source:TestPatternOptions.parse",
        source_example="pattern:?frames=2", paced=False, stream_name=lambda target: f"pattern-{target}"))
    check_source("pattern:?frames=2&size=32x16")
    with pytest.raises(BadInputError, match="colour"):
        check_source("pattern:?colour=red")
    source = open_source("pattern:?frames=2&size=32x16")
    try:
        assert type(source).__name__ == "TestPatternSource" and source.realtime is False  # the entry's pace
    finally:
        anyio.run(source.close)
    assert stream_name("pattern:a", 1) == "pattern-a"
    with pytest.raises(BadInputError, match="unknown sink scheme 'pattern'"):
        check_sink("pattern:")
