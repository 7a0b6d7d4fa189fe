"""``rdstream run``'s job: check the options, load the model, run the node, summarise.

Steps: check every option (before the slow model load) -> load the model -> open the source and
the sinks -> run the node with a live status line -> print a one-line summary. Ctrl-C, SIGTERM
and the end of the source all end the same way: drain, flush, close every sink, exit 0.
The options' names and help are in stream.cli.run, which imports this module (never the reverse);
RunOptions and the checks that need no torch are in stream.cli.run_checks.
"""


from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import anyio
from rich.console import Console
from rich.live import Live
from rich.text import Text

from io_adapters.output_paths import claim_outputs
from io_adapters.registry import open_sink, open_source
from pipeline.errors import BadInputError, RuntimeFailure
from pipeline.presets import LiveQuality, SpeedRung, get_preset, plan_shapes, speed_rung
from pipeline.snippets import SnippetPlan, lookahead_latency_note
from pipeline.tiny_decoder import DecoderChoice, resolve_decoder
from pipeline.tiny_encoder import resolve_encoder
from stream.cli.model_banner import announce_model
from stream.cli.fill_checks import FillSettings
from stream.cli.fill_run import fill_config, fill_policy, oracle_model, oracle_steps
from stream.cli.run_checks import RunOptions, check_basics
from stream.oracle_model import is_oracle
from stream.display_normalizer import DisplayNormalizer
from stream.live_controls import LiveControls
from stream.model_thread import ModelThread
from stream.node import NodeConfig, NodeResult, StreamNode, first_user_error
from stream.monitor.endpoint import MonitorEndpoint, check_can_serve, parse_monitor
from stream.osc_control import OscControl, OscEndpoint, check_can_listen, check_endpoints_differ, parse_endpoint
from stream.stop_signals import end_without_waiting
from stream.stream_stats import NodeStats


# Frame rate declared to sinks when the source has none (e.g. a live source without a rate).
FALLBACK_FPS = 30.0


@dataclass(frozen=True)
class CheckedRun:
    """Everything resolved and checked from RunOptions before anything is opened or loaded;
    the layers below trust it and check nothing again."""

    plan: SnippetPlan
    normalizer: DisplayNormalizer
    res: int
    preset_dtype: str  # the preset's precision for mps/cuda; see choose_dtype
    drop_frames: bool
    pace_source: bool | None
    quality: LiveQuality
    decoder: DecoderChoice
    speed: SpeedRung | None = None
    fill: FillSettings | None = None
    encoder: DecoderChoice = DecoderChoice("full")
    osc: OscEndpoint | None = None
    osc_status: OscEndpoint | None = None
    monitor: MonitorEndpoint | None = None


def check_options(opts: RunOptions) -> CheckedRun:
    """Validate every option up front, each problem with its own message: what needs no torch
    (``check_basics``, also run by ``rdstream run`` before this module loads), then OSC and the decoder."""
    basics = check_basics(opts)
    osc = parse_endpoint(opts.osc, "--osc") if opts.osc is not None else None
    if osc is not None:
        check_can_listen(osc)
    osc_status = parse_endpoint(opts.osc_status, "--osc-status") if opts.osc_status is not None else None
    check_endpoints_differ(osc, osc_status)
    monitor = _check_monitor(opts)
    decoder = resolve_decoder(basics.quality.decoder)  # may download: still before the model loads
    encoder = resolve_encoder(opts.encoder or basics.speed.encoder)
    return CheckedRun(
        plan=basics.plan,
        normalizer=basics.normalizer,
        res=basics.res,
        preset_dtype=basics.preset_dtype,
        drop_frames=basics.drop_frames,
        pace_source=basics.pace_source,
        quality=basics.quality,
        decoder=decoder,
        speed=basics.speed,
        fill=basics.fill,
        encoder=encoder,
        osc=osc,
        osc_status=osc_status,
        monitor=monitor,
    )


def _check_monitor(opts: RunOptions) -> MonitorEndpoint | None:
    """--monitor and --monitor-token: parsed, and the port tried, before the model loads."""
    if opts.monitor is None:
        if opts.monitor_token is not None:
            raise BadInputError("--monitor-token is used only with --monitor [HOST:]PORT")
        return None
    endpoint = parse_monitor(opts.monitor, opts.monitor_token)
    check_can_serve(endpoint)
    return endpoint


