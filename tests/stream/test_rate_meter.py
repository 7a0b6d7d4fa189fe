"""Figures that read right: rates below 1 fps (stream/stats/rate_meter.py), model work that is really done
(the fit decodes counted and summed up)."""

from __future__ import annotations

from stream.cli.run_job import per_frame_counts, summary_line
from stream.node import NodeResult
from stream.stats.rate_meter import RateMeter
from stream.model.rolling_depth_steps import RollingDepthSteps
from tests.conftest import moving_pattern


def readings(interval_s: float, seconds: float = 40.0, sample_every_s: float = 1.0) -> list[float]:
    """The rate a 1-second status line shows while events come every ``interval_s``."""
    meter, shown = RateMeter(), []
    sample = sample_every_s
    for i in range(int(seconds / interval_s)):
        t = i * interval_s
        while sample < t:
            shown.append(meter.per_second(sample))
            sample += sample_every_s
        meter.tick(t)
    return shown


def test_rates_below_one_fps_are_steady_not_flipping_between_0_and_1():
    for interval, fps in ((2.0, 0.5), (1 / 0.3, 0.3), (1 / 30, 30.0)):
        shown = readings(interval)
        settled = shown[int(2 * interval) + 1:]  # once two frames have come
        assert settled and all(abs(v - fps) <= 0.15 * fps for v in settled), (fps, shown)


def test_a_stalled_stream_reads_as_slowing_down():
    meter = RateMeter()
    for i in range(10):
        meter.tick(float(i))
    assert meter.per_second(9.5) == 1.0
    assert 0.7 < meter.per_second(12.0) < 0.9 and meter.per_second(20.0) < 0.2 and meter.per_second(100.0) < 0.05


def _result(counts: dict) -> NodeResult:
    return NodeResult(end_reason="source ended", frames_in=10, frames_out=10, frames_processed=10, dropped=0, lost=0,
                      elapsed_s=1.0, latency_p50_ms=1.0, latency_p95_ms=2.0, latency_max_ms=3.0, step_counts=counts,
                      sinks={}, stages={})


def test_fit_decode_full_reports_no_fit_decodes(tiny_model):
    steps = RollingDepthSteps(tiny_model, 64, seed=0, fit_stride=10, fit_path="full")
    frames = moving_pattern(3, 64, 96)
    latents = [steps.encode(rgb)[1] for rgb in frames]
    steps.predict([latents], [(False, False, True)])  # two frames only the aligner's fit reads
    assert steps.counts.decodes_fit == 0 and steps.counts.decodes_full == 3
    line = summary_line(_result(steps.counts.as_dict()))
    assert "fit decodes" not in line and "full decodes" in line
    assert per_frame_counts(_result({"encodes": 10, "unet_frame_passes": 60, "decodes_full": 20,
                                     "decodes_fit": 40})).endswith("4.00 fit decodes")
