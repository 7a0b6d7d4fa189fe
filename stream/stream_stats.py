"""Live numbers of a running node: rates, latency percentiles, drops, queue depths.

One ``StatsSampler`` turns the stages' counters into a ``NodeStats`` once per second; the
status line and ``--stats-json`` both print that same object.
"""

from __future__ import annotations

import json
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from stream.stage import StageMetrics

# Latency percentiles over the last few seconds: recent enough to show a change, long enough
# to hold a few dozen frames at low frame rates.
LATENCY_WINDOW_S = 5.0
# The run's latencies are counted in log-spaced bins 1 % wide from 0.1 ms to 10^4 s (about 1850
# bins, 15 KB): percentiles to within 0.5 %, in the same memory after a minute or a week.
RUN_BIN_RATIO = 1.01
RUN_MIN_S = 1e-4
RUN_MAX_S = 1e4
_RUN_BINS = int(np.ceil(np.log(RUN_MAX_S / RUN_MIN_S) / np.log(RUN_BIN_RATIO))) + 1


class LatencyTracker:
    """End-to-end latencies (seconds) of recent frames, and of the whole run, in bounded memory.

    Recent: the (time, latency) pairs of the last ``window_s`` seconds (older ones leave as new
    ones arrive; at most ``max_recent``). Run: a histogram of fixed log-spaced bins, so a node
    left running through a show holds the same few kilobytes at its last frame as at its first.
    """

    def __init__(self, window_s: float = LATENCY_WINDOW_S, max_recent: int = 4096) -> None:
        self.window_s = window_s
        self._recent: deque[tuple[float, float]] = deque(maxlen=max_recent)
        self._run_bins = np.zeros(_RUN_BINS, dtype=np.int64)
        self.count = 0
        self.sum_s = 0.0  # of the whole run (the Prometheus histogram's _sum)
        self.min_s = float("inf")
        self.max_s = 0.0
        self.last_s: float | None = None  # latency of frame number count - 1

    def add(self, latency_s: float, now: float | None = None) -> None:
        now = time.perf_counter() if now is None else now
        self._recent.append((now, latency_s))
        self._forget_before(now - self.window_s)
        self._run_bins[_run_bin(latency_s)] += 1
        self.count += 1
        self.sum_s += latency_s
        self.min_s = min(self.min_s, latency_s)
        self.last_s = latency_s
        self.max_s = max(self.max_s, latency_s)

    @property
    def recent_held(self) -> int:
        """Latencies held for the recent window (memory check)."""
        return len(self._recent)

    def percentiles_ms(self, now: float | None = None) -> tuple[float | None, float | None]:
        """(p50, p95) in ms over the last ``window_s`` seconds; (None, None) without frames."""
        now = time.perf_counter() if now is None else now
        self._forget_before(now - self.window_s)
        if not self._recent:
            return None, None
        values = np.fromiter((lat for _, lat in self._recent), dtype=np.float64) * 1000.0
        return _p50_p95_ms(values)

    def run_percentiles_ms(self) -> tuple[float | None, float | None]:
        """(p50, p95) in ms over every frame of the run (to within half a bin, 0.5 %)."""
        if not self.count:
            return None, None
        cumulative = np.cumsum(self._run_bins)
        p50, p95 = (self._run_value(int(np.searchsorted(cumulative, q * self.count))) for q in (0.5, 0.95))
        return round(p50 * 1000.0, 1), round(p95 * 1000.0, 1)

    def cumulative_counts(self, bounds_s: list[float]) -> list[int]:
        """How many of the run's latencies were at most each bound (seconds, ascending): a bin
        counts below a bound when its upper edge is, so a count is exact to within one 1 % bin."""
        upper_edges = RUN_MIN_S * RUN_BIN_RATIO ** np.arange(_RUN_BINS)
        cumulative = np.cumsum(self._run_bins)
        return [int(cumulative[i - 1]) if i else 0
                for i in (int(np.searchsorted(upper_edges, bound, side="right")) for bound in bounds_s)]

    def _forget_before(self, oldest: float) -> None:
        while self._recent and self._recent[0][0] < oldest:
            self._recent.popleft()

    def _run_value(self, bin_index: int) -> float:
        """The geometric middle of a bin, kept within the smallest and largest latency seen."""
        middle = RUN_MIN_S * RUN_BIN_RATIO ** (bin_index - 0.5)
        return min(max(middle, self.min_s), self.max_s)