def run_stream(opts: RunOptions) -> int:
    """Run the node until the source ends or Ctrl-C/SIGTERM; returns the exit code (0).

    Raises RuntimeFailure (exit 1) when every sink failed, at any moment of the run.
    """
    from pipeline.checkpoint import choose_dtype, load_rolling_depth, resolve_device

    console = Console(stderr=True)
    # 1. Check every option before the (slow) model load.
    checked = check_options(opts)
    note = opts.lookahead_given and lookahead_latency_note(opts.lookahead, checked.plan.snip_len, checked.plan.dilations)
    if note:
        console.print(f"rdstream: warning: {note}", highlight=False, markup=False, soft_wrap=True)

    # 2. Open the source: a missing camera or NDI sender is said now, not after the model load.
    # (Frames are paced from the first one read, so the load does not make a file or test: late.)
    # The output files are held against a second process until the run ends.
    with claim_outputs(opts.sinks, {"--stats-json": opts.stats_json}):
        source = open_source(opts.source, realtime=checked.pace_source)
        try:
            source.wait_until_there()
            # 3. Load the model, on the thread that will run it (see stream.model_thread).
            device = resolve_device(opts.device)
            dtype = choose_dtype(opts.dtype, checked.preset_dtype, device)
            model_thread = ModelThread()
            try:
                if is_oracle(opts.checkpoint):  # the stand-in model (dev and tests): the truth file, no weights
                    model = oracle_model()
                else:
                    model = model_thread.call(load_rolling_depth, opts.checkpoint, device, dtype, checked.decoder,
                                              checked.encoder)
            except BaseException:
                model_thread.close()
                raise
        except BaseException:
            anyio.run(_close_all, source, [])
            raise
        try:
            code = _open_and_run(opts, checked, source, model, model_thread, console)
        finally:
            model_thread.close()  # does not wait for an abandoned compile
    if model_thread.abandoned:  # a stop signal left the compile running: the sinks are closed, locks released
        end_without_waiting(code)
    return code


def _open_and_run(opts: RunOptions, checked: CheckedRun, source, model, model_thread: ModelThread,
                  console: Console) -> int:
    from pipeline.coalign import OnlineAligner
    from pipeline.device import prepare_device
    from stream.rolling_depth_steps import RollingDepthSteps

    mark = announce_model(model, console)
    quality = checked.quality
    for note in prepare_device(model.device, model.dtype):
        console.print(f"rdstream: note: {note}", highlight=False, markup=False, soft_wrap=True)
    # 4. Open every sink (closing what is open, the source too, if anything fails).
    sinks: list[tuple[str, object]] = []
    try:
        aligner = OnlineAligner.for_plan(checked.plan, opts.lookahead, quality.aligner)
        preset_snip_len = get_preset(opts.preset).snip_len
        steps = oracle_steps(opts.checkpoint, checked.res, aligner.fit_stride) if is_oracle(opts.checkpoint) else RollingDepthSteps(model, checked.res, seed=opts.seed, fit_stride=aligner.fit_stride,
                                  fit_path=quality.fit_decode, compile=opts.compile,
                                  **plan_shapes(checked.plan, preset_snip_len, opts.snip_len),
                                  report=lambda line: console.print(line, highlight=False, markup=False,
                                                                    soft_wrap=True))
        fps = source.nominal_fps or FALLBACK_FPS
        for uri in opts.sinks:
            sinks.append((uri, open_sink(uri, fps=fps)))
    except BaseException:
        anyio.run(_close_all, source, [s for _, s in sinks])
        raise

    # 5. Run with a live status line (on a terminal) and an optional JSON line per second.
    config = NodeConfig(plan=checked.plan, lookahead=opts.lookahead, drop_frames=checked.drop_frames,
                        max_frames=opts.max_frames or None, preset_snip_len=preset_snip_len,
                        explicit_snip_len=opts.snip_len,
                        mark=mark, **fill_config(checked.fill, opts.sink_sizes))
    policy = ("realtime (drops frames when the model is slow)" if checked.drop_frames else "every frame (--no-drop)")
    policy += fill_policy(checked.fill)
    started = start_line(opts, checked, model, policy)
    console.print(started, highlight=False, markup=False, soft_wrap=True)
    show_status = console.is_terminal if opts.status is None else opts.status
    result = _run_with_status(source, sinks, steps, aligner, checked.normalizer, config, console, show_status,
                              Path(opts.stats_json) if opts.stats_json else None, model_thread,
                              checked.osc, checked.osc_status, _monitor(checked, started, console))
    console.print(summary_line(result), highlight=False, soft_wrap=True)
    if result.every_sink_failed:  # nothing reached any output: the run failed, whatever stopped it
        raise RuntimeFailure("every sink failed: " + "; ".join(f"{uri}: {err}" for uri, err in result.failed_sinks.items()))
    if result.source_error is not None:  # its frames are in the files; the exit code says the input failed
        raise result.source_error
    return 0


