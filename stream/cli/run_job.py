"""``rdstream run``'s job: check the options, then run them as a rig of one stream, summarise.

Steps: check every option (before the slow model load) -> the live job (stream.cli.live_job: open
the source, load the model, open the sinks, run with a live status line) -> print a one-line
summary. Ctrl-C, SIGTERM and the end of the source all end the same way: drain, flush, close every
sink, exit 0. The options' names and help are in stream.cli.run, which imports this module (never
the reverse); RunOptions and the checks that need no torch are in stream.cli.run_checks.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.console import Console

from pipeline.errors import RuntimeFailure
from pipeline.presets import LiveQuality, SpeedRung, speed_rung
from pipeline.snippets import SnippetPlan, lookahead_latency_note
from pipeline.tiny_decoder import DecoderChoice, resolve_decoder
from pipeline.tiny_encoder import resolve_encoder
from stream.cli.fill_checks import FillSettings
from stream.cli.fill_run import fill_policy
from stream.cli.live_job import LiveJob, run_live
from stream.cli.rig_file import RigStreamSpec
from stream.cli.run_checks import RunBasics, RunOptions, check_basics
from stream.stages.display_normalizer import DisplayNormalizer
from stream.monitor.endpoint import MonitorEndpoint, check_monitor
from stream.node import NodeResult
from stream.control.osc_control import OscEndpoint, check_can_listen, check_endpoints_differ, parse_endpoint
from stream.rig import StreamOutcome


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
    basics: RunBasics | None = None  # what check_basics resolved (the fields above repeat it)


def check_options(opts: RunOptions, basics: RunBasics | None = None) -> CheckedRun:
    """Validate every option up front, each problem with its own message: what needs no torch
    (``check_basics``; ``basics``: its result where the caller ran it, as ``rdstream run`` does before
    this module loads, so a file source is probed once), then OSC and the decoder."""
    basics = basics or check_basics(opts)
    osc = parse_endpoint(opts.osc, "--osc") if opts.osc is not None else None
    if osc is not None:
        check_can_listen(osc)
    osc_status = parse_endpoint(opts.osc_status, "--osc-status") if opts.osc_status is not None else None
    check_endpoints_differ(osc, osc_status)
    monitor = check_monitor(opts.monitor, opts.monitor_token)
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
        basics=basics,
    )


def run_stream(opts: RunOptions, basics: RunBasics | None = None) -> int:
    """Run the node until the source ends or Ctrl-C/SIGTERM; returns the exit code (0): a rig of one
    stream (stream.cli.live_job) with run's lines and OSC addresses.

    ``basics``: ``check_basics(opts)`` where the caller ran it already.
    Raises RuntimeFailure (exit 1) when every sink failed, at any moment of the run.
    """
    console = Console(stderr=True)
    # 1. Check every option before the (slow) model load.
    checked = check_options(opts, basics)
    note = opts.lookahead_given and lookahead_latency_note(opts.lookahead, checked.plan.snip_len, checked.plan.dilations)
    if note:
        console.print(f"rdstream: warning: {note}", highlight=False, markup=False, soft_wrap=True)
    policy = ("realtime (drops frames when the model is slow)" if checked.drop_frames else "every frame (--no-drop)")
    policy += fill_policy(checked.fill)

    def finish(outcomes: list[StreamOutcome]) -> int:
        outcome = outcomes[0]
        if outcome.error is not None:
            raise outcome.error
        result = outcome.result
        console.print(summary_line(result), highlight=False, soft_wrap=True)
        if result.every_sink_failed:  # nothing reached any output: the run failed, whatever stopped it
            raise RuntimeFailure("every sink failed: " + "; ".join(f"{uri}: {err}" for uri, err in result.failed_sinks.items()))
        if result.source_error is not None:  # its frames are in the files; the exit code says the input failed
            raise result.source_error
        return 0

    # 2. Open the source, load the model, open the sinks, run with a live status line, summarise.
    job = LiveJob([RigStreamSpec("", opts, checked.basics)], checked.decoder, checked.encoder,
                  start_lines=lambda model: start_line(opts, checked, model, policy), finish=finish, single=True,
                  outputs={"--stats-json": opts.stats_json}, stats_json=opts.stats_json, compile=opts.compile,
                  status=opts.status, osc=checked.osc, osc_status=checked.osc_status, monitor=checked.monitor)
    return run_live(job, console)


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