def _run_bin(latency_s: float) -> int:
    """Bin 0 holds everything below RUN_MIN_S, the last bin everything above RUN_MAX_S."""
    if not latency_s > RUN_MIN_S:
        return 0
    return min(int(np.log(latency_s / RUN_MIN_S) / np.log(RUN_BIN_RATIO)) + 1, _RUN_BINS - 1)


def _p50_p95_ms(values_ms: np.ndarray) -> tuple[float, float]:
    p50, p95 = np.percentile(values_ms, [50, 95])
    return round(float(p50), 1), round(float(p95), 1)


@dataclass(frozen=True)
class LastFrame:
    """The newest frame the sinks got: source index, source timestamp (s), its end-to-end latency
    (ms) and the display range (near, far; aligned depth units, None before the first frame)."""

    index: int
    timestamp: float
    latency_ms: float
    near: float | None
    far: float | None


@dataclass(frozen=True)
class NodeStats:
    """One line of ``--stats-json`` (and of the status line).

    frame: the newest delivered frame, the same fields the NDI frame metadata carries (None
    before the first frame).
    counts: model work so far (``StepCounts.as_dict()``: encodes, unet_frame_passes, decodes_full,
    decodes_fit); the last line of a run holds the whole run's.
    """

    elapsed_s: float
    input_fps: float
    output_fps: float
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    frames_in: int
    frames_out: int
    dropped: int
    sink_dropped: int
    queues: dict[str, int]
    busy: dict[str, float]
    frame: LastFrame | None = None
    counts: dict[str, int] | None = None

    def as_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    def status_text(self) -> str:
        p50 = "-" if self.latency_p50_ms is None else f"{self.latency_p50_ms:.0f}"
        p95 = "-" if self.latency_p95_ms is None else f"{self.latency_p95_ms:.0f}"
        queues = " ".join(f"{name}:{depth}" for name, depth in self.queues.items())
        return (f"in {self.input_fps:5.1f} fps | out {self.output_fps:5.1f} fps | latency p50 {p50} ms "
                f"p95 {p95} ms | dropped {self.dropped} | sink dropped {self.sink_dropped} | queues {queues}")


class StatsSampler:
    """Computes ``NodeStats`` from the stages' counters; rates are per interval between samples."""

    def __init__(self, stages: list[StageMetrics], latency: LatencyTracker,
                 dropped: Callable[[], int], sink_dropped: Callable[[], int],
                 frame_report: Callable[[int], object | None] | None = None,
                 counts: Callable[[], dict[str, int]] | None = None) -> None:
        """frame_report(sequence) -> the display stage's report (index, timestamp, near, far) of
        the sequence-th output frame; latency counts frames in the same order. counts() -> the
        model work so far (``StepCounts.as_dict()``)."""
        self.stages = stages
        self.frame_report = frame_report
        self.counts = counts
        self.latency = latency
        self.dropped = dropped
        self.sink_dropped = sink_dropped
        self.started = time.perf_counter()
        self._last = (self.started, 0, 0)

    def sample(self) -> NodeStats:
        now = time.perf_counter()
        frames_in = self.stages[0].items_in
        frames_out = self.latency.count
        last_t, last_in, last_out = self._last
        dt = max(now - last_t, 1e-9)
        self._last = (now, frames_in, frames_out)
        p50, p95 = self.latency.percentiles_ms(now)
        return NodeStats(
            elapsed_s=round(now - self.started, 3),
            input_fps=round((frames_in - last_in) / dt, 2),
            output_fps=round((frames_out - last_out) / dt, 2),
            latency_p50_ms=p50,
            latency_p95_ms=p95,
            frames_in=frames_in,
            frames_out=frames_out,
            dropped=self.dropped(),
            sink_dropped=self.sink_dropped(),
            queues={m.name: m.queue_depth() for m in self.stages[1:]},
            busy={m.name: round(m.busy_s, 3) for m in self.stages},
            frame=self._last_frame(),
            counts=self.counts() if self.counts is not None else None,
        )

    def _last_frame(self) -> LastFrame | None:
        if self.frame_report is None or not self.latency.count or self.latency.last_s is None:
            return None
        report = self.frame_report(self.latency.count - 1)
        if report is None:
            return None
        return LastFrame(index=report.index, timestamp=round(report.timestamp, 6),
                         latency_ms=round(self.latency.last_s * 1000.0, 1), near=report.near, far=report.far)


class StatsJsonWriter:
    """Appends one JSON line per sample to a file (flushed at once, so `tail -f` works)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._file = self.path.open("a", encoding="utf-8")

    def write(self, stats: NodeStats) -> None:
        self._file.write(stats.as_json() + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()
