"""``rdstream rig``'s job: claim the outputs, open every source, load the model once, run the rig.

Steps as ``rdstream run`` (stream.cli.run_job), for every stream of a checked ``RigSpec``: claim every
output file -> open each source -> load the model on the batcher's thread -> per stream its state,
aligner and sinks -> run the streams together (stream.rig) -> one summary line per stream. The exit
code is 1 when any stream failed (its source failed, every sink of it failed, or an error ended it),
after every other stream has finished.
"""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path

import anyio
from rich.console import Console
from rich.live import Live
from rich.text import Text

from io_adapters.output_paths import claim_outputs
from io_adapters.registry import open_sink, open_source
from pipeline.errors import RollingDepthError, RuntimeFailure
from pipeline.presets import get_preset, plan_shapes
from pipeline.tiny_decoder import resolve_decoder
from pipeline.tiny_encoder import resolve_encoder
from stream.batcher import Batcher
from stream.cli.model_banner import announce_model
from stream.cli.rig_file import RigSpec, RigStreamSpec, rig_autoencoders
from stream.cli.run_job import FALLBACK_FPS, _close_all, summary_line
from stream.cli.fill_run import fill_config
from stream.node import NodeConfig
from stream.rig import Rig, RigStream, StreamOutcome
from stream.stop_signals import end_without_waiting


def run_rig(spec: RigSpec) -> int:
    from pipeline.checkpoint import choose_dtype, load_rolling_depth, resolve_device

    console = Console(stderr=True)

    def say(line: str) -> None:
        console.print(f"rdstream: {line}", highlight=False, markup=False, soft_wrap=True)

    first = spec.streams[0]
    decoder_name, encoder_name = rig_autoencoders(spec)  # one model, so one decoder and encoder for every stream
    decoder, encoder = resolve_decoder(decoder_name), resolve_encoder(encoder_name)
    all_sinks = [uri for s in spec.streams for uri in s.options.sinks]
    with ExitStack() as held:
        held.enter_context(claim_outputs(all_sinks, {"[rig] stats_json": spec.stats_json}))
        sources = []
        try:
            for stream in spec.streams:
                try:
                    source = open_source(stream.options.source, realtime=stream.basics.pace_source)
                    sources.append(source)
                    source.wait_until_there()
                except RollingDepthError as err:
                    err.args = (f"stream {stream.name!r}: {err}",)
                    raise
            device = resolve_device(first.options.device)
            dtype = choose_dtype(first.options.dtype, first.basics.preset_dtype, device)
            # the model loads on the thread that will run it (see stream.model_thread)
            batcher = Batcher(None, len(spec.streams), max_wait_s=spec.max_wait_s)
            try:
                model = batcher.run_on_thread(load_rolling_depth, first.options.checkpoint, device, dtype,
                                              decoder, encoder)
            except BaseException:
                batcher.close()
                raise
        except BaseException:
            anyio.run(_close_everything, sources, [])
            raise
        return _open_and_run(spec, sources, model, batcher, console, say)


