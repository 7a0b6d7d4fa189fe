"""The streaming node (stream/node.py) and its runtime, with model-free test doubles (fast, no torch
model). Its pieces have their own files: the snippet schedule in tests/pipeline/test_snippets.py,
tests/stream/test_rolling_window.py, tests/stream/test_display_normalizer.py."""

from __future__ import annotations

import json
import threading
import time

import anyio
import numpy as np
import pytest

from stream.stages.display_normalizer import parse_normalize
from pipeline.errors import RuntimeFailure
from pipeline.snippets import SnippetPlan
from stream.node import NodeConfig, StreamNode
from bench.support.stream_doubles import FakeSteps, ListSource, RecordingSink, make_aligner
from tests.support.failing_sink import FailingSink
from tests.support.node_runs import run_node


# --- the node --------------------------------------------------------------------------------

def test_every_frame_policy_outputs_every_frame_in_order_and_encodes_each_once():
    sink = RecordingSink()
    steps = FakeSteps()
    source = ListSource(60)
    result, reports, _ = run_node(source, [sink], steps=steps, plan=SnippetPlan(3, (1, 5)), lookahead=2)
    assert [f.index for f in sink.frames] == list(range(60))
    assert result.frames_out == 60 and result.dropped == 0 and result.lost == 0
    assert steps.counts.encodes == 60
    assert steps.counts.unet_frame_passes == 3 * ((60 - 2) + (60 - 10))
    assert all(f.depth.dtype == np.float32 and 0 <= f.depth.min() and f.depth.max() <= 1 for f in sink.frames)
    assert sink.frames[0].rgb.shape[:2] == sink.frames[0].depth.shape
    assert sink.closed and source.closed and reports == []
    assert threading.main_thread().name not in steps.threads  # model work ran in worker threads


def test_stream_shorter_than_a_snippet_still_outputs_every_frame():
    sink = RecordingSink()
    result, _, _ = run_node(ListSource(2), [sink], plan=SnippetPlan(3, (1, 25)))
    assert [f.index for f in sink.frames] == [0, 1] and result.frames_out == 2


def test_slow_model_makes_realtime_node_drop_frames_with_bounded_latency():
    # source at ~200 fps, model at ~20 snippet calls/s: most frames must be dropped, newest first
    sink = RecordingSink()
    steps = FakeSteps(predict_delay=0.05)
    result, _, _ = run_node(ListSource(120, interval=0.005), [sink], steps=steps, plan=SnippetPlan(3, (1, 4)),
                         drop_frames=True)
    assert result.dropped > 40
    assert result.frames_in == 120 and result.frames_processed == 120 - result.dropped
    assert result.frames_out == result.frames_processed == steps.counts.encodes
    # bounded: a handful of model calls, not the growing backlog of 120 frames x 50 ms
    assert result.latency_max_ms < 1500, result  # a backlog would reach 120 x 50 ms = 6 s
    indices = [f.index for f in sink.frames]
    assert indices == sorted(indices) and indices[-1] >= 110  # the newest frames won


def test_every_frame_policy_never_drops_with_a_slow_model():
    sink = RecordingSink()
    result, _, _ = run_node(ListSource(30, interval=0.001), [sink], steps=FakeSteps(predict_delay=0.01),
                         plan=SnippetPlan(3, (1, 4)), drop_frames=False)
    assert result.dropped == 0 and len(sink.frames) == 30


def test_failing_sink_is_reported_once_and_others_go_on():
    good, bad = RecordingSink(), FailingSink(fail_at=5)
    result, reports, _ = run_node(ListSource(40), [bad, good], plan=SnippetPlan(3, (1, 4)))
    assert len(good.frames) == 40 and good.closed
    assert len(bad.frames) == 5 and bad.attempts == 6 and bad.closed
    assert len(reports) == 1 and "sink0:" in reports[0] and "disk full" in reports[0]
    assert result.sinks["sink0:"]["error"].startswith("OSError")


def test_every_sink_failing_stops_the_node_with_runtime_failure():
    source = ListSource(40)
    with pytest.raises(RuntimeFailure, match="every sink failed"):
        run_node(source, [FailingSink(fail_at=3)], plan=SnippetPlan(3, (1, 4)))
    assert source.closed


def test_stop_request_drains_flushes_and_closes():
    sink = RecordingSink()
    source = ListSource(10_000, interval=0.002)
    plan = SnippetPlan(3, (1, 4))
    node = StreamNode(source, [("mem:", sink)], FakeSteps(), make_aligner(plan, 3), parse_normalize("running"),
                      NodeConfig(plan=plan, lookahead=3), report=lambda m: None)

    async def main():
        async with anyio.create_task_group() as tg:
            async def stop_soon():
                await anyio.sleep(0.3)
                node.request_stop()
            tg.start_soon(stop_soon)
            return_value.append(await node.run())

    return_value = []
    anyio.run(main)
    result = return_value[0]
    assert result.end_reason == "interrupted"
    assert 0 < result.frames_out == result.frames_processed < 10_000
    assert sink.closed and source.closed
    assert [f.index for f in sink.frames] == list(range(result.frames_out))


def test_stats_json_has_one_line_per_interval(tmp_path):
    stats = tmp_path / "stats.jsonl"
    plan = SnippetPlan(3, (1, 4))
    node = StreamNode(ListSource(40, interval=0.01), [("mem:", RecordingSink())], FakeSteps(), make_aligner(plan),
                      parse_normalize("running"), NodeConfig(plan=plan, stats_interval_s=0.1), stats_json=stats)
    anyio.run(node.run)
    lines = [json.loads(line) for line in stats.read_text().splitlines()]
    assert len(lines) >= 3
    last = lines[-1]
    assert last["frames_in"] == 40 and last["frames_out"] == 40
    assert {"input_fps", "output_fps", "latency_p50_ms", "latency_p95_ms", "dropped", "queues"} <= set(last)
    assert set(last["queues"]) == {"encode", "snippets", "align", "display", "sinks"}


def test_every_frame_policy_waits_for_a_slow_threaded_sink_instead_of_letting_it_drop():
    from io_adapters.base import ThreadedSink

    class SlowSink(ThreadedSink):
        def __init__(self):
            self.written = []
            super().__init__("slow:", queue_size=2)

        def _write(self, frame):
            time.sleep(0.003)
            self.written.append(frame.index)

        def _finalise(self):
            pass

    sink = SlowSink()
    result, _, _ = run_node(ListSource(60), [sink], plan=SnippetPlan(3, (1, 4)), drop_frames=False)
    assert sink.dropped == 0 and sink.written == list(range(60)) and result.frames_out == 60
