"""``rdstream run``: its options, their defaults and help.

The options as data (``RunOptions``, where every option is declared once, with whether and where a
rig file may set it) and their torch-free checks are stream.cli.run_checks; the job (load the model,
run the node) is stream.cli.run_job, imported only once those checks pass, so ``--help`` and usage
errors do not wait for torch. Imports go one way: run -> run_job -> run_checks.
"""

from __future__ import annotations

from typing import List, Optional

import typer

from pipeline.device_names import DEVICE_HELP
from stream.cli.argv import (DECODER_HELP, DEFAULT_CHECKPOINT_HELP, ENCODER_HELP, SPEED_HELP, STRIDES_HELP,
                             default_checkpoint, split_values)
from stream.cli.help_format import PANEL_IO, PANEL_LIVE, PANEL_MODEL, PANEL_MONITORING, PANEL_SPEED


def run_command(
    source: List[str] = typer.Option(..., "--source", metavar="URI", help="source URI: file:clip.mp4, test:?frames=300&size=640x360&rate=30, ndi:NAME, camera:0; repeat for several streams on one model (as rdstream rig; {name} and {index} in --sink expand per stream)", rich_help_panel=PANEL_IO),
    sink: List[str] = typer.Option(..., "--sink", metavar="URI", help="sink URI, repeat for more: file:depth.mp4, file:depth.mkv, npy:depth.npy, ndi:Depth?format=p216, null:; video sinks take layout=rgbd or rgbd-v (colour beside/above the depth)", rich_help_panel=PANEL_IO),
    checkpoint: Optional[str] = typer.Option(None, "-c", "--checkpoint", metavar="PATH_OR_ID", help=DEFAULT_CHECKPOINT_HELP, rich_help_panel=PANEL_MODEL),
    preset: str = typer.Option("live", "-p", "--preset", metavar="NAME", help="live (384 px) | fast | fast1024 | full | paper (dilations, res, dtype; no refinement live)", rich_help_panel=PANEL_MODEL),
    quality: str = typer.Option("fast", "--quality", metavar="LEVEL", help="fast | balanced | quality: aligner effort and fit decode (fast/balanced decode fit-only frames at half resolution, quality at full; see docs/streaming.md)", rich_help_panel=PANEL_MODEL),
    decoder: Optional[str] = typer.Option(None, "--decoder", metavar="DECODER", help=DECODER_HELP + " (default: full)", rich_help_panel=PANEL_MODEL),
    speed: str = typer.Option("standard", "--speed", metavar="RUNG", help=SPEED_HELP, rich_help_panel=PANEL_SPEED),
    strides: Optional[List[str]] = typer.Option(None, "--strides", metavar="K", help=STRIDES_HELP + "; default: the --speed's", rich_help_panel=PANEL_SPEED),
    encoder: Optional[str] = typer.Option(None, "--encoder", metavar="ENCODER", help=ENCODER_HELP + "; default: the --speed's", rich_help_panel=PANEL_MODEL),
    fit_decode: Optional[str] = typer.Option(None, "--fit-decode", metavar="MODE", help="frames only the aligner's fit reads: half (2x pooled latent, 1/4 the cost) | full; default: the --quality's", rich_help_panel=PANEL_MODEL),
    res: Optional[int] = typer.Option(None, "--res", metavar="PX", help="longer edge in pixels, 0 (native; inputs under 32 px are upscaled to 32) or 32..4096, rounded to a multiple of 8; above the input's size it upscales; default: the preset's", rich_help_panel=PANEL_SPEED),
    dtype: Optional[str] = typer.Option(None, "--dtype", metavar="TYPE", help="fp16 | fp32 | bf16; default: the preset's on mps/cuda, fp32 on cpu", rich_help_panel=PANEL_MODEL),
    device: str = typer.Option("auto", "--device", metavar="DEVICE", help=DEVICE_HELP, rich_help_panel=PANEL_MODEL),
    lookahead: Optional[int] = typer.Option(None, "--lookahead", metavar="N", help="frames of delay before a frame is output (0 = lowest latency, more = closer to offline); default: 2", rich_help_panel=PANEL_SPEED),
    realtime: Optional[bool] = typer.Option(None, "--realtime/--no-drop", help="drop frames when the model is slow (newest wins; paces files) or process every frame; default: realtime for ndi/camera/syphon/spout, every frame for files and test:", rich_help_panel=PANEL_SPEED),
    normalize: str = typer.Option("running", "--normalize", metavar="MODE", help="display range: running | fixed:NEAR,FAR | window[:N]", rich_help_panel=PANEL_LIVE),
    stats_json: Optional[str] = typer.Option(None, "--stats-json", metavar="FILE", help="append one JSON line of live stats per second to this file (- = stdout)", rich_help_panel=PANEL_MONITORING),
    seed: Optional[int] = typer.Option(None, "--seed", metavar="N", help="noise seed, for reproducible runs", rich_help_panel=PANEL_MODEL),
    dilations: Optional[List[str]] = typer.Option(None, "-d", "--dilations", metavar="D", help="snippet dilations, e.g. -d 1 25; default: the preset's", rich_help_panel=PANEL_MODEL),
    snip_len: Optional[int] = typer.Option(None, "--snip-len", metavar="L", help="frames per snippet, 2..4; default: 3", rich_help_panel=PANEL_MODEL),
    max_frames: int = typer.Option(0, "--max-frames", metavar="N", help="stop after this many source frames (0 = until the source ends)", rich_help_panel=PANEL_IO),
    status: Optional[bool] = typer.Option(None, "--status/--no-status", help="live status line; default: on when stderr is a terminal", rich_help_panel=PANEL_MONITORING),
    osc: Optional[str] = typer.Option(None, "--osc", metavar="[HOST:]PORT", help="listen for OSC control on UDP PORT (127.0.0.1) or HOST:PORT (e.g. 0.0.0.0:9000 to accept other machines); addresses under /rdstream/", rich_help_panel=PANEL_LIVE),
    compile_model: bool = typer.Option(False, "--compile/--no-compile", help="torch.compile the UNet and decoder (CUDA graphs on CUDA); compiles for a minute or more before the first frame, eager where it cannot", rich_help_panel=PANEL_SPEED),
    osc_status: Optional[str] = typer.Option(None, "--osc-status", metavar="[HOST:]PORT", help="send /rdstream/status (once a second) and /rdstream/ack to PORT (127.0.0.1) or HOST:PORT", rich_help_panel=PANEL_LIVE),
    # The monitor page (stream.monitor): off unless asked for.
    monitor: Optional[str] = typer.Option(None, "--monitor", metavar="[HOST:]PORT", help="serve a monitor page (previews, charts, controls), /metrics and /status.json on TCP PORT (127.0.0.1) or HOST:PORT", rich_help_panel=PANEL_MONITORING),
    monitor_token: Optional[str] = typer.Option(None, "--monitor-token", metavar="TOKEN", help="token the monitor's controls need (and its reads, beyond loopback); 'new' = make one and print it once; required for a HOST other than loopback", rich_help_panel=PANEL_MONITORING),
    # Depth at the camera's rate and size (stream.stages: fill_stage, keyframe_gate; io_adapters.output_size).
    fill: Optional[str] = typer.Option(None, "--fill", metavar="MODE", help="with --realtime: flow (every camera frame out, depth carried by optical flow between model frames) | hold (the last depth repeated) | drop (only the frames the model took); default: flow under --realtime", rich_help_panel=PANEL_SPEED),
    model_fps: Optional[float] = typer.Option(None, "--model-fps", metavar="N", help="at most N model frames (keyframes) a second, to leave GPU time to other programs; default: as fast as the model goes", rich_help_panel=PANEL_SPEED),
    idle_fps: Optional[float] = typer.Option(None, "--idle-fps", metavar="N", help="model frames a second while the picture is still (every frame still goes out); default: 1 with --fill flow|hold", rich_help_panel=PANEL_SPEED),
    output_size: Optional[str] = typer.Option(None, "--output-size", metavar="SIZE", help="depth size for every sink: source (the camera's) or WIDTHxHEIGHT, bilinear; a sink's own ?size= wins; default: the processing size", rich_help_panel=PANEL_IO),
) -> int:
    """Live node: a source through the model to one or more sinks (Ctrl-C stops cleanly)."""
    from stream.cli.fill_checks import split_sink_sizes
    from stream.cli.run_checks import DEFAULT_LOOKAHEAD, RunOptions, check_basics

    options = RunOptions(
        source=source[0], sinks=list(sink), fill=fill, model_fps=model_fps, idle_fps=idle_fps, checkpoint=checkpoint or default_checkpoint(), preset=preset,
        quality=quality, res=res, dtype=dtype, device=device, lookahead=DEFAULT_LOOKAHEAD if lookahead is None else lookahead,
        realtime=realtime,
        normalize=normalize, stats_json=stats_json, seed=seed, dilations=split_values(dilations, int),
        snip_len=snip_len, max_frames=max_frames, status=status, decoder=decoder, fit_decode=fit_decode,
        osc=osc, osc_status=osc_status, lookahead_given=lookahead is not None,
        speed=speed, strides=split_values(strides, int), encoder=encoder,
        monitor=monitor, monitor_token=monitor_token, compile=compile_model, output_size=output_size,
    )
    from stream.cli.starting import say_starting

    if len(source) > 1:  # several streams, one model: the rig (stream.cli.rig_file), checked whole first
        from stream.cli.rig_file import rig_from_run

        spec = rig_from_run(options, list(source))
        say_starting("run", f"{len(source)} streams")
        from stream.cli.rig_job import run_rig

        return run_rig(spec)
    options.sinks, options.sink_sizes = split_sink_sizes(options.sinks, options.output_size)  # ?size= is the node's, not the sink's
    basics = check_basics(options)  # usage errors at once: the job below loads torch (seconds)
    say_starting("run")
    from stream.cli.run_job import run_stream

    return run_stream(options, basics)  # checked: a file source is probed once
