"""LatencyTracker: percentiles, and memory that does not grow with the run's length; StatsSampler:
the status line's rates."""

import tracemalloc

import numpy as np
import pytest

from stream.stats.stream_stats import LatencyTracker


def _feed(tracker: LatencyTracker, latencies, fps: float = 30.0, first: int = 0) -> None:
    for i, latency in enumerate(latencies, start=first):
        tracker.add(float(latency), now=i / fps)


def test_memory_stays_flat_however_long_the_run():
    # A node left running through a show adds one latency per frame; nothing may keep them all.
    # (It kept up to 20000 of them, 32 bytes and more per frame, never read the recent window's
    # old ones unless a sampler asked, so a quiet run grew its deque too.)
    latencies = np.random.default_rng(0).lognormal(-2.0, 0.5, 22_000)
    tracker = LatencyTracker()
    tracemalloc.start()
    try:
        _feed(tracker, latencies[:2000])
        before = tracemalloc.get_traced_memory()[0]
        _feed(tracker, latencies[2000:], first=2000)
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert grown < 16_000, f"{grown} bytes more after 20000 more frames"
    assert tracker.recent_held <= 5 * 30 + 1  # the last 5 s at 30 fps
    assert tracker.count == 22_000


def test_run_percentiles_cover_the_whole_run_to_half_a_percent():
    latencies = np.random.default_rng(1).lognormal(-1.5, 0.6, 30_000)
    tracker = LatencyTracker()
    _feed(tracker, latencies)
    p50, p95 = tracker.run_percentiles_ms()
    want50, want95 = np.percentile(latencies * 1000.0, [50, 95])
    assert abs(p50 / want50 - 1) < 0.005 and abs(p95 / want95 - 1) < 0.005
    # the first frames count too: a slow start shows in the run's p95
    slow_start = LatencyTracker()
    _feed(slow_start, [2.0] * 2000 + [0.1] * 20_000)
    assert slow_start.run_percentiles_ms()[1] == 2000.0


def test_recent_percentiles_follow_the_window():
    tracker = LatencyTracker(window_s=5.0)
    _feed(tracker, [1.0] * 200 + [0.2] * 400)  # 6.7 s of 1 s latency, then 13.3 s of 0.2 s
    assert tracker.percentiles_ms(now=600 / 30) == (200.0, 200.0)
    # the run: two thirds at 0.2 s (p50), the slow third in p95 (each to within half a bin, 0.5 %)
    assert tracker.run_percentiles_ms() == (pytest.approx(200.0, rel=0.005), pytest.approx(1000.0, rel=0.005))
    assert LatencyTracker().percentiles_ms() == (None, None) and LatencyTracker().run_percentiles_ms() == (None, None)


def test_the_status_line_shows_the_frames_own_rate_sample_after_sample():
    import time

    from stream.stages.stage import StageMetrics
    from stream.stats.stream_stats import LatencyTracker, StatsSampler

    capture, latency = StageMetrics("capture"), LatencyTracker()
    sampler = StatsSampler([capture, StageMetrics("sinks")], latency, dropped=lambda: 0, sink_dropped=lambda: 0)
    now = time.perf_counter()
    for ago in (8.0, 6.0, 4.0, 2.0, 0.0):  # one frame every 2 s
        capture.arrivals.tick(now - ago)
        latency.add(0.1, now=now - ago)
    first, second = sampler.sample(), sampler.sample()  # per-sample counting read "5 / 0 s", then 0
    assert first.output_fps == second.output_fps == 0.5 and first.input_fps == second.input_fps == 0.5
    assert "out   0.5 fps" in second.status_text()
