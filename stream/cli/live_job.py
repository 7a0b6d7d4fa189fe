"""One live job for 1..N streams: ``rdstream run`` is a rig of one stream, ``rdstream rig`` a rig of N.

Steps: claim every output file -> open each source (a missing camera or NDI sender is said now,
not after the model load; in a rig the line names its stream) -> load the model once, on the
batcher's thread (stream.model.model_thread says why; the ``oracle:`` stand-in too) -> per stream its
steps, aligner and sinks -> run the streams together (stream.rig: one batcher, one signal watcher)
with a status line each -> the caller's summary and exit code. Whatever fails on the way closes
what is open. The lines a user sees are the caller's (stream.cli.run_job, stream.cli.rig_job): this
module only says them.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import anyio
from rich.console import Console
from rich.live import Live
from rich.text import Text

from io_adapters.output_paths import claim_outputs
from io_adapters.registry import open_sink, open_source
from pipeline.errors import RollingDepthError
from pipeline.presets import get_preset, plan_shapes
from pipeline.tiny_decoder import DecoderChoice
from stream.control import early_stop
from stream.model.batcher import DEFAULT_MAX_WAIT_S, Batcher
from stream.cli.fill_run import fill_config, oracle_model, oracle_steps
from stream.cli.live_control import job_monitor, job_osc, sayer
from stream.cli.model_banner import announce_model
from stream.cli.rig_file import RigStreamSpec
from stream.stages.live_controls import LiveControls
from stream.node import NodeConfig, first_user_error
from stream.model.oracle_model import is_oracle
from stream.rig import Rig, RigStream, StreamOutcome
from stream.control.stop_signals import end_without_waiting

# Frame rate declared to sinks when the source has none (e.g. a live source without a rate).
FALLBACK_FPS = 30.0


@dataclass
class LiveJob:
    """A checked live job: per stream its ``RigStreamSpec``, the rest for the whole job.

    single: ``rdstream run``'s one stream: no stream names in its lines, OSC on /rdstream/speed etc.
    (``OscControl``; a rig's is /rdstream/NAME/..., ``RigOscControl``), its own stats lines.
    outputs: the named output files besides the sinks, e.g. {"--stats-json": path}, claimed with them.
    start_lines(model) -> the lines said once the model is loaded; finish(outcomes) -> the exit code
    (it says the summary and raises the run's error).
    monitor: a ``stream.monitor.endpoint.MonitorEndpoint``, or None: one page for every stream.
    """

    streams: list[RigStreamSpec]
    decoder: DecoderChoice
    encoder: DecoderChoice
    start_lines: Callable[[object], str]
    finish: Callable[[list[StreamOutcome]], int]
    single: bool = False
    outputs: dict = field(default_factory=dict)
    stats_json: str | None = None
    compile: bool = False
    max_wait_s: float = DEFAULT_MAX_WAIT_S
    status: bool | None = None
    osc: object = None
    osc_status: object = None
    monitor: object = None


def run_live(job: LiveJob, console: Console) -> int:
    """Run ``job`` until every stream ended or a stop signal; returns ``job.finish``'s exit code."""
    from pipeline.checkpoint import choose_dtype, load_rolling_depth, resolve_device

    first = job.streams[0].options
    with claim_outputs([uri for s in job.streams for uri in s.options.sinks], job.outputs):
        sources = []
        try:
            for stream in job.streams:
                with _naming(job, stream.name):
                    sources.append(open_source(stream.options.source, realtime=stream.basics.pace_source))
                    sources[-1].wait_until_there()
            device = resolve_device(first.device)
            dtype = choose_dtype(first.dtype, job.streams[0].basics.preset_dtype, device)
            batcher = Batcher(None, len(job.streams), max_wait_s=job.max_wait_s)
            try:
                model = batcher.run_on_thread(oracle_model) if is_oracle(first.checkpoint) else \
                    batcher.run_on_thread(load_rolling_depth, first.checkpoint, device, dtype, job.decoder, job.encoder)
            except BaseException:
                batcher.close()
                raise
        except BaseException:
            anyio.run(close_quietly, sources)
            raise
        rig, control, monitor = _open_streams(job, sources, model, batcher, console)
        code = job.finish(_run_with_status(job, rig, control, monitor, console))
    if rig.abandoned:  # a stop during the compile: the sinks are closed; the compile is not waited for
        end_without_waiting(code)
    return code


def _open_streams(job: LiveJob, sources, model, batcher: Batcher, console: Console):
    """Per stream its steps, aligner and sinks; the start lines said -> (the rig, its OSC control or
    None, its monitor or None)."""
    from pipeline.device import prepare_device

    say = sayer(console)
    # a single run's steps say their compile lines as they are, a rig's as its other lines
    steps_say = (lambda line: console.print(line, highlight=False, markup=False, soft_wrap=True)) if job.single else say
    mark = announce_model(model, console)
    for note in prepare_device(model.device, model.dtype):
        say(f"note: {note}")
    compile = job.compile and not is_oracle(job.streams[0].options.checkpoint)
    loaded = model
    if compile:  # one compiled model for every stream; each processing size is warmed up (stream.model.batched_steps)
        from pipeline.compiled import compile_model

        model = compile_model(model, steps_say)
    streams: list[RigStream] = []
    opened: list = []
    try:
        for stream, source in zip(job.streams, sources):
            streams.append(_open_stream(job, stream, source, model, mark, opened, steps_say))
    except BaseException:
        batcher.close()
        anyio.run(close_quietly, [*opened, *sources])
        raise
    started = job.start_lines(loaded)
    console.print(started, highlight=False, markup=False, soft_wrap=True)
    names = None if job.single else [s.name for s in streams]  # a single run's page and OSC name no stream
    monitor = job_monitor(job.monitor, started, names, console)
    say = sayer(console, monitor)
    control, acknowledge = job_osc(job.osc, job.osc_status, names, say, monitor)
    for stream in streams:
        if control is not None or monitor is not None:
            stream.controls = LiveControls(on_applied=lambda command, index, name=stream.name:
                                           acknowledge(name, command, index))
        if monitor is not None:
            stream.preview = monitor.views[stream.name].preview
    rig = Rig(streams, max_wait_s=job.max_wait_s, report=say, stats_json=Path(job.stats_json) if job.stats_json else None,
              batcher=batcher, compile=compile, named=not job.single)
    return rig, control, monitor


def _open_stream(job: LiveJob, stream: RigStreamSpec, source, model, mark, opened: list, say) -> RigStream:
    from pipeline.coalign import OnlineAligner
    from stream.model.rolling_depth_steps import RollingDepthSteps

    basics, options = stream.basics, stream.options
    aligner = OnlineAligner.for_plan(basics.plan, options.lookahead, basics.quality.aligner)
    # the shapes it can send (what --compile warms up): snippets per call and every snippet length
    # /rdstream/speed may switch it to
    preset_snip_len = get_preset(options.preset).snip_len
    if is_oracle(options.checkpoint):
        state = oracle_steps(options.checkpoint, basics.res, aligner.fit_stride)
    else:
        state = RollingDepthSteps(model, basics.res, seed=options.seed, fit_stride=aligner.fit_stride,
                                  fit_path=basics.quality.fit_decode, report=say,
                                  **plan_shapes(basics.plan, preset_snip_len, options.snip_len))
    fps = source.nominal_fps or FALLBACK_FPS
    sinks = []
    for uri in options.sinks:
        with _naming(job, stream.name):
            sinks.append((uri, open_sink(uri, fps=fps)))
        opened.append(sinks[-1][1])
    config = NodeConfig(plan=basics.plan, lookahead=options.lookahead, drop_frames=basics.drop_frames,
                        max_frames=options.max_frames or None, preset_snip_len=preset_snip_len,
                        explicit_snip_len=options.snip_len, mark=mark, **fill_config(basics.fill, options.sink_sizes))
    return RigStream(stream.name, source, sinks, state, aligner, basics.normalizer, config)


def _run_with_status(job: LiveJob, rig: Rig, control, monitor, console: Console) -> list[StreamOutcome]:
    """Run the rig with its OSC control (or None), monitor (or None) and a status line per stream."""
    show_status = console.is_terminal if job.status is None else job.status
    # On a terminal the status lines rewrite themselves; elsewhere (a log) a line (per stream) a second.
    live = Live(Text("starting..."), console=console, refresh_per_second=4, transient=True) \
        if show_status and console.is_terminal else None
    latest: dict[str, str] = {}

    def on_stats(name: str, stats) -> None:
        if control is not None:
            control.send_status(stats) if job.single else control.send_stream_status(name, stats)
        if monitor is not None:
            monitor.record_stats(stats, name)
        line = stats.status_text() if job.single else f"{name}: {stats.status_text()}"
        if live is not None:
            latest[name] = line
            live.update(Text("\n".join(latest[s.name] for s in rig.streams if s.name in latest)))
        elif show_status:
            console.print(line, highlight=False, markup=False, soft_wrap=True)

    rig.on_stats = on_stats

    async def run_all() -> list[StreamOutcome]:
        async with anyio.create_task_group() as tg:
            try:  # listening before the first frame, or a one-line error
                if control is not None and control.listen is not None:
                    await tg.start(control.serve, (lambda command: rig.command(None, command)) if job.single
                                   else rig.command)
                if monitor is not None:
                    await tg.start(monitor.serve, *rig.nodes)
            except BaseException:  # the port was taken during the model load: no stream ran
                rig.batcher.close()
                await close_quietly([*(sink for s in rig.streams for _, sink in s.sinks), *(s.source for s in rig.streams)])
                raise
            outcomes = await rig.run()
            tg.cancel_scope.cancel()
        return outcomes

    try:  # a stop signal before the rig watches them is recorded, not raised in the loop (stream.control.early_stop)
        with early_stop.deferred(), live if live is not None else nullcontext():
            return anyio.run(run_all)
    except BaseExceptionGroup as group:  # the one-line error inside, not a group of them
        raise first_user_error(group) from None


@contextmanager
def _naming(job: LiveJob, name: str):
    """In a rig an error opening a stream's source or sink names the stream."""
    try:
        yield
    except RollingDepthError as err:
        if not job.single:
            err.args = (f"stream {name!r}: {err}",)
        raise


async def close_quietly(things) -> None:
    """Close every source and sink in ``things``; a failure is one line, and the others still close."""
    from stream.stages.calls import call_off_loop

    for thing in things:
        try:
            await call_off_loop(thing.close)
        except Exception as err:
            print(f"rdstream: closing {thing.uri} failed: {err}", file=sys.stderr)