def _run_with_status(source, sinks, steps, aligner, normalizer, config: NodeConfig, console: Console,
                     show_status: bool, stats_json: Path | None, model_thread: ModelThread,
                     osc: OscEndpoint | None = None, osc_status: OscEndpoint | None = None,
                     monitor=None) -> NodeResult:
    def report(message: str) -> None:
        console.print(f"rdstream: {message}", highlight=False, markup=False, soft_wrap=True)
        if monitor is not None:
            monitor.warn(message)

    # On a terminal the status line rewrites itself; elsewhere (a log file) --status prints a line a second.
    live = Live(Text("starting..."), console=console, refresh_per_second=4, transient=True) \
        if show_status and console.is_terminal else None

    control = OscControl(osc, osc_status, report) if osc is not None or osc_status is not None else None

    def on_stats(stats: NodeStats) -> None:
        if control is not None:
            control.send_status(stats)
        if monitor is not None:
            monitor.record_stats(stats)
        if live is not None:
            live.update(Text(stats.status_text()))
        elif show_status:
            console.print(stats.status_text(), highlight=False, markup=False, soft_wrap=True)

    def acknowledge(command, source_index) -> None:
        for listener in (control, monitor):
            if listener is not None:
                listener.acknowledge(command, source_index)

    controls = LiveControls(on_applied=acknowledge) if control is not None or monitor is not None else None
    node = StreamNode(source, sinks, steps, aligner, normalizer, config, report=report, inform=report, on_stats=on_stats,
                      stats_json=stats_json, model_thread=model_thread, controls=controls, monitor=monitor)

    async def run_node() -> NodeResult:
        if control is None or control.listen is None:
            return await node.run()
        try:
            async with anyio.create_task_group() as tg:
                try:
                    await tg.start(control.serve, node.command)
                except BaseException:  # the port was taken during the model load: the node never ran
                    await _close_all(source, [sink for _, sink in sinks])
                    raise
                result = await node.run()
                tg.cancel_scope.cancel()
        except BaseExceptionGroup as group:  # the node's own one-line errors, not a group of them
            raise first_user_error(group) from None
        return result

    if live is None:
        return anyio.run(run_node)
    with live:
        return anyio.run(run_node)


def _monitor(checked: CheckedRun, started: str, console: Console):
    """The run's Monitor (stream.monitor), or None without --monitor; it prints its address once."""
    if checked.monitor is None:
        return None
    from stream.monitor.server import Monitor

    return Monitor(checked.monitor, settings=started,
                   announce=lambda line: console.print(f"rdstream: {line}", highlight=False, markup=False,
                                                       soft_wrap=True))


def start_line(opts: RunOptions, checked: CheckedRun, model, policy: str) -> str:
    """The first lines of a run, each short: what goes where, then the resolution, precision,
    decoder, quality and controls in force."""
    from pipeline.checkpoint import device_label

    quality = checked.quality
    res = f"{checked.res} px" if checked.res else "native size"
    lines = [
        f"rdstream run: {opts.source} -> {', '.join(opts.sinks)}",
        f"  {policy}",
        f"  preset {opts.preset}: {res}, dilations {','.join(map(str, checked.plan.dilations))}, lookahead {opts.lookahead}",
        f"  {device_label(model.device)} {str(model.dtype).removeprefix('torch.')}, decoder {model.decoder.name}, "
        f"quality {quality.name} (aligner {quality.aligner}, fit decode {quality.fit_decode})",
    ]
    if checked.osc:
        lines.append(f"  OSC commands on udp {checked.osc}")
    if checked.osc_status:
        lines.append(f"  OSC status to udp {checked.osc_status}")
    lines.extend(f"  {speed_text(checked)}".splitlines())
    lines.append("  Ctrl-C stops cleanly")
    return "\n".join(lines)


