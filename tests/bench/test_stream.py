"""The streaming benchmark's own helpers run through the real node (its sections must not crash)."""

from __future__ import annotations

import numpy as np

from bench.stream import CollectSink, StandInSteps, run_node
from bench.support.stream_doubles import ArraySource
from pipeline.snippets import SnippetPlan


def test_benchmark_sink_and_source_run_through_the_node():
    frames = np.random.default_rng(0).integers(0, 256, (20, 48, 64, 3), dtype=np.uint8)
    sink = CollectSink(rss_at=(10,))
    result = run_node(ArraySource(frames), [("collect:", sink)], StandInSteps(), SnippetPlan(3, (1, 4)), lookahead=2)
    assert result.frames_out == 20 and len(sink.depth) == 20 and sink.dropped == 0
    assert set(sink.rss_mb) == {10}


def test_realtime_latency_stays_within_lookahead_plus_two_periods():
    """bench.stream (f): frames do not wait in queues under --realtime (it was 6 periods at
    lookahead 2, the bound is 4; measured here about 3.2)."""
    from bench.stream import parse_args, section_f

    report = section_f(parse_args(["--f-period-s", "0.2", "--f-seconds", "4"]))
    assert report["dropped"] > 0 and report["frames_out"] >= 8, report
    assert report["latency_p50_periods"] <= report["target_periods"] == 4, report
