"""The streaming node's pieces and its runtime, with model-free test doubles (fast, no torch model)."""

from __future__ import annotations

import json
import threading
import time

import anyio
import numpy as np
import pytest

from stream.display_normalizer import (FixedRangeNormalizer, RunningRangeNormalizer, WindowRangeNormalizer,
                                         parse_normalize)
from pipeline.errors import BadInputError, RuntimeFailure
from pipeline.snippets import SnippetPlan
from stream.node import NodeConfig, StreamNode
from stream.rolling_window import RollingWindow
from bench.support.stream_doubles import FakeSteps, ListSource, RecordingSink, make_aligner
from tests.support.failing_sink import FailingSink
from tests.support.node_runs import run_node


# --- snippet schedule and window -------------------------------------------------------------

def test_snippets_end_at_new_frame_and_only_fitting_dilations_early():
    assert SnippetPlan(3, (1, 25)).snippets_ending_at(0) == []
    assert SnippetPlan(3, (1, 25)).snippets_ending_at(2) == [(0, 1, 2)]
    assert SnippetPlan(3, (1, 25)).snippets_ending_at(49) == [(47, 48, 49)]
    assert SnippetPlan(3, (1, 25)).snippets_ending_at(50) == [(48, 49, 50), (0, 25, 50)]


def test_stream_snippet_count_equals_offline_stride_one_count():
    # offline, N frames: N - (L-1)d snippets per dilation (no capping) -> the same set as the stream
    n, dilations = 100, (1, 25)
    total = sum(len(SnippetPlan(3, dilations).snippets_ending_at(t)) for t in range(n))
    assert total == (n - 2) + (n - 50) == 148


def test_rolling_window_is_bounded_and_ordered():
    assert SnippetPlan(3, (1, 25)).history(lookahead=2) == 53
    window = RollingWindow(3)
    for i in range(10):
        window.add(i, i * 10)
    assert len(window) == 3 and window.oldest == 7 and window[9] == 90
    with pytest.raises(KeyError, match="not in the window"):
        window[2]
    with pytest.raises(ValueError, match="arrived after"):
        window.add(5, 0)


# --- display normalisation ------------------------------------------------------------------

def test_running_range_ignores_outlier_pixels_and_moves_slowly():
    rng = np.random.default_rng(0)
    norm = RunningRangeNormalizer(momentum=0.9)
    base = rng.uniform(-0.5, 0.5, size=(64, 64)).astype(np.float32)
    first = norm(base)
    assert first.dtype == np.float32 and first.min() >= 0 and first.max() <= 1
    spiky = base.copy()
    spiky[0, 0] = 100.0  # one hot pixel must not rescale the frame (per-frame min/max would)
    out = norm(spiky)
    assert np.abs(out[1:, 1:] - first[1:, 1:]).max() < 0.02
    # a whole-frame change of range is followed gradually, not in one jump
    before = norm.current_range
    norm(base * 4)
    after = norm.current_range
    assert before.near < after.near < 4 * before.near


def test_fixed_and_window_normalisers():
    depth = np.linspace(-1, 1, 100, dtype=np.float32).reshape(10, 10)
    fixed = FixedRangeNormalizer(near=1.0, far=-1.0)(depth)
    np.testing.assert_allclose(fixed, (depth + 1) / 2, atol=1e-6)
    window = WindowRangeNormalizer(frames=3)
    for _ in range(3):
        out = window(depth)
    assert out.min() == 0.0 and out.max() == 1.0


@pytest.mark.parametrize("spec", ["minmax", "fixed:1", "fixed:a,b", "fixed:1,1", "window:x", "window:0"])
def test_bad_normalize_spec_is_one_clear_error(spec):
    with pytest.raises(BadInputError, match="normalize"):
        parse_normalize(spec)


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
