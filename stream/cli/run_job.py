"""``rdstream run``'s job: check the options, load the model, run the node, summarise.

Steps: check every option (before the slow model load) -> load the model -> open the source and
the sinks -> run the node with a live status line -> print a one-line summary. Ctrl-C, SIGTERM
and the end of the source all end the same way: drain, flush, close every sink, exit 0.
The options themselves (names, defaults, help) are in stream.cli.run.
"""


from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import anyio
from rich.console import Console
from rich.live import Live
from rich.text import Text

from io_adapters.output_paths import check_outputs
from io_adapters.registry import check_sink, check_source, open_sink, open_source, parse_uri
from pipeline.checkpoint import TINY_WARNING
from pipeline.errors import BadInputError, RuntimeFailure
from pipeline.preprocess import check_res
from pipeline.presets import LiveQuality, get_preset, live_quality
from pipeline.snippets import SnippetPlan, lookahead_latency_note
from pipeline.tiny_decoder import TINY_DECODER_WARNING, DecoderChoice, resolve_decoder
from stream.cli.run import RunOptions
from stream.display_normalizer import DisplayNormalizer, parse_normalize
from stream.display_stage import LiveControls
from stream.model_thread import ModelThread
from stream.node import NodeConfig, NodeResult, StreamNode, first_user_error
from stream.osc_control import OscControl, OscEndpoint, check_can_listen, check_endpoints_differ, parse_endpoint
from stream.stream_stats import NodeStats

# Sources that deliver frames whether or not the node keeps up: they default to --realtime.
LIVE_SCHEMES = ("ndi", "camera", "syphon")
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
    osc: OscEndpoint | None = None
    osc_status: OscEndpoint | None = None


def check_options(opts: RunOptions) -> CheckedRun:
    """Validate every option up front, each problem with its own message."""
    if not opts.sinks:
        raise BadInputError("give at least one --sink, e.g. --sink file:depth.mp4 or --sink ndi:Depth or --sink null:")
    check_source(opts.source)  # scheme, options, test pattern size
    source = parse_uri(opts.source)
    for uri in opts.sinks:
        check_sink(uri)  # scheme, extension, options, layout
    if opts.lookahead < 0:
        raise BadInputError(f"--lookahead {opts.lookahead}: must be 0 (lowest latency) or more")
    quality = live_quality(opts.quality, fit_decode=opts.fit_decode, decoder=opts.decoder)
    if opts.max_frames < 0:
        raise BadInputError(f"--max-frames {opts.max_frames}: must be 0 (until the source ends) or more")
    normalizer = parse_normalize(opts.normalize)
    preset = get_preset(opts.preset, dilations=opts.dilations, snip_len=opts.snip_len, res=opts.res)
    plan = SnippetPlan(snip_len=preset.snip_len, dilations=tuple(preset.dilations))
    check_res(preset.res)
    check_outputs(opts.sinks, {"--stats-json": opts.stats_json})
    osc = parse_endpoint(opts.osc, "--osc") if opts.osc is not None else None
    if osc is not None:
        check_can_listen(osc)
    osc_status = parse_endpoint(opts.osc_status, "--osc-status") if opts.osc_status is not None else None
    check_endpoints_differ(osc, osc_status)
    drop = opts.realtime if opts.realtime is not None else source.scheme in LIVE_SCHEMES
    decoder = resolve_decoder(quality.decoder)  # may download: still before the model loads
    return CheckedRun(
        plan=plan,
        normalizer=normalizer,
        res=preset.res,
        preset_dtype=preset.dtype,
        drop_frames=drop,
        pace_source=True if opts.realtime else None,
        quality=quality,
        decoder=decoder,
        osc=osc,
        osc_status=osc_status,
    )


