"""Live numbers of a running node: rates, latency percentiles, drops, queue depths.

One ``StatsSampler`` turns the stages' counters into a ``NodeStats`` once per second; the
status line and ``--stats-json`` both print that same object.
"""

from __future__ import annotations

import json
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from io_adapters.output_paths import STANDARD_STREAM
from stream.stats.console_pipes import drop_further_writes
from stream.stats.rate_meter import RateMeter
from stream.stats.stage_metrics import StageMetrics

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
        self.rate = RateMeter()  # frames delivered per second
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
        self.rate.tick(now)
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
    keyframe: bool | None = None  # --fill: the frame's own model depth (True) or carried (False)
    depth_age_ms: float | None = None  # --fill: capture time of this frame minus its keyframe's


@dataclass(frozen=True)
class NodeStats:
    """One line of ``--stats-json`` (and of the status line).

    frame: the newest delivered frame, the same fields the NDI frame metadata carries (None
    before the first frame).
    counts: model work so far (``StepCounts.as_dict()``: encodes, unet_frame_passes, decodes_full,
    decodes_fit); the last line of a run holds the whole run's.
    stopped_by: who stopped the run, in words ('signal SIGINT', 'OSC from 127.0.0.1:50000',
    'monitor page from 127.0.0.1'); None while nobody has.
    fill: with ``--fill`` or a keyframe cap: the model's rate, the keyframe depth age and skips
        (``stream.stats.fill_stats.FillStats.sample``); None otherwise. ``output_fps`` and the latency
        fields are then the output's (capture to send of every frame, filled ones included).
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
    stopped_by: str | None = None
    fill: dict | None = None

    def as_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    def status_text(self) -> str:
        p50 = "-" if self.latency_p50_ms is None else f"{self.latency_p50_ms:.0f}"
        p95 = "-" if self.latency_p95_ms is None else f"{self.latency_p95_ms:.0f}"
        queues = " ".join(f"{name}:{depth}" for name, depth in self.queues.items())
        stopping = f" | stopping ({self.stopped_by})" if self.stopped_by else ""
        return (f"in {self.input_fps:5.1f} fps | out {self.output_fps:5.1f} fps | latency p50 {p50} ms "
                f"p95 {p95} ms | dropped {self.dropped} | sink dropped {self.sink_dropped} | queues {queues}"
                + fill_status(self.fill) + stopping)


def fill_status(fill: dict | None) -> str:
    """The status line's tail under --fill / keyframe caps: ' | model 7.5 fps | depth age p50 120 ms | held: still'."""
    if not fill:
        return ""
    text = f" | model {fill['model_fps']:4.1f} fps"
    if fill.get("depth_age_p50_ms") is not None:
        text += f" | depth age p50 {fill['depth_age_p50_ms']:.0f} ms"
    if fill.get("skip_reason"):
        text += f" | held: {fill['skip_reason']}"
    return text


class StatsSampler:
    """Computes ``NodeStats`` from the stages' counters; rates from the recent frames' times
    (``stream.stats.rate_meter``)."""

    def __init__(self, stages: list[StageMetrics], latency: LatencyTracker,
                 dropped: Callable[[], int], sink_dropped: Callable[[], int],
                 frame_report: Callable[[int], object | None] | None = None,
                 counts: Callable[[], dict[str, int]] | None = None,
                 stopped_by: Callable[[], str | None] | None = None,
                 fill: Callable[[], dict | None] | None = None) -> None:
        """frame_report(sequence) -> the display stage's report (index, timestamp, near, far) of
        the sequence-th output frame; latency counts frames in the same order. counts() -> the
        model work so far (``StepCounts.as_dict()``). stopped_by() -> who stopped the run, or None."""
        self.stopped_by = stopped_by
        self.stages = stages
        self.frame_report = frame_report
        self.counts = counts
        self.fill = fill
        self.latency = latency
        self.dropped = dropped
        self.sink_dropped = sink_dropped
        self.started = time.perf_counter()

    def sample(self) -> NodeStats:
        now = time.perf_counter()
        frames_in = self.stages[0].items_in
        frames_out = self.latency.count
        p50, p95 = self.latency.percentiles_ms(now)
        return NodeStats(
            elapsed_s=round(now - self.started, 3),
            # from the frames' own times, not per-sample counts (which flip between 0 and 1 below 1 fps)
            input_fps=round(self.stages[0].arrivals.per_second(now), 2),
            output_fps=round(self.latency.rate.per_second(now), 2),
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
            stopped_by=self.stopped_by() if self.stopped_by is not None else None,
            fill=self.fill() if self.fill is not None else None,
        )

    def _last_frame(self) -> LastFrame | None:
        if self.frame_report is None or not self.latency.count or self.latency.last_s is None:
            return None
        report = self.frame_report(self.latency.count - 1)
        if report is None:
            return None
        return LastFrame(index=report.index, timestamp=round(report.timestamp, 6),
                         latency_ms=round(self.latency.last_s * 1000.0, 1), near=report.near, far=report.far,
                         keyframe=getattr(report, "keyframe", None), depth_age_ms=getattr(report, "depth_age_ms", None))


class StatsJsonWriter:
    """Appends one JSON line per sample to a file, or to stdout for ``-`` (flushed at once, so
    ``tail -f`` and pipes see each line as it comes).

    It is an output like a sink: a line that cannot be written (a full disk, a closed pipe) is
    counted and dropped, the first failure is said once through ``report``, the count at ``close``;
    it never raises, so the stream goes on. Each line goes out in one unbuffered write, so a
    failure never leaves a half line waiting to be glued to the next.
    """

    def __init__(self, path: Path | str, report: Callable[[str], None] | None = None) -> None:
        self.path = Path(path)
        self.report = report or (lambda message: print(message, file=sys.stderr))
        self.written = 0
        self.failed = 0
        self._to_stdout = str(path) == STANDARD_STREAM  # --stats-json -
        self._where = "stdout" if self._to_stdout else str(self.path)
        self._said = False
        self._file = None
        if not self._to_stdout:
            try:
                self._file = self.path.open("ab", buffering=0)
            except OSError as err:
                self._failed(err)

    def write(self, stats: NodeStats) -> None:
        line = stats.as_json() + "\n"
        if self._said and self._to_stdout:  # stdout's reader is gone for good
            self.failed += 1
            return
        try:
            if self._to_stdout:
                sys.stdout.write(line)
                sys.stdout.flush()
                if getattr(sys.stdout, "gone", False):  # rdstream's console guard swallowed EPIPE and said so
                    self._said = True
                    self.failed += 1
                    return
            elif self._file is None:
                raise OSError("not open")
            else:
                data = line.encode("utf-8")
                while data:  # a raw write may take part of the line (a nearly full disk)
                    data = data[self._file.write(data):]
        except OSError as err:
            self._failed(err)
            return
        self.written += 1

    def _failed(self, err: OSError) -> None:
        self.failed += 1
        if self._to_stdout:
            drop_further_writes(sys.stdout)
        if not self._said:
            self._said = True
            self.report(f"--stats-json {self._where}: cannot write ({err.strerror or err}); its lines are "
                        "dropped and counted, the stream goes on")

    def close(self) -> None:
        if self.failed:
            self.report(f"--stats-json {self._where}: {self.failed} of {self.failed + self.written} lines "
                        "were not written")
        if self._file is not None:
            try:
                self._file.close()
            except OSError:
                pass
