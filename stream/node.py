"""The streaming node: capture -> encode -> snippets -> align -> display -> sinks (docs/method.md, section 8).

Every stage is a task joined to the next by a bounded anyio memory stream. Model work (on one
dedicated thread) and the aligner run off the event loop, so it keeps receiving frames. The node stops
when the source ends, or on Ctrl-C / SIGTERM / SIGHUP (``stop_signal``, told by the rig's watcher,
``stream.rig``; ``rdstream run`` is a rig of one): capture sends ``StreamEnd``, each stage drains
and flushes, the sinks are closed (files stay valid) and ``run`` returns a ``NodeResult``. A second
stop signal abandons the drain (frames still in the pipeline are not written; the sinks
are still closed); from then on the process ignores stop signals, so that none can cut a file's
close short or turn the normal end into a death by signal.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path

import anyio

from io_adapters.base import Sink, Source
from stream.stages.display_normalizer import DisplayNormalizer
from pipeline.errors import RollingDepthError
from pipeline.presets import rung_plan_options, speed_rung
from pipeline.snippets import SnippetPlan
from stream.stages.align_stage import AlignStage, StreamAligner
from stream.stages.calls import call_off_loop
from stream.stages.capture_stage import CaptureStage
from stream.model.depth_steps import DepthSteps, StepCounts
from stream.stages.display_stage import DisplayStage
from stream.stages.encode_stage import EncodeStage
from stream.stages.fill_stage import FILL_QUEUE_SIZE, FillStage, make_carrier
from stream.stats.fill_stats import FillStats
from stream.stages.keyframe_gate import KeyframeGate
from stream.stages.live_controls import LiveControls
from stream.stages.messages import NodeCommand
from stream.model.model_thread import ModelThread
from stream.stages.fanout_stage import FanOutStage, SinkSlot, close_sinks
from stream.stages.snippet_stage import SnippetStage
from stream.stages.stage import DEFAULT_QUEUE_SIZE, Stage, make_link
from stream.stats.stream_stats import LatencyTracker, NodeStats, StatsJsonWriter, StatsSampler


@dataclass(frozen=True)
class NodeConfig:
    """How the node runs.

    plan: snippet length and dilations (counted in processed frames).
    lookahead: frames of delay before a frame is emitted (0 = lowest latency).
    drop_frames: newest-wins drop policy (``--realtime``); False processes every frame.
    queue_size: items waiting between two stages.
    stats_interval_s: how often the status line and ``--stats-json`` update.
    max_frames: stop after this many received frames (None = until the source ends).
    preset_snip_len, explicit_snip_len: the preset's snippet length and ``--snip-len`` (None = not
        given), for the plans of ``/rdstream/speed`` (``pipeline.presets.rung_plan_options``).
    mark: text burnt into every colour output (``DepthFrame.mark``), e.g. ``RANDOM_MODEL_MARK``.
    fill: ``drop`` (one output per model frame, as before), ``flow`` or ``hold`` (one output per
        source frame, ``stream.stages.fill_stage``; only with ``drop_frames``).
    model_fps, idle_fps: keyframe caps (``stream.stages.keyframe_gate``; only with ``drop_frames``), None = none.
    sink_sizes: per sink (in order), the size its depth is resized to: "source", (width, height) or
        None = the processing size (``io_adapters.output_size``); missing entries are None.
    """

    plan: SnippetPlan = field(default_factory=SnippetPlan)
    lookahead: int = 0
    drop_frames: bool = False
    queue_size: int = DEFAULT_QUEUE_SIZE
    stats_interval_s: float = 1.0
    max_frames: int | None = None
    preset_snip_len: int = 3
    explicit_snip_len: int | None = None
    mark: str | None = None
    fill: str = "drop"
    model_fps: float | None = None
    idle_fps: float | None = None
    sink_sizes: tuple = ()

    @property
    def fills(self) -> bool:
        """True when every source frame goes out (``--fill flow|hold`` under ``--realtime``)."""
        return self.drop_frames and self.fill in ("flow", "hold")


@dataclass(frozen=True)
class NodeResult:
    """What a finished run did. ``end_reason``: 'source ended', 'source failed', 'interrupted',
    'interrupted, drain skipped' (a second stop signal) or 'max frames reached'.

    frames_in: received from the source; frames_processed: kept by the drop policy; frames_out:
    delivered to the sinks; lost: kept but never covered by a snippet (0 in normal runs).
    """

    end_reason: str
    frames_in: int
    frames_processed: int
    frames_out: int
    dropped: int
    lost: int
    elapsed_s: float
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    latency_max_ms: float
    step_counts: dict
    sinks: dict[str, dict]
    stages: dict[str, dict]
    source_error: RollingDepthError | None = None  # why the source failed ('source failed'), after its frames were drained
    stopped_by: str | None = None  # who stopped the run ('signal SIGINT', 'OSC from HOST:PORT', 'monitor page from HOST')
    every_frame: bool = False  # --no-drop: frames wait in the queue, so the latency says little; the rate says all
    fill: dict | None = None  # with --fill flow|hold: stream.stats.fill_stats.FillStats.summary()

    @property
    def failed_sinks(self) -> dict[str, str]:
        """URI -> error of every sink that failed at any moment (a frame or its close)."""
        return {uri: info["error"] for uri, info in self.sinks.items() if info["error"]}

    @property
    def every_sink_failed(self) -> bool:
        return bool(self.sinks) and len(self.failed_sinks) == len(self.sinks)


class StreamNode:
    """One run of the node between one source and one or more sinks.

    source: an ``io_adapters.base.Source`` (``recv()`` -> VideoFrame, EndOfStream at the end).
    sinks: (uri, ``io_adapters.base.Sink``) pairs.
    model_thread: where model calls run (pass the one the model was loaded on); None = a new one.
    report: warnings and failures (one line each); inform: facts worth one line, such as the input
        and processing sizes of the first frame (None = not said).
    monitor: a ``stream.monitor.server.Monitor`` served as one more task of the run (None = none).
    The node closes the source and every sink whatever happens.
    """

    def __init__(self, source: Source, sinks: list[tuple[str, Sink]], steps: DepthSteps, aligner: StreamAligner,
                 normalizer: DisplayNormalizer, config: NodeConfig,
                 report: Callable[[str], None] | None = None,
                 on_stats: Callable[[NodeStats], None] | None = None,
                 stats_json: Path | None = None, model_thread: ModelThread | None = None,
                 controls: LiveControls | None = None, inform: Callable[[str], None] | None = None,
                 monitor=None) -> None:
        self.source = source
        sizes = list(config.sink_sizes) + [None] * (len(sinks) - len(config.sink_sizes))
        self.sink_slots = [SinkSlot(uri, sink, size=size) for (uri, sink), size in zip(sinks, sizes)]
        self.steps = steps
        self.config = config
        self.report = report or (lambda msg: print(msg, file=sys.stderr))
        self.inform = inform
        self.on_stats = on_stats
        self.stats_json = stats_json
        self.stop = anyio.Event()
        self.latency = LatencyTracker()
        # Every model call on one thread, best the one the model was loaded on; the aligner on its
        # own, single-threaded for torch (see stream.model.model_thread for why).
        self._owns_model_thread = model_thread is None
        self.model_thread = model_thread or ModelThread()
        self.align_thread = ModelThread("rdstream-align", torch_threads=1)
        # The colour input travels to the sinks only when one of them shows it (rgbd layouts).
        self.controls = controls
        self.display = DisplayStage(normalizer, keep_colour=any(slot.sink.wants_colour for slot in self.sink_slots),
                                    controls=controls, mark=config.mark)
        # The stages in data-flow order, each also reachable by name.
        self.capture = CaptureStage(source, self.stop, drop_frames=config.drop_frames,
                                    max_frames=config.max_frames)
        # the idle rule waits for the first snippet's frames: a still picture gets its first depth at once
        gate = KeyframeGate(config.model_fps, config.idle_fps, warm_up=config.plan.snip_len)
        if config.drop_frames and gate.active:
            self.capture.gate = gate
        self.fill = (FillStage(make_carrier(config.fill), self.report, model_took=self.capture.handed_on)
                     if config.fills else None)
        self.align = AlignStage(aligner, config.lookahead, config.plan.snip_len, self.align_thread)
        self.snippets = SnippetStage(steps, config.plan, self.model_thread, config.lookahead, report=self.report,
                                     on_applied=controls.applied if controls is not None else None)
        self.stages: list[Stage] = [
            self.capture,
            EncodeStage(steps, self.model_thread, inform),
            self.snippets,
            self.align,
            *([self.fill] if self.fill is not None else []),
            self.display,
            FanOutStage(self.sink_slots, self.latency, self.report, lossless=not config.drop_frames,
                        source_size=lambda: self.capture.frame_size),
        ]
        self.fill_stats = FillStats(self.capture, self.fill)
        self.sampler = StatsSampler([s.metrics for s in self.stages], self.latency,
                                    dropped=self.not_sent,
                                    fill=self.fill_stats.sample,
                                    sink_dropped=lambda: sum(s.dropped for s in self.sink_slots),
                                    counts=lambda: self.steps.counts.as_dict(),
                                    frame_report=self.display.report_for,
                                    stopped_by=lambda: self.stopped_by)
        self._interrupts = 0
        self.stopped_by: str | None = None  # the first stop's sender, in words
        self._drain_skipped = False  # a second stop signal cut the drain short
        self._compile_cut = False  # a stop signal came during the compile before the first frame
        self._cut = False  # the run ends now, without draining (``stop_signal``)
        self._scope: anyio.CancelScope | None = None
        self.monitor = monitor
        if monitor is not None:
            self.display.preview = monitor.preview

    def request_stop(self, by: str = "") -> None:
        """Stop receiving and drain (what Ctrl-C and SIGTERM do); safe to call more than once.
        ``by``: who asked, in words ('signal SIGTERM', 'OSC from 127.0.0.1:50000'); the first one
        is kept (``stopped_by``: stats, summary, monitor page)."""
        self._interrupts += 1
        if self.stopped_by is None:
            self.stopped_by = by or "a stop request"
        self.stop.set()

    def command(self, command: NodeCommand) -> None:
        """The command hook (OSC, the monitor page): ``stop`` acts now, the rest from the next output frame."""
        if command.kind == "stop":
            first = self.stopped_by is None
            self.request_stop(command.origin or "a stop command")
            if first and self.inform is not None:  # a signal says so in _on_stop_signal; a command here
                self.inform(f"stopping: draining the pipeline and closing sinks (asked by {self.stopped_by})")
            if self.controls is not None:
                self.controls.applied(command, None)
        elif command.kind == "speed":
            self.snippets.change_plan(self.plan_for_speed(command.args[0]), command)
        elif self.controls is not None:
            self.controls.submit(command)
        else:
            raise RuntimeError("this node was built without live controls")

    def plan_for_speed(self, name: str) -> SnippetPlan:
        """The snippet plan of rung ``name`` for this run's dilations (its encoder and decoder stay as loaded)."""
        plan = self.config.plan
        snip_len, strides = rung_plan_options(speed_rung(name), plan.dilations, self.config.preset_snip_len,
                                              self.config.explicit_snip_len)
        return SnippetPlan(snip_len, plan.dilations, strides)

    async def run(self) -> NodeResult:
        """Run until the source ends or ``request_stop``; raises RollingDepthError on failures."""
        start = time.perf_counter()
        writer = StatsJsonWriter(self.stats_json, self.report) if self.stats_json else None
        try:
            async with anyio.create_task_group() as outer:
                self._scope = outer.cancel_scope
                if self._cut:  # a second stop signal (or one during the compile) came before the run
                    outer.cancel_scope.cancel()
                outer.start_soon(self._report_stats, writer)
                if self.monitor is not None:  # listening before the first frame, or a one-line error
                    await outer.start(self.monitor.serve, self)
                try:
                    await self._run_stages()
                finally:
                    outer.cancel_scope.cancel()
        except BaseExceptionGroup as group:
            raise first_user_error(group) from None
        finally:
            # The signals are the rig's (stream.rig): its watcher still runs while this node closes, so
            # a further Ctrl-C skips the other streams' drains, and this close is shielded from it.
            # (Ignoring SIGINT here, as a lone node once did, lost that Ctrl-C.)
            with anyio.CancelScope(shield=True):
                await close_sinks(self.sink_slots, self.report)
                with suppress(Exception):
                    await call_off_loop(self.source.close)
            self.align_thread.close()
            if self._owns_model_thread:
                self.model_thread.close()
            if writer is not None:
                if self.latency.count or self.capture.metrics.items_in:
                    writer.write(self.sampler.sample())
                writer.close()
        return self._result(time.perf_counter() - start)

    async def _run_stages(self) -> None:
        # stage i sends on link i, stage i+1 receives from it; the first has no input, the last no output
        # Under --realtime no frame waits in a queue while the model works on an older one: a stage
        # takes its next item only when it is free (a rendezvous, size 0) and capture then hands on
        # the newest frame, so latency stays within (lookahead + 2) processing periods (bench.stream (f)).
        # Encode and snippets share the model thread: a frame is handed on only when both are free.
        size = 0 if self.config.drop_frames else self.config.queue_size
        links = [make_link(size) for _ in self.stages[1:]]
        self.capture.free_before_hand_on = [links[0][0], links[1][0]]
        if self.fill is not None:  # every captured frame also goes straight to the fill stage
            self.capture.every_frame, self.fill.frames = make_link(FILL_QUEUE_SIZE)
        receives = [None] + [receive for _, receive in links]
        sends = [send for send, _ in links] + [None]
        async with anyio.create_task_group() as tg:
            for stage, receive, send in zip(self.stages, receives, sends):
                tg.start_soon(stage.run, receive, send)

    def stop_signal(self, name: str) -> str:
        """A stop signal (Ctrl-C, SIGTERM, SIGHUP; ``stream.rig`` watches them): the first drains the
        pipeline, the next skips the drain. During the compile before the first frame (``--compile``)
        there is nothing to drain and the compile may take minutes: the model thread is abandoned and
        the run ends now. Returns what it does: 'drain', 'skip' or 'compile' (the caller says it)."""
        self.request_stop(f"signal {name}")
        if getattr(self.steps, "compiling", False):
            self._compile_cut = True
            self.model_thread.abandon()
        elif self._interrupts == 1:
            return "drain"
        else:
            self._drain_skipped = True
        self._cut = True  # the sinks are still closed (shielded in ``run``), so files stay valid
        if self._scope is not None:
            self._scope.cancel()
        return "compile" if self._compile_cut else "skip"

    async def _report_stats(self, writer: StatsJsonWriter | None) -> None:
        while True:
            await anyio.sleep(self.config.stats_interval_s)
            stats = self.sampler.sample()
            if writer is not None:
                writer.write(stats)
            if self.on_stats is not None:
                self.on_stats(stats)

    def _result(self, elapsed: float) -> NodeResult:
        p50, p95 = self.latency.run_percentiles_ms()
        counts: StepCounts = self.steps.counts
        return NodeResult(
            end_reason=("stopped during the compile" if self._compile_cut
                        else "interrupted, drain skipped" if self._drain_skipped else self.capture.end_reason),
            frames_in=self.capture.metrics.items_in,
            # with --fill every received frame is processed (by the fill stage), keyframes or not
            frames_processed=self.fill.metrics.items_in if self.fill is not None else self.capture.metrics.items_out,
            frames_out=self.latency.count,
            dropped=self.not_sent(),
            lost=self.align.lost,
            elapsed_s=round(elapsed, 3),
            latency_p50_ms=p50,
            latency_p95_ms=p95,
            latency_max_ms=round(self.latency.max_s * 1000.0, 1),
            step_counts=counts.as_dict(),
            sinks={s.uri: {"frames": s.frames, "dropped": s.dropped, "error": s.error} for s in self.sink_slots},
            stages={s.name: s.metrics.snapshot().as_dict() for s in self.stages},
            source_error=self.capture.source_error,
            stopped_by=self.stopped_by,
            every_frame=not self.config.drop_frames,
            fill=self.fill_stats.summary() if self.fill is not None else None,
        )

    def not_sent(self) -> int:
        """Frames dropped on the way: by the realtime policy, or with --fill those before the first depth."""
        return self.fill.before_first_depth if self.fill is not None else self.capture.dropped


def first_user_error(group: BaseExceptionGroup) -> BaseException:
    """The error to show: a RollingDepthError if any, else the first leaf exception."""
    leaves = []

    def walk(exc: BaseException) -> None:
        if isinstance(exc, BaseExceptionGroup):
            for sub in exc.exceptions:
                walk(sub)
        else:
            leaves.append(exc)

    walk(group)
    for exc in leaves:
        if isinstance(exc, RollingDepthError):
            return exc
    return leaves[0]
