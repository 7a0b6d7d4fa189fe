"""--fill flow|hold, keyframe caps, output sizes, per-frame metadata and the oracle model (issue 23)."""

from __future__ import annotations

import json
import time

import anyio
import numpy as np
import pytest

from bench.support.stream_doubles import FakeSteps, ListSource, RecordingSink, make_aligner
from io_adapters.frames import DepthFrame, EndOfStream, VideoFrame
from io_adapters.ndi.formats import frame_metadata_xml, parse_frame_metadata
from pipeline.snippets import SnippetPlan
from stream.stages.display_normalizer import parse_normalize
from stream.stages.fill_stage import FillStage, HoldCarrier
from stream.stages.messages import AlignedFrame, CapturedFrame, FrameTiming, StreamEnd
from stream.node import NodeConfig, StreamNode
from tests.conftest import ROOT, moving_pattern, rdstream_in_process
from tests.support.node_runs import run_node

DATA = ROOT / "tests" / "data"


class PacedSource:
    """Blocking source of uint8 [N, H, W, 3] frames, one every ``interval`` s (a camera's pace)."""

    nominal_fps = 30.0
    uri = "paced:"

    def __init__(self, frames: np.ndarray, interval: float) -> None:
        self.frames, self.interval, self.sent, self.closed = frames, interval, 0, False

    def recv(self) -> VideoFrame:
        if self.sent >= len(self.frames):
            raise EndOfStream()
        time.sleep(self.interval)
        i = self.sent
        self.sent += 1
        return VideoFrame(index=i, timestamp=i / 30.0, rgb=self.frames[i])

    def close(self) -> None:
        self.closed = True


# --- every frame out ---------------------------------------------------------------------------

def test_fill_flow_sends_every_frame_after_the_first_depth_without_waiting_for_the_model():
    sink = RecordingSink()
    frames = moving_pattern(50, 64, 96)
    result, reports, _ = run_node(PacedSource(frames, 0.01), [sink], steps=FakeSteps(predict_delay=0.04),
                                  plan=SnippetPlan(3, (1, 4)), lookahead=1, drop_frames=True, fill="flow")
    indices = [f.index for f in sink.frames]
    first = indices[0]
    assert indices == list(range(first, 50)), indices  # every frame from the first depth on, in order
    assert result.frames_in == 50 and result.frames_out == 50 - first == 50 - result.fill["before_first_depth"]
    assert result.dropped == result.fill["before_first_depth"] == first
    assert result.fill["keyframes"] < 40  # the model took only some frames, the rest were carried
    assert any(f.keyframe is False for f in sink.frames) and all(f.keyframe is not None for f in sink.frames)
    assert all(np.isfinite(f.depth).all() and f.depth.shape == (32, 48) for f in sink.frames)
    assert all(f.depth_age_ms >= 0 for f in sink.frames) and reports == []
    # filled frames leave after their flow step, not after the model: well under one 40 ms model call
    assert result.latency_p50_ms < 40, result.latency_p50_ms


def test_fill_hold_repeats_the_latest_depth_between_keyframes():
    sink = RecordingSink()
    result, _, _ = run_node(PacedSource(moving_pattern(40, 32, 48), 0.005), [sink],
                            steps=FakeSteps(predict_delay=0.03), normalize="fixed:1,-1", plan=SnippetPlan(3, (1,)),
                            drop_frames=True, fill="hold")
    assert result.frames_out == 40 - result.fill["before_first_depth"] > 20
    distinct = {f.depth.tobytes() for f in sink.frames}
    assert len(distinct) <= result.fill["keyframes"] < result.frames_out
    for before, after in zip(sink.frames, sink.frames[1:]):  # a carried frame shows its predecessor's depth
        if not after.keyframe and after.depth_age_ms > 0 and before.depth_age_ms < after.depth_age_ms:
            assert np.array_equal(before.depth, after.depth)


# --- the fill stage on its own -----------------------------------------------------------------

class RecordingCarrier(HoldCarrier):
    """HoldCarrier that logs its calls; ``fail_on`` frames raise in push_frame (a broken flow step)."""

    def __init__(self, fail_on=()) -> None:
        super().__init__()
        self.calls: list[tuple[str, int]] = []
        self.fail_on = set(fail_on)

    def push_frame(self, index, rgb):
        self.calls.append(("push", index))
        if index in self.fail_on:
            raise ValueError("blank frame")
        return super().push_frame(index, rgb)

    def set_keyframe(self, index, depth):
        self.calls.append(("key", index))
        return super().set_keyframe(index, depth)