def speed_text(checked: CheckedRun) -> str:
    """The rung in force and what it trades, on two short lines, e.g.
    'speed stride2 (strides 2,2, encoder full, 3 UNet frame-passes per frame)' / '  trades ...'."""
    speed = checked.speed or speed_rung("standard")
    return (f"speed {speed.name} (strides {','.join(map(str, checked.plan.strides))}, encoder {checked.encoder.name}, "
            f"{checked.plan.unet_passes_per_frame():g} UNet frame-passes per frame)\n  trades {speed.trades}")


def per_frame_counts(result: NodeResult) -> str:
    """Model work per output frame, e.g. '1.00 encodes, 6.00 UNet frame-passes, 2.00 full decodes, 4.00 fit decodes'."""
    if not result.frames_out:
        return "no output frames"
    c = {k: v / result.frames_out for k, v in result.step_counts.items()}
    text = (f"{c.get('encodes', 0):.2f} encodes, {c.get('unet_frame_passes', 0):.2f} UNet frame-passes, "
            f"{c.get('decodes_full', 0):.2f} full decodes")
    # none with --fit-decode full (those frames are full decodes) or with every frame decoded
    return text + (f", {c['decodes_fit']:.2f} fit decodes" if c.get("decodes_fit") else "")


def summary_line(result: NodeResult) -> str:
    """One line for the end of a run, in a user's words first, the model's counts after:
    how it ended and who stopped it, output rate, drops, latency (or, when every frame was
    processed, the time per frame: its latency is queueing), then frames in and out, model work
    per output frame and sink problems. Every part is one entry of ``parts``, so a new figure is
    one more entry."""
    fps = result.frames_out / result.elapsed_s if result.elapsed_s > 0 else 0.0
    sink_drops = sum(info["dropped"] for info in result.sinks.values())
    parts = [f"stopped by {result.stopped_by}"] if result.stopped_by else []
    parts.append(f"{fps:.1f} fps out")
    if result.every_frame:
        per_frame = f"{1000.0 * result.elapsed_s / result.frames_out:.0f} ms per frame" if result.frames_out else "-"
        parts.append(f"every frame processed, {per_frame}")
    else:
        parts.append(f"{result.dropped} before the first depth" if result.fill is not None
                     else f"{result.dropped} dropped to keep up")
        parts.append("latency -" if result.latency_p50_ms is None
                     else f"latency {result.latency_p50_ms:.0f} ms (p95 {result.latency_p95_ms:.0f} ms)")
    if result.fill is not None:  # --fill flow|hold: the model's share and how old its depth was
        age = result.fill["depth_age_p50_ms"]
        parts.append(f"{result.fill['keyframes']} keyframes from the model"
                     + ("" if age is None else f", keyframe depth age p50 {age:.0f} ms"))
    if sink_drops:
        parts.append(f"{sink_drops} dropped by slow sinks")
    parts.append(f"{result.frames_in} frames in, {result.frames_out} out in {result.elapsed_s:.1f} s")
    # a frame received while a stop was under way is not processed (the stop does not wait for it)
    unprocessed = result.frames_in - result.frames_processed - result.dropped
    if unprocessed > 0:
        parts.append(f"{unprocessed} received after the stop, not processed")
    if result.step_counts and result.frames_out:
        parts.append(f"per output frame: {per_frame_counts(result)}")
    failed = [f"{uri} ({error})" for uri, error in result.failed_sinks.items()]
    if failed:
        parts.append("failed sinks: " + ", ".join(failed))
    return f"{result.end_reason}: " + "; ".join(parts)


async def _close_all(source, sinks) -> None:
    from stream.calls import call_off_loop

    for thing in [*sinks, source]:
        try:
            await call_off_loop(thing.close)
        except Exception as err:
            print(f"rdstream: closing {thing.uri} failed: {err}", file=sys.stderr)
