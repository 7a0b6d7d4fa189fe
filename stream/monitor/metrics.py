"""``/metrics``: the node's counters in the Prometheus text format (prometheus_client).

Nothing is counted twice: at each scrape a collector reads the counters the node keeps anyway
(stage metrics, the latency histogram, sinks, model work), so a scrape costs one pass over a few
dozen numbers and the stream does no extra work between scrapes. Names follow Prometheus'
conventions: the ``rdstream_`` prefix, base units (seconds), ``_total`` for counters.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from stream.stats.stream_stats import NodeStats

# End-to-end latency buckets (seconds): a live node sits between tens of ms and a few seconds.
LATENCY_BUCKETS_S = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0]
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class RigCollector(Collector):
    """Several streams' ``NodeCollector``s as one set of series, each with a ``stream="NAME"`` label
    (a series name appears once, as Prometheus wants): ``streams`` is (name, collector) pairs."""

    def __init__(self, streams: list[tuple[str, Collector]]) -> None:
        self.streams = streams

    def collect(self) -> Iterator:
        merged: dict = {}
        for name, collector in self.streams:
            for family in collector.collect():
                samples = [sample._replace(labels={"stream": name, **sample.labels}) for sample in family.samples]
                if family.name in merged:
                    merged[family.name].samples.extend(samples)
                else:
                    family.samples = samples
                    merged[family.name] = family
        yield from merged.values()


class NodeCollector(Collector):
    """Reads a running ``StreamNode`` (``node``) and its newest stats sample (``latest()``)."""

    def __init__(self, node, latest: Callable[[], NodeStats | None]) -> None:
        self.node = node
        self.latest = latest

    def collect(self) -> Iterator:
        node = self.node
        yield _counter("rdstream_frames_in_total", "frames received from the source", node.capture.metrics.items_in)
        yield _counter("rdstream_frames_out_total", "frames delivered to the sinks", node.latency.count)
        yield _counter("rdstream_frames_dropped_total", "frames dropped by the realtime policy (newest wins); "
                       "with --fill only those before the first depth", node.not_sent())
        yield from _keyframe_metrics(node, self.latest())

        latency = node.latency
        counts = latency.cumulative_counts(LATENCY_BUCKETS_S)
        buckets = [(_le(b), c) for b, c in zip(LATENCY_BUCKETS_S, counts)] + [("+Inf", latency.count)]
        yield HistogramMetricFamily("rdstream_latency_seconds", "end-to-end latency, capture to sinks",
                                    buckets=buckets, sum_value=latency.sum_s)

        busy = CounterMetricFamily("rdstream_stage_busy_seconds", "time each stage spent working", labels=["stage"])
        queued = GaugeMetricFamily("rdstream_stage_queue_items", "items waiting in front of each stage",
                                   labels=["stage"])
        for stage in node.stages:
            busy.add_metric([stage.name], stage.metrics.busy_s)
            queued.add_metric([stage.name], stage.metrics.queue_depth())
        yield busy
        yield queued

        sink_frames = CounterMetricFamily("rdstream_sink_frames", "frames each sink took", labels=["sink"])
        sink_dropped = CounterMetricFamily("rdstream_sink_frames_dropped", "frames a slow sink skipped",
                                           labels=["sink"])
        sink_failed = GaugeMetricFamily("rdstream_sink_failed", "1 once a sink has failed (it gets no more frames)",
                                        labels=["sink"])
        for slot in node.sink_slots:
            sink_frames.add_metric([slot.uri], slot.frames)
            sink_dropped.add_metric([slot.uri], slot.dropped)
            sink_failed.add_metric([slot.uri], 1.0 if slot.error else 0.0)
        yield sink_frames
        yield sink_dropped
        yield sink_failed

        work = CounterMetricFamily("rdstream_model_work", "model calls by kind (encodes, UNet frame passes, decodes)",
                                   labels=["kind"])
        for kind, count in node.steps.counts.as_dict().items():
            work.add_metric([kind], count)
        yield work

        yield GaugeMetricFamily("rdstream_paused", "1 while the picture is held (pause)",
                                value=1.0 if node.display.paused else 0.0)
        stats = self.latest()
        frame = stats.frame if stats is not None else None
        if frame is not None and frame.near is not None:
            yield GaugeMetricFamily("rdstream_display_near", "aligned depth shown as nearest (1)", value=frame.near)
            yield GaugeMetricFamily("rdstream_display_far", "aligned depth shown as farthest (0)", value=frame.far)


def _keyframe_metrics(node, stats: NodeStats | None) -> Iterator:
    """With --fill or a keyframe cap: frames the model took, frames held back from it by reason, and
    the keyframe depth age of recent output frames (``stream.stats.fill_stats``)."""
    if not node.fill_stats.active:
        return
    yield _counter("rdstream_keyframes_total", "frames the model took (keyframes)", node.capture.metrics.items_out)
    skips = CounterMetricFamily("rdstream_keyframe_skips", "frames held back from the model, by reason",
                                labels=["reason"])
    gate = node.capture.gate
    for reason, count in (gate.skips.items() if gate is not None else ()):
        skips.add_metric([reason], count)
    yield skips
    fill = stats.fill if stats is not None else None
    if fill and fill.get("depth_age_p50_ms") is not None:
        yield GaugeMetricFamily("rdstream_depth_age_seconds", "how much older the model depth of recent output "
                                "frames is than their colour (median; 0 for keyframes)",
                                value=fill["depth_age_p50_ms"] / 1000.0)


def _counter(name: str, doc: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name.removesuffix("_total"), doc, value=value)


def _le(bound: float) -> str:
    return repr(float(bound))


def metrics_registry(node, latest: Callable[[], NodeStats | None]) -> CollectorRegistry:
    """A registry of its own (not the process-wide default) holding only the node's collector."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(NodeCollector(node, latest))
    return registry


def rig_metrics_registry(streams: list[tuple[str, object, Callable[[], NodeStats | None]]]) -> CollectorRegistry:
    """As ``metrics_registry`` for a rig's (name, node, latest) streams: every series labelled ``stream``."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(RigCollector([(name, NodeCollector(node, latest)) for name, node, latest in streams]))
    return registry


def metrics_text(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)