def run_fill_stage(carrier, script, model_took=None):
    """Feed a FillStage: script items are ('frame', i) or ('key', i, value); returns (outputs, reports)."""
    reports: list[str] = []
    stage = FillStage(carrier, reports.append, model_took=model_took)
    frames_send, stage.frames = anyio.create_memory_object_stream(100)
    keys_send, keys_receive = anyio.create_memory_object_stream(100)
    out_send, out_receive = anyio.create_memory_object_stream(100)
    rgb = np.zeros((8, 12, 3), np.uint8)
    timings: dict[int, FrameTiming] = {}
    outputs = []

    async def main_() -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(stage.run, keys_receive, out_send)
            for item in script:
                if item[0] == "frame":
                    timings[item[1]] = FrameTiming(item[1], -1, item[1] / 30, time.perf_counter())
                    await frames_send.send(CapturedFrame(timings[item[1]], rgb))
                else:
                    await keys_send.send(AlignedFrame(timings[item[1]], rgb, np.full((8, 12), item[2], np.float32)))
                await anyio.sleep(0.02)  # one at a time, in script order
            await frames_send.send(StreamEnd("source ended"))
            await keys_send.send(StreamEnd("source ended"))
            async for out in out_receive:
                if isinstance(out, StreamEnd):
                    break
                outputs.append(out)

    anyio.run(main_)
    stage.timings = timings
    return outputs, reports, stage


def test_a_late_keyframe_is_re_carried_to_the_newest_frame_and_used_from_the_next():
    carrier = RecordingCarrier()
    script = [("frame", 0), ("key", 0, 1.0)] + [("frame", i) for i in range(1, 6)] + [("key", 2, 5.0), ("frame", 6)]
    outputs, reports, stage = run_fill_stage(carrier, script)
    assert [o.timing.source_index for o in outputs] == list(range(1, 7))  # frame 0 came before any depth
    assert carrier.calls.index(("key", 2)) > carrier.calls.index(("push", 5))  # arrived after frame 5 went out
    assert [float(o.depth[0, 0]) for o in outputs] == [1.0] * 5 + [5.0]
    last, times = outputs[-1].fill, stage.timings
    assert last.keyframe is False
    assert last.depth_age_ms == pytest.approx((times[6].received_at - times[2].received_at) * 1000, abs=0.2)
    assert reports == []


def test_a_frame_the_model_took_waits_for_its_own_depth_while_such_depths_come_within_a_frame():
    script = [item for i in range(10) for item in (("frame", i), ("key", i, float(i)))]
    outputs, _, _ = run_fill_stage(RecordingCarrier(), script, model_took=lambda index: True)
    late = [o for o in outputs if o.timing.source_index >= 5]  # once three depths came within a frame period
    assert late and all(o.fill.keyframe and float(o.depth[0, 0]) == o.timing.source_index for o in late)
    # without knowing which frames the model took, nothing waits: each frame carries the previous depth
    outputs, _, _ = run_fill_stage(RecordingCarrier(), script)
    assert all(not o.fill.keyframe and float(o.depth[0, 0]) == o.timing.source_index - 1 for o in outputs)


def test_frames_before_the_first_depth_are_pushed_for_their_flow_and_only_later_ones_leave():
    carrier = RecordingCarrier()
    outputs, _, stage = run_fill_stage(carrier, [("frame", i) for i in range(4)] + [("key", 2, 3.0), ("frame", 4)])
    assert [o.timing.source_index for o in outputs] == [4] and stage.before_first_depth == 4
    assert [c for c in carrier.calls if c[0] == "push"] == [("push", i) for i in range(5)]
    assert carrier.calls.index(("key", 2)) == carrier.calls.index(("push", 2)) + 1  # applied right after its frame
    age = (stage.timings[4].received_at - stage.timings[2].received_at) * 1000
    assert outputs[0].fill.keyframe is False and outputs[0].fill.depth_age_ms == pytest.approx(age, abs=0.2)


def test_a_failed_flow_step_holds_that_frame_with_one_warning_and_the_stream_goes_on():
    carrier = RecordingCarrier(fail_on={3, 4})
    outputs, reports, stage = run_fill_stage(carrier, [("frame", 0), ("key", 0, 2.0)] + [("frame", i) for i in range(1, 7)])
    assert [o.timing.source_index for o in outputs] == list(range(1, 7))
    assert all(float(o.depth[0, 0]) == 2.0 for o in outputs) and stage.flow_failures == 2
    assert len(reports) == 1 and "frame 3" in reports[0] and "goes on" in reports[0]