def _open_and_run(spec: RigSpec, sources, model, batcher: Batcher, console: Console, say) -> int:
    from pipeline.checkpoint import device_label
    from pipeline.coalign import OnlineAligner
    from stream.rolling_depth_steps import RollingDepthSteps

    mark = announce_model(model, console)
    compile = bool(spec.model.get("compile"))
    if compile:  # one compiled model for every stream; each processing size is warmed up (stream.batched_steps)
        from pipeline.compiled import compile_model

        model = compile_model(model, say)
    streams: list[RigStream] = []
    opened: list = []
    try:
        for stream, source in zip(spec.streams, sources):
            streams.append(_open_stream(stream, source, model, mark, opened, OnlineAligner, RollingDepthSteps, say))
    except BaseException:
        batcher.close()
        anyio.run(_close_everything, sources, opened)
        raise
    lines = [f"rdstream rig: {spec.path}: {len(streams)} streams, one model ({device_label(model.device)} "
             f"{str(model.dtype).removeprefix('torch.')}, decoder {model.decoder.name}); Ctrl-C stops all"]
    for stream in spec.streams:
        policy = "realtime" if stream.basics.drop_frames else "every frame"
        fill = stream.basics.fill
        if fill is not None and fill.realtime and fill.fill != "drop":
            policy += f", every frame out (--fill {fill.fill})"
        lines.append(f"  {stream.name}: {stream.options.source} -> {', '.join(stream.options.sinks)} ({policy}, "
                     f"lookahead {stream.options.lookahead}, quality {stream.options.quality}, speed {stream.options.speed}: "
                     f"strides {','.join(map(str, stream.basics.plan.strides))}, snippets of {stream.basics.plan.snip_len}, "
                     f"fit decode {stream.basics.quality.fit_decode})")
    console.print("\n".join(lines), highlight=False, markup=False, soft_wrap=True)

    show_status = console.is_terminal if spec.status is None else spec.status
    control = None
    if spec.osc is not None or spec.osc_status is not None:
        from stream.live_controls import LiveControls
        from stream.rig_osc import RigOscControl

        control = RigOscControl([s.name for s in streams], spec.osc, spec.osc_status, say)
        for stream in streams:
            stream.controls = LiveControls(
                on_applied=lambda command, index, name=stream.name: control.acknowledge_stream(name, command, index))

    # On a terminal one line per stream rewrites itself; elsewhere (a log) a line per stream a second.
    live = Live(Text("starting..."), console=console, refresh_per_second=4, transient=True) \
        if show_status and console.is_terminal else None
    latest: dict[str, str] = {}

    def on_stats(name: str, stats) -> None:
        if control is not None:
            control.send_stream_status(name, stats)
        line = f"{name}: {stats.status_text()}"
        if live is not None:
            latest[name] = line
            live.update(Text("\n".join(latest[s.name] for s in streams if s.name in latest)))
        elif show_status:
            console.print(line, highlight=False, markup=False, soft_wrap=True)

    rig = Rig(streams, max_wait_s=spec.max_wait_s, report=say, on_stats=on_stats,
              stats_json=Path(spec.stats_json) if spec.stats_json else None, batcher=batcher, compile=compile)

    async def run_all():
        if control is None or control.listen is None:
            return await rig.run()
        async with anyio.create_task_group() as tg:
            try:
                await tg.start(control.serve, rig.command)
            except BaseException:  # the port was taken during the model load: no stream ran
                rig.batcher.close()
                await _close_everything(sources, [sink for s in streams for _, sink in s.sinks])
                raise
            outcomes = await rig.run()
            tg.cancel_scope.cancel()
        return outcomes

    try:
        if live is None:
            outcomes = anyio.run(run_all)
        else:
            with live:
                outcomes = anyio.run(run_all)
    except BaseExceptionGroup as group:  # the one-line error inside, not a group of them
        from stream.node import first_user_error

        raise first_user_error(group) from None
    for outcome in outcomes:
        console.print(f"rdstream rig: {outcome.name}: {_outcome_text(outcome)}", highlight=False, markup=False,
                      soft_wrap=True)
    if rig.abandoned:  # a stop during the compile: the sinks are closed; the compile is not waited for
        end_without_waiting(0)
    failed = [o for o in outcomes if o.failed]
    if failed:
        raise RuntimeFailure(f"{len(failed)} of {len(outcomes)} streams failed: "
                             + "; ".join(f"{o.name}: {_why(o)}" for o in failed))
    return 0


def _open_stream(stream: RigStreamSpec, source, model, mark, opened: list, OnlineAligner, RollingDepthSteps,
                 say) -> RigStream:
    basics, options = stream.basics, stream.options
    aligner = OnlineAligner.for_plan(basics.plan, options.lookahead, basics.quality.aligner)
    # the shapes it can send (what a rig's --compile warms up): snippets per call and every snippet
    # length /rdstream/speed may switch it to
    preset_snip_len = get_preset(options.preset).snip_len
    state = RollingDepthSteps(model, basics.res, seed=options.seed, fit_stride=aligner.fit_stride,
                              fit_path=basics.quality.fit_decode,
                              **plan_shapes(basics.plan, preset_snip_len, options.snip_len), report=say)
    fps = source.nominal_fps or FALLBACK_FPS
    sinks = []
    for uri in options.sinks:
        try:
            sink = open_sink(uri, fps=fps)
        except RollingDepthError as err:
            err.args = (f"stream {stream.name!r}: {err}",)
            raise
        sinks.append((uri, sink))
        opened.append(sink)
    config = NodeConfig(plan=basics.plan, lookahead=options.lookahead, drop_frames=basics.drop_frames,
                        max_frames=options.max_frames or None, preset_snip_len=preset_snip_len,
                        explicit_snip_len=options.snip_len, mark=mark, **fill_config(basics.fill, options.sink_sizes))
    return RigStream(stream.name, source, sinks, state, aligner, basics.normalizer, config)


async def _close_everything(sources, sinks) -> None:
    for source in sources:
        await _close_all(source, [])
    await _close_all_sinks(sinks)


async def _close_all_sinks(sinks) -> None:
    from stream.calls import call_off_loop

    for sink in sinks:
        try:
            await call_off_loop(sink.close)
        except Exception:
            pass


def _outcome_text(outcome: StreamOutcome) -> str:
    if outcome.result is None:
        return f"failed: {outcome.error}" if outcome.error is not None else "interrupted, drain skipped"
    return summary_line(outcome.result)


def _why(outcome: StreamOutcome) -> str:
    if outcome.error is not None:
        return str(outcome.error)
    result = outcome.result
    if result.source_error is not None:
        return f"source failed: {result.source_error}"
    return "every sink failed: " + "; ".join(f"{uri}: {err}" for uri, err in result.failed_sinks.items())
