"""Several streams, one model: one ``StreamNode`` per stream, their model work batched (``rdstream rig``).

Each stream is a whole node of its own (source, drop policy, window, aligner, display range, sinks);
only its model steps are shared: a ``stream.model.batched_steps.StreamSteps`` per stream sends its encodes
and snippets to one ``stream.model.batcher.Batcher``, whose thread runs each kind from all ready streams
as one call. Isolation:

- a stream whose source ends or fails ends alone (the batcher stops waiting for it, ``retire``);
  an error that escapes a node is kept as that stream's failure, the others go on;
- a sink failure stays in its node (``FanOutStage``);
- the first stop signal (Ctrl-C, SIGTERM, SIGHUP) drains every stream; a second skips the drains
  (every node still closes its sinks, so files stay valid). The rig's watcher is the only one: a
  node acts on what it is told (``StreamNode.stop_signal``).

``rdstream run`` is a rig of one (``named=False``): its lines carry no stream name, its stats lines
are its node's, and a batch of one runs at once (the batcher waits for no other stream).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import anyio

from io_adapters.base import Sink, Source
from stream.model.batched_steps import SharedModelSteps, StreamSteps, WaitingThread
from stream.model.batcher import DEFAULT_MAX_BATCH, DEFAULT_MAX_WAIT_S, Batcher
from stream.stages.display_normalizer import DisplayNormalizer
from stream.stages.live_controls import LiveControls
from stream.node import NodeConfig, NodeResult, StreamNode
from stream.model.rolling_depth_steps import RollingDepthSteps
from stream.control.stop_signals import ignore_further_stops, watch_stop_signals
from stream.stats.stream_stats import NodeStats, StatsJsonWriter


@dataclass
class RigStream:
    """One stream of a rig, opened and ready: its own state, the shared model only through ``state``'s model."""

    name: str
    source: Source
    sinks: list[tuple[str, Sink]]
    state: RollingDepthSteps  # or the oracle's ``OracleSteps`` (``-c oracle:``), which run one stream at a time
    aligner: object
    normalizer: DisplayNormalizer
    config: NodeConfig
    controls: LiveControls | None = None  # OSC and page commands for this stream, or None
    preview: object = None  # the monitor page's ``PreviewTap`` for this stream (stream.monitor), or None


@dataclass
class StreamOutcome:
    """How one stream ended: its node's result, or the error that ended it (``failed``)."""

    name: str
    result: NodeResult | None = None
    error: BaseException | None = None

    @property
    def failed(self) -> bool:
        r = self.result  # None without an error: a second stop signal cut it short (not a failure)
        return self.error is not None or (r is not None and (r.every_sink_failed or r.source_error is not None))


class NamedStats:
    """A stream's ``NodeStats`` with its name first in the JSON line."""

    def __init__(self, name: str, stats: NodeStats) -> None:
        self.name, self.stats = name, stats

    def as_json(self) -> str:
        return json.dumps({"stream": self.name, **asdict(self.stats)}, separators=(",", ":"))