# --- drop and --no-drop are today's -----------------------------------------------------------

def test_fill_drop_and_no_drop_equal_the_output_before_fill_existed():
    # tests/data/no_drop_depth_before_fill.npy: this same run through the node before --fill (main at 8a1fbbb)
    expected = np.load(DATA / "no_drop_depth_before_fill.npy")
    for config in ({}, {"fill": "drop"}, {"fill": "flow"}):  # --no-drop: --fill has nothing to fill
        sink = RecordingSink()
        _, _, node = run_node(ListSource(24, size=(16, 24)), [sink], plan=SnippetPlan(3, (1, 4)), lookahead=1, **config)
        assert node.fill is None and node.capture.every_frame is None and node.capture.gate is None
        assert np.abs(np.stack([f.depth for f in sink.frames]) - expected).max() <= 1e-5
        assert all(f.keyframe is None and f.depth_age_ms is None for f in sink.frames)
    _, _, node = run_node(ListSource(5), [RecordingSink()], drop_frames=True, fill="drop")
    assert node.fill is None and node.capture.gate is None  # --realtime --fill drop: the old path


# --- keyframe scheduling ------------------------------------------------------------------------

def test_a_still_scene_runs_the_model_at_idle_fps_while_every_frame_goes_out():
    still = np.repeat(moving_pattern(1, 32, 48), 90, axis=0)
    steps = FakeSteps()
    started = time.perf_counter()
    result, _, _ = run_node(PacedSource(still, 1 / 60), [RecordingSink()], steps=steps, plan=SnippetPlan(2, (1,)),
                            drop_frames=True, fill="flow", idle_fps=4.0)
    elapsed = time.perf_counter() - started
    # the first snippet's 2 frames come at once (warm-up), then at most idle-fps + 10 %
    assert steps.counts.encodes <= 2 + 4.0 * elapsed * 1.1, (steps.counts.encodes, elapsed)
    assert result.frames_out + result.fill["before_first_depth"] == 90 and result.frames_out > 40
    assert result.fill["skipped"]["still"] > 50


def test_model_fps_caps_keyframes_on_a_moving_scene():
    steps = FakeSteps()
    started = time.perf_counter()
    result, _, _ = run_node(PacedSource(moving_pattern(60, 32, 48), 1 / 60), [RecordingSink()], steps=steps,
                            plan=SnippetPlan(2, (1,)), drop_frames=True, fill="hold", model_fps=6.0, idle_fps=None)
    elapsed = time.perf_counter() - started
    assert steps.counts.encodes <= 1 + 6.0 * elapsed * 1.1, (steps.counts.encodes, elapsed)
    assert result.fill["skipped"]["model-fps"] > 20 and result.fill["skipped"]["still"] == 0


# --- output size ---------------------------------------------------------------------------------

def test_sinks_get_depth_and_colour_at_the_size_they_ask_for():
    source_size, asked = RecordingSink(), RecordingSink()
    plain = RecordingSink()
    run_node(PacedSource(moving_pattern(20, 36, 64), 0.005), [source_size, asked, plain], drop_frames=True,
             fill="flow", plan=SnippetPlan(2, (1,)), sink_sizes=("source", (40, 30)))
    assert source_size.frames and all(f.depth.shape == (36, 64) and f.rgb.shape == (36, 64, 3) for f in source_size.frames)
    assert all(f.depth.shape == (30, 40) and f.rgb.shape == (30, 40, 3) for f in asked.frames)
    assert all(f.depth.shape == (18, 32) for f in plain.frames)
    assert all(0 <= f.depth.min() and f.depth.max() <= 1 for f in source_size.frames + asked.frames)
    # the source-size colour is the camera's own frame, not the processing size's scaled back up
    assert np.array_equal(source_size.frames[-1].rgb, moving_pattern(20, 36, 64)[source_size.frames[-1].index])


# --- per-frame metadata ----------------------------------------------------------------------