def run_stream(opts: RunOptions) -> int:
    """Run the node until the source ends or Ctrl-C/SIGTERM; returns the exit code (0).

    Raises RuntimeFailure (exit 1) when every sink failed, at any moment of the run.
    """
    from pipeline.checkpoint import choose_dtype, load_rolling_depth, resolve_device

    console = Console(stderr=True)
    # 1. Check every option before the (slow) model load.
    checked = check_options(opts)
    note = lookahead_latency_note(opts.lookahead, checked.plan.snip_len, checked.plan.dilations)
    if note:
        console.print(f"rdstream: warning: {note}", highlight=False, markup=False, soft_wrap=True)

    # 2. Load the model, on the thread that will run it (see stream.model_thread).
    device = resolve_device(opts.device)
    dtype = choose_dtype(opts.dtype, checked.preset_dtype, device)
    model_thread = ModelThread()
    try:
        model = model_thread.call(load_rolling_depth, opts.checkpoint, device, dtype, checked.decoder)
        return _open_and_run(opts, checked, model, model_thread, console)
    finally:
        model_thread.close()


def _open_and_run(opts: RunOptions, checked: CheckedRun, model, model_thread: ModelThread, console: Console) -> int:
    from pipeline.coalign import OnlineAligner
    from pipeline.device import prepare_device
    from stream.rolling_depth_steps import RollingDepthSteps

    if model.is_tiny:
        console.print(Text(TINY_WARNING, style="bold red"), soft_wrap=True)
    if model.decoder.is_random:
        console.print(Text(TINY_DECODER_WARNING, style="bold red"), soft_wrap=True)
    quality = checked.quality
    aligner = OnlineAligner.for_plan(checked.plan, opts.lookahead, quality.aligner)
    for note in prepare_device(model.device, model.dtype):
        console.print(f"rdstream: note: {note}", highlight=False, markup=False, soft_wrap=True)
    steps = RollingDepthSteps(model, checked.res, seed=opts.seed, fit_stride=aligner.fit_stride,
                              fit_path=quality.fit_decode, compile=opts.compile,
                              snippets_per_call=range(1, len(checked.plan.dilations) + 1),
                              snippet_length=checked.plan.snip_len,
                              report=lambda line: console.print(line, highlight=False, markup=False, soft_wrap=True))

    # 3. Open the source, then every sink (closing what is open if one fails).
    source = open_source(opts.source, realtime=checked.pace_source)
    sinks: list[tuple[str, object]] = []
    try:
        fps = source.nominal_fps or FALLBACK_FPS
        for uri in opts.sinks:
            sinks.append((uri, open_sink(uri, fps=fps)))
    except BaseException:
        anyio.run(_close_all, source, [s for _, s in sinks])
        raise

    # 4. Run with a live status line (on a terminal) and an optional JSON line per second.
    config = NodeConfig(plan=checked.plan, lookahead=opts.lookahead, drop_frames=checked.drop_frames,
                        max_frames=opts.max_frames or None)
    policy = "realtime (drops frames when the model is slow)" if checked.drop_frames else "every frame (--no-drop)"
    console.print(start_line(opts, checked, model, policy), highlight=False, soft_wrap=True)
    show_status = console.is_terminal if opts.status is None else opts.status
    result = _run_with_status(source, sinks, steps, aligner, checked.normalizer, config, console, show_status,
                              Path(opts.stats_json) if opts.stats_json else None, model_thread,
                              checked.osc, checked.osc_status)
    console.print(summary_line(result), highlight=False, soft_wrap=True)
    if result.every_sink_failed:  # nothing reached any output: the run failed, whatever stopped it
        raise RuntimeFailure("every sink failed: " + "; ".join(f"{uri}: {err}" for uri, err in result.failed_sinks.items()))
    return 0