@dataclass
class Rig:
    """Runs ``streams`` against one model until every stream ended or a stop signal.

    max_batch / max_wait_s: the batcher's (``stream.model.batcher``). report(line): warnings, prefixed
    with the stream's name. stats_json: one file (or ``-``) for every stream's lines.
    named: False for ``rdstream run``'s one stream: warnings and failures unprefixed (the caller
    raises a failure), the node's own facts said (``inform``) and its own stats lines.
    """

    streams: list[RigStream]
    max_batch: int = DEFAULT_MAX_BATCH
    max_wait_s: float = DEFAULT_MAX_WAIT_S
    report: Callable[[str], None] = field(default=lambda line: print(line, file=sys.stderr))
    on_stats: Callable[[str, NodeStats], None] | None = None
    stats_json: Path | None = None
    batcher: Batcher | None = None  # None = a new one; or one made earlier (the model loaded on its thread)
    nodes: list[StreamNode] = field(default_factory=list)
    compile: bool = False  # the streams' model is compiled: each processing size is warmed up first
    abandoned: bool = False  # a stop signal came during the compile: the caller must end without waiting
    named: bool = True

    def __post_init__(self) -> None:
        shared = SharedModelSteps([s.state for s in self.streams], compile=self.compile)
        self.shared = shared
        if self.batcher is None:
            self.batcher = Batcher(shared.run_batch, len(self.streams), self.max_batch, self.max_wait_s)
        else:  # made earlier, to load the model on its thread
            self.batcher.run_batch = shared.run_batch
        for index, stream in enumerate(self.streams):
            self.nodes.append(StreamNode(
                stream.source, stream.sinks, StreamSteps(self.batcher, index, stream.state, shared), stream.aligner,
                stream.normalizer, stream.config, report=self._reporter(stream.name) if self.named else self.report,
                on_stats=self._stats_hook(stream.name), model_thread=WaitingThread(), controls=stream.controls,
                inform=None if self.named else self.report, stats_json=None if self.named else self.stats_json))
            self.nodes[-1].display.preview = stream.preview
        self._signals = 0
        self._writer: StatsJsonWriter | None = None

    def _reporter(self, name: str) -> Callable[[str], None]:
        return lambda line: self.report(f"{name}: {line}")

    def _stats_hook(self, name: str):
        def hook(stats: NodeStats) -> None:
            if self._writer is not None:
                self._writer.write(NamedStats(name, stats))
            if self.on_stats is not None:
                self.on_stats(name, stats)
        return hook

    def command(self, name: str | None, command) -> None:
        """An OSC command for stream ``name``, or for every stream (None)."""
        for stream, node in zip(self.streams, self.nodes):
            if name is None or stream.name == name:
                node.command(command)

    def request_stop(self, by: str = "") -> None:
        """Drain and stop every stream; ``by`` says who asked (e.g. 'signal SIGTERM')."""
        for node in self.nodes:
            node.request_stop(by)

    async def run(self, handle_signals: bool = True) -> list[StreamOutcome]:
        self._writer = StatsJsonWriter(self.stats_json, self.report) if self.stats_json and self.named else None
        outcomes = [StreamOutcome(s.name) for s in self.streams]
        try:
            async with anyio.create_task_group() as outer:
                if handle_signals:
                    outer.start_soon(watch_stop_signals, self._on_stop_signal)
                async with anyio.create_task_group() as streams:
                    for index in range(len(self.nodes)):
                        streams.start_soon(self._run_one, index, outcomes[index])
                outer.cancel_scope.cancel()
        finally:
            self.batcher.close(wait=not self.abandoned)
            if self._writer is not None:
                self._writer.close()
            if self._signals:
                ignore_further_stops()
        return outcomes

    async def _run_one(self, index: int, outcome: StreamOutcome) -> None:
        node = self.nodes[index]
        try:
            outcome.result = await node.run()
            if self._writer is not None:  # its last line, so even a short run leaves one per stream
                self._writer.write(NamedStats(outcome.name, node.sampler.sample()))
        except Exception as err:  # this stream's failure, not the rig's: the others go on
            outcome.error = err
            if self.named:
                self.report(f"{outcome.name}: failed: {err}")
        finally:
            self.batcher.retire(index)

    def _on_stop_signal(self, name: str = "a stop signal") -> None:
        """The first stop signal drains every stream; the next one skips the drains (each node acts,
        ``StreamNode.stop_signal``); during the compile the run ends now (``abandoned``)."""
        self._signals += 1
        done = {node.stop_signal(name) for node in self.nodes}
        if "compile" in done:  # nothing to drain yet, and the compile may take minutes: end now
            self.abandoned = True
            self.report(f"stopping (asked by signal {name}): the compile is left unfinished (no frame was "
                        "output yet); closing sinks")
        elif "drain" in done:
            self.report("stopping: draining every stream and closing sinks (Ctrl-C again to skip the drain)" if self.named
                        else f"stopping: draining the pipeline and closing sinks (asked by signal {name}; "
                        "Ctrl-C again to skip the drain)")