def test_ndi_metadata_and_stats_json_carry_keyframe_and_depth_age(tmp_path):
    frame = DepthFrame(index=7, timestamp=0.2, depth=np.zeros((2, 2), np.float32), keyframe=False, depth_age_ms=66.7)
    meta = parse_frame_metadata(frame_metadata_xml(frame, 12.0))
    assert meta["keyframe"] == 0 and meta["depth_age_ms"] == pytest.approx(66.7)
    plain = parse_frame_metadata(frame_metadata_xml(DepthFrame(index=1, timestamp=0.0, depth=frame.depth), None))
    assert "keyframe" not in plain and "depth_age_ms" not in plain  # without --fill: as before

    stats = tmp_path / "stats.jsonl"
    cfg = NodeConfig(plan=SnippetPlan(2, (1,)), drop_frames=True, fill="flow", stats_interval_s=0.1, idle_fps=100.0)
    node = StreamNode(PacedSource(moving_pattern(30, 32, 48), 0.01), [("s:", RecordingSink())], FakeSteps(),
                      make_aligner(cfg.plan), parse_normalize("running"), cfg, stats_json=stats)
    anyio.run(node.run)
    last = json.loads(stats.read_text().splitlines()[-1])
    assert last["frame"]["keyframe"] in (True, False) and last["frame"]["depth_age_ms"] >= 0
    assert last["fill"]["keyframes"] >= 1 and "model_fps" in last["fill"] and "depth_age_p50_ms" in last["fill"]

    from stream.monitor.metrics import metrics_registry, metrics_text

    text = metrics_text(metrics_registry(node, node.sampler.sample)).decode()
    assert f"rdstream_keyframes_total {float(node.capture.metrics.items_out)}" in text
    assert 'rdstream_keyframe_skips_total{reason="still"}' in text and "rdstream_depth_age_seconds" in text


# --- the oracle model -------------------------------------------------------------------------

def test_the_oracle_answers_with_the_truth_through_the_node(tmp_path):
    from pipeline.depth_metrics import abs_rel, affine_fit
    from stream.model.oracle_model import OracleSteps

    truth = (np.random.default_rng(0).random((12, 32, 48)) + 0.5).astype(np.float32)
    steps = OracleSteps(truth, res=0, delay_s=0.01, fit_stride=4)
    sink = RecordingSink()
    run_node(ListSource(12, size=(32, 48)), [sink], steps=steps, normalize="fixed:2,0", plan=SnippetPlan(3, (1, 4)),
             lookahead=1)
    import torch

    out = torch.from_numpy(np.stack([f.depth for f in sink.frames]))
    assert [f.index for f in sink.frames] == list(range(12)) and out.shape == truth.shape
    assert abs_rel(affine_fit(out, torch.from_numpy(truth)), torch.from_numpy(truth)) < 1e-3


def _rdstream(capsys, *args) -> tuple[int, str]:
    return rdstream_in_process(*args), capsys.readouterr().err


@pytest.mark.parametrize("extra, expected", [
    (["--fill", "smear"], "--fill 'smear'"),
    (["--model-fps", "0"], "--model-fps 0"),
    (["--idle-fps", "-1"], "--idle-fps -1"),
    (["--model-fps", "fast"], "'--model-fps' ('fast')"),
    (["--fill", "flow", "--no-drop"], "--fill flow needs --realtime"),
    (["--output-size", "0x720"], "--output-size '0x720'"),
    (["--output-size", "9000x720"], "1..8192"),
    (["--output-size", "big"], "--output-size 'big'"),
    (["--sink", "null:?size=12"], "size= in 'null:?size=12'"),
])
def test_bad_fill_and_size_options_are_one_line_and_exit_2(capsys, extra, expected):
    code, err = _rdstream(capsys, "run", "--source", "test:?frames=5", "--sink", "null:", *extra)
    assert code == 2 and err.count("\n") == 1 and expected in err, err


def test_bad_oracle_files_are_one_line_and_exit_2_before_the_model_loads(capsys, tmp_path):
    good = tmp_path / "truth.npy"
    np.save(good, np.ones((5, 8, 8), np.float32))
    np.save(tmp_path / "f64.npy", np.ones((5, 8, 8)))
    np.save(tmp_path / "flat.npy", np.ones((5, 64), np.float32))
    cases = [(f"oracle:{tmp_path / 'none.npy'}", "no truth file"), (f"oracle:{tmp_path / 'f64.npy'}", "float64"),
             (f"oracle:{tmp_path / 'flat.npy'}", "expected float32 [frames, height, width]"),
             (f"oracle:{good}?delay_ms=x", "delay_ms"), (f"oracle:{good}", "has 5 frames, the source 9")]
    for checkpoint, expected in cases:
        code, err = _rdstream(capsys, "run", "--source", "test:?frames=9", "--sink", "null:", "-c", checkpoint)
        assert code == 2 and err.count("\n") == 1 and expected in err, err