def _run_with_status(source, sinks, steps, aligner, normalizer, config: NodeConfig, console: Console,
                     show_status: bool, stats_json: Path | None, model_thread: ModelThread,
                     osc: OscEndpoint | None = None, osc_status: OscEndpoint | None = None) -> NodeResult:
    def report(message: str) -> None:
        console.print(f"rdstream: {message}", highlight=False, markup=False, soft_wrap=True)

    # On a terminal the status line rewrites itself; elsewhere (a log file) --status prints a line a second.
    live = Live(Text("starting..."), console=console, refresh_per_second=4, transient=True) \
        if show_status and console.is_terminal else None

    control = OscControl(osc, osc_status, report) if osc is not None or osc_status is not None else None

    def on_stats(stats: NodeStats) -> None:
        if control is not None:
            control.send_status(stats)
        if live is not None:
            live.update(Text(stats.status_text()))
        elif show_status:
            console.print(stats.status_text(), highlight=False, markup=False, soft_wrap=True)

    controls = LiveControls(on_applied=control.acknowledge) if control is not None else None
    node = StreamNode(source, sinks, steps, aligner, normalizer, config, report=report, inform=report, on_stats=on_stats,
                      stats_json=stats_json, model_thread=model_thread, controls=controls)

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


def start_line(opts: RunOptions, checked: CheckedRun, model, policy: str) -> str:
    """The first line of a run: what goes where, and the resolution, precision, decoder and quality in force."""
    quality = checked.quality
    res = f"{checked.res} px" if checked.res else "native size"
    return (f"rdstream run: {opts.source} -> {', '.join(opts.sinks)} | {policy} | preset {opts.preset}: {res}, "
            f"dilations {','.join(map(str, checked.plan.dilations))}, lookahead {opts.lookahead} | "
            f"{model.device.type} {str(model.dtype).removeprefix('torch.')} | decoder {model.decoder.name} | "
            f"quality {quality.name} (aligner {quality.aligner}, fit decode {quality.fit_decode}) | Ctrl-C stops cleanly"
            + (f" | OSC commands on udp {checked.osc}" if checked.osc else "")
            + (f" | OSC status to udp {checked.osc_status}" if checked.osc_status else ""))


def per_frame_counts(result: NodeResult) -> str:
    """Model work per output frame, e.g. '1.00 encodes, 6.00 UNet frame-passes, 2.00 full decodes, 4.00 fit decodes'."""
    if not result.frames_out:
        return "no output frames"
    c = {k: v / result.frames_out for k, v in result.step_counts.items()}
    return (f"{c.get('encodes', 0):.2f} encodes, {c.get('unet_frame_passes', 0):.2f} UNet frame-passes, "
            f"{c.get('decodes_full', 0):.2f} full decodes, {c.get('decodes_fit', 0):.2f} fit decodes")


def summary_line(result: NodeResult) -> str:
    """One line for the end of a run: frames, drops, rate, latency, model work per output frame, sink problems."""
    fps = result.frames_out / result.elapsed_s if result.elapsed_s > 0 else 0.0
    latency = ("-" if result.latency_p50_ms is None
               else f"p50 {result.latency_p50_ms:.0f} ms, p95 {result.latency_p95_ms:.0f} ms")
    failed = [f"{uri} ({error})" for uri, error in result.failed_sinks.items()]
    sink_drops = sum(info["dropped"] for info in result.sinks.values())
    text = (f"{result.end_reason}: {result.frames_in} frames in, {result.frames_out} out "
            f"({result.dropped} dropped by the realtime policy, {sink_drops} by sinks) "
            f"in {result.elapsed_s:.1f} s ({fps:.1f} fps); latency {latency}")
    # a frame received while a stop was under way is not processed (the stop does not wait for it)
    unprocessed = result.frames_in - result.frames_processed - result.dropped
    if unprocessed > 0:
        text += f"; {unprocessed} received after the stop, not processed"
    if result.step_counts and result.frames_out:
        text += f"; per output frame: {per_frame_counts(result)}"
    if failed:
        text += "; failed sinks: " + ", ".join(failed)
    return text


async def _close_all(source, sinks) -> None:
    from stream.calls import call_off_loop

    for thing in [*sinks, source]:
        try:
            await call_off_loop(thing.close)
        except Exception as err:
            print(f"rdstream: closing {thing.uri} failed: {err}", file=sys.stderr)
