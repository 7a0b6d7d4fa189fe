"""``rdstream run``: the live node between one source and one or more sinks.

Steps: check every option (before the slow model load) -> load the model -> open the source and
the sinks -> run the node with a live status line -> print a one-line summary. Ctrl-C, SIGTERM
and the end of the source all end the same way: drain, flush, close every sink, exit 0.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import anyio
from rich.console import Console
from rich.live import Live
from rich.text import Text

from io_adapters.registry import SINK_EXAMPLES, SOURCE_EXAMPLES, open_sink, open_source, parse_uri
from io_adapters.uri import unknown_scheme_error
from pipeline.coalign_quality import QUALITIES
from pipeline.display_normalizer import parse_normalize
from pipeline.errors import BadInputError
from pipeline.preprocess import check_res
from pipeline.presets import get_preset
from pipeline.snippets import check_snippet_options, lookahead_latency_note
from pipeline.tiny_checkpoint import TINY_WARNING
from stream.depth_steps import SnippetPlan
from stream.model_thread import ModelThread
from stream.node import NodeConfig, NodeResult, StreamNode
from stream.stream_stats import NodeStats

# Sources that deliver frames whether or not the node keeps up: they default to --realtime.
LIVE_SCHEMES = ("ndi", "camera", "syphon")
# Frame rate declared to sinks when the source has none (e.g. a live source without a rate).
FALLBACK_FPS = 30.0


@dataclass
class RunOptions:
    """The command line of ``rdstream run``; None means "take the preset's value" or the default.

    realtime: True = drop frames when the model is slow (newest wins) and pace files to their
        frame rate; False = process every frame (``--no-drop``); None = realtime for live sources
        (ndi, camera, syphon), every frame for files and test patterns.
    max_frames: stop after this many source frames (0 = until the source ends).
    status: live status line; None = only on a terminal.
    """

    source: str
    sinks: list[str]
    checkpoint: str
    preset: str = "fast"
    quality: str = "fast"
    res: int | None = None
    dtype: str | None = None
    device: str = "auto"
    lookahead: int = 2
    realtime: bool | None = None
    normalize: str = "running"
    stats_json: str | None = None
    seed: int | None = None
    dilations: list[int] | None = None
    snip_len: int | None = None
    max_frames: int = 0
    status: bool | None = None


@dataclass(frozen=True)
class CheckedRun:
    """Everything resolved from RunOptions before anything is opened or loaded."""

    plan: SnippetPlan
    res: int
    preset_dtype: str  # the preset's precision for mps/cuda; see choose_dtype
    drop_frames: bool
    pace_source: bool | None


def check_options(opts: RunOptions) -> CheckedRun:
    """Validate every option up front, each problem with its own message."""
    if not opts.sinks:
        raise BadInputError("give at least one --sink, e.g. --sink file:depth.mp4 or --sink ndi:Depth or --sink null:")
    source = parse_uri(opts.source)
    if source.scheme not in SOURCE_EXAMPLES:
        raise unknown_scheme_error(source, "source", SOURCE_EXAMPLES)
    for uri in opts.sinks:
        sink = parse_uri(uri)
        if sink.scheme not in SINK_EXAMPLES:
            raise unknown_scheme_error(sink, "sink", SINK_EXAMPLES)
    if opts.lookahead < 0:
        raise BadInputError(f"--lookahead {opts.lookahead}: must be 0 (lowest latency) or more")
    if opts.quality not in QUALITIES:
        raise BadInputError(f"--quality {opts.quality}: use one of {', '.join(QUALITIES)}")
    if opts.max_frames < 0:
        raise BadInputError(f"--max-frames {opts.max_frames}: must be 0 (until the source ends) or more")
    parse_normalize(opts.normalize)
    preset = get_preset(opts.preset, dilations=opts.dilations, snip_len=opts.snip_len, res=opts.res)
    check_snippet_options(preset.snip_len, preset.dilations)
    check_res(preset.res)
    if opts.stats_json is not None:
        folder = Path(opts.stats_json).expanduser().resolve().parent
        if not folder.is_dir():
            raise BadInputError(f"--stats-json {opts.stats_json}: folder {folder} does not exist")
    drop = opts.realtime if opts.realtime is not None else source.scheme in LIVE_SCHEMES
    return CheckedRun(
        plan=SnippetPlan(snip_len=preset.snip_len, dilations=tuple(sorted(set(preset.dilations)))),
        res=preset.res,
        preset_dtype=preset.dtype,
        drop_frames=drop,
        pace_source=True if opts.realtime else None,
    )


def run_stream(opts: RunOptions) -> int:
    """Run the node until the source ends or Ctrl-C/SIGTERM; returns the exit code (0)."""
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
        model = model_thread.call(load_rolling_depth, opts.checkpoint, device, dtype)
        return _open_and_run(opts, checked, model, model_thread, console)
    finally:
        model_thread.close()


def _open_and_run(opts: RunOptions, checked: CheckedRun, model, model_thread: ModelThread, console: Console) -> int:
    from pipeline.online_aligner import OnlineAligner, window_frames
    from stream.rolling_depth_steps import RollingDepthSteps

    normalizer = parse_normalize(opts.normalize)
    if model.is_tiny:
        console.print(Text(TINY_WARNING, style="bold red"), soft_wrap=True)
    steps = RollingDepthSteps(model, checked.res, seed=opts.seed)
    window = window_frames(max(checked.plan.dilations), checked.plan.snip_len, opts.lookahead)
    aligner = OnlineAligner(lookahead=opts.lookahead, window=window, quality=opts.quality)

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
    console.print(f"rdstream run: {opts.source} -> {', '.join(opts.sinks)} | {policy} | "
                  f"dilations {','.join(map(str, checked.plan.dilations))} lookahead {opts.lookahead} | "
                  f"{model.device.type} {str(model.dtype).removeprefix('torch.')} | Ctrl-C stops cleanly", highlight=False, soft_wrap=True)
    show_status = console.is_terminal if opts.status is None else opts.status
    result = _run_with_status(source, sinks, steps, aligner, normalizer, config, console, show_status,
                              Path(opts.stats_json) if opts.stats_json else None, model_thread)
    console.print(summary_line(result), highlight=False, soft_wrap=True)
    return 0


def _run_with_status(source, sinks, steps, aligner, normalizer, config: NodeConfig, console: Console,
                     show_status: bool, stats_json: Path | None, model_thread: ModelThread) -> NodeResult:
    def report(message: str) -> None:
        console.print(f"rdstream: {message}", highlight=False, markup=False, soft_wrap=True)

    # On a terminal the status line rewrites itself; elsewhere (a log file) --status prints a line a second.
    live = Live(Text("starting..."), console=console, refresh_per_second=4, transient=True) \
        if show_status and console.is_terminal else None

    def on_stats(stats: NodeStats) -> None:
        if live is not None:
            live.update(Text(stats.status_text()))
        elif show_status:
            console.print(stats.status_text(), highlight=False, markup=False, soft_wrap=True)

    node = StreamNode(source, sinks, steps, aligner, normalizer, config, report=report, on_stats=on_stats,
                      stats_json=stats_json, model_thread=model_thread)
    if live is None:
        return anyio.run(node.run)
    with live:
        return anyio.run(node.run)


def summary_line(result: NodeResult) -> str:
    """One line for the end of a run: frames, drops, rate, latency, sink problems."""
    fps = result.frames_out / result.elapsed_s if result.elapsed_s > 0 else 0.0
    latency = ("-" if result.latency_p50_ms is None
               else f"p50 {result.latency_p50_ms:.0f} ms, p95 {result.latency_p95_ms:.0f} ms")
    failed = [f"{uri} ({info['error']})" for uri, info in result.sinks.items() if info["error"]]
    sink_drops = sum(info["dropped"] for info in result.sinks.values())
    text = (f"{result.end_reason}: {result.frames_in} frames in, {result.frames_out} out "
            f"({result.dropped} dropped by the realtime policy, {sink_drops} by sinks) "
            f"in {result.elapsed_s:.1f} s ({fps:.1f} fps); latency {latency}")
    if failed:
        text += "; failed sinks: " + ", ".join(failed)
    return text


async def _close_all(source, sinks) -> None:
    from stream.calls import call_off_loop

    for thing in [*sinks, source]:
        try:
            await call_off_loop(thing.close)
        except Exception as err:
            print(f"rdstream: closing {getattr(thing, 'uri', thing)} failed: {err}", file=sys.stderr)