# --- a rig: each stream its own fill and sizes ----------------------------------------------------

def test_rig_streams_take_fill_options_and_sink_sizes_each(tmp_path):
    from stream.cli.rig_file import check_rig, rig_from_run
    from stream.cli.run_checks import RunOptions

    streams = [{"name": "a", "source": "test:?frames=5", "sinks": [f"npy:{tmp_path / 'a.npy'}?size=source"],
                "fill": "hold", "model_fps": 10},
               {"name": "b", "source": "test:?frames=5", "sinks": [f"npy:{tmp_path / 'b.npy'}"], "fill": "flow",
                "output_size": "320x180"}]
    spec = check_rig("rig.toml", {"model": {}, "stream": streams}, "ckpt")
    a, b = spec.streams
    assert (a.basics.fill.fill, a.basics.fill.model_fps, a.basics.drop_frames) == ("hold", 10.0, True)
    assert a.options.sinks == [f"npy:{tmp_path / 'a.npy'}"] and a.options.sink_sizes == ["source"]
    assert b.basics.fill.fill == "flow" and b.options.sink_sizes == [(320, 180)]
    with pytest.raises(Exception, match=r"rig.toml.*stream 'a'.*--fill 'smear'"):
        check_rig("rig.toml", {"model": {}, "stream": [dict(streams[0], fill="smear")]}, "ckpt")
    shorthand = rig_from_run(RunOptions(source="test:?frames=5", sinks=[f"npy:{tmp_path / '{name}.npy'}"],
                                        checkpoint="ckpt", fill="hold", idle_fps=2.0),
                             ["test:?frames=5", "test:?frames=6"], "source")
    assert all(s.basics.fill.fill == "hold" and s.basics.fill.idle_fps == 2.0 and s.options.sink_sizes == ["source"]
               for s in shorthand.streams)


def test_run_with_the_oracle_fill_and_source_size_end_to_end(capsys, tmp_path):
    truth = tmp_path / "truth.npy"
    np.save(truth, np.linspace(0.2, 1.0, 30 * 40 * 64, dtype=np.float32).reshape(30, 40, 64))
    out, stats = tmp_path / "depth.npy", tmp_path / "stats.jsonl"
    code, err = _rdstream(capsys, "run", "--source", "test:?frames=30&size=64x40&rate=60", "--res", "0",
                          "--sink", f"npy:{out}?size=source", "-c", f"oracle:{truth}?delay_ms=5", "--fill", "flow",
                          "--output-size", "32x20", "--stats-json", stats, "-d", "1", "--lookahead", "0")
    assert code == 0, err
    depth = np.load(out)
    assert depth.shape[1:] == (40, 64) and 0 < depth.shape[0] <= 30  # the sink's own size= wins
    assert "NOT DEPTH" in err and "every frame out (--fill flow" in err and "keyframes from the model" in err
    assert json.loads(stats.read_text().splitlines()[-1])["fill"]["keyframes"] >= 1


def test_osc_status_adds_keyframe_and_depth_age_only_with_fill():
    from stream.control.osc_control import OscControl
    from stream.stats.stream_stats import LastFrame, NodeStats

    control = OscControl(None, None, lambda message: None)
    sent = []
    control._send = lambda address, values: sent.append(values)
    base = dict(elapsed_s=1.0, input_fps=30.0, output_fps=30.0, latency_p50_ms=5.0, latency_p95_ms=9.0, frames_in=30,
                frames_out=30, dropped=0, sink_dropped=0, queues={}, busy={})
    control.send_status(NodeStats(**base, frame=LastFrame(3, 0.1, 5.0, 0.9, 0.1, keyframe=False, depth_age_ms=66.7)))
    control.send_status(NodeStats(**base, frame=LastFrame(3, 0.1, 5.0, 0.9, 0.1)))
    assert sent[0][6:] == [0, pytest.approx(66.7)] and len(sent[1]) == 6


def test_dev_evaluate_fill_takes_flow_or_hold_only(capsys):
    code, err = _rdstream(capsys, "dev", "evaluate", "clip.mp4", "--fill", "drop")
    assert code == 2 and err.count("\n") == 1 and "--fill 'drop': use flow or hold" in err, err
