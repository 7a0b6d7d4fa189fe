"""``rdstream run``: its options, their defaults and help.

The job itself (check the options, load the model, run the node) is stream.cli.run_job; it is
imported only when a run starts, so ``--help`` and usage errors do not wait for torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional

import typer

from stream.cli.argv import DECODER_HELP, DEFAULT_CHECKPOINT_HELP, default_checkpoint, split_values


@dataclass
class RunOptions:
    """The command line of ``rdstream run``; None means "take the preset's value" or the default.

    realtime: True = drop frames when the model is slow (newest wins) and pace files to their
        frame rate; False = process every frame (``--no-drop``); None = realtime for live sources
        (ndi, camera, syphon), every frame for files and test patterns.
    max_frames: stop after this many source frames (0 = until the source ends).
    status: live status line; None = only on a terminal.
    quality: fast | balanced | quality, see ``pipeline.presets.LIVE_QUALITIES``; ``decoder`` and
        ``fit_decode`` (None = the quality's) override what it sets.
    """

    source: str
    sinks: list[str]
    checkpoint: str
    preset: str = "live"
    quality: str = "fast"
    decoder: str | None = None
    fit_decode: str | None = None
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
    osc: str | None = None
    osc_status: str | None = None
    compile: bool = False


def run_command(
    source: str = typer.Option(..., "--source", metavar="URI", help="source URI: file:clip.mp4, test:?frames=300&size=640x360&rate=30, ndi:NAME, camera:0"),
    sink: List[str] = typer.Option(..., "--sink", metavar="URI", help="sink URI, repeat for more: file:depth.mp4, file:depth.mkv, npy:depth.npy, ndi:Depth?format=p216, null:; video sinks take layout=rgbd or rgbd-v (colour beside/above the depth)"),
    checkpoint: Optional[str] = typer.Option(None, "-c", "--checkpoint", metavar="PATH_OR_ID", help=DEFAULT_CHECKPOINT_HELP),
    preset: str = typer.Option("live", "-p", "--preset", metavar="NAME", help="live (384 px) | fast | fast1024 | full | paper (dilations, res, dtype; no refinement live)"),
    quality: str = typer.Option("fast", "--quality", metavar="LEVEL", help="fast | balanced | quality: aligner effort and fit decode (fast/balanced decode fit-only frames at half resolution, quality at full; see README)"),
    decoder: Optional[str] = typer.Option(None, "--decoder", metavar="DECODER", help=DECODER_HELP + " (default: full)"),
    fit_decode: Optional[str] = typer.Option(None, "--fit-decode", metavar="MODE", help="frames only the aligner's fit reads: half (2x pooled latent, 1/4 the cost) | full; default: the --quality's"),
    res: Optional[int] = typer.Option(None, "--res", metavar="PX", help="longer edge in pixels, 0 (native) or 8..4096, rounded to a multiple of 8; above the input's size it upscales; default: the preset's"),
    dtype: Optional[str] = typer.Option(None, "--dtype", metavar="TYPE", help="fp16 | fp32 | bf16; default: the preset's on mps/cuda, fp32 on cpu"),
    device: str = typer.Option("auto", "--device", metavar="DEVICE", help="auto | mps | cuda | cpu"),
    lookahead: int = typer.Option(2, "--lookahead", metavar="N", help="frames of delay before a frame is output (0 = lowest latency, more = closer to offline)"),
    realtime: Optional[bool] = typer.Option(None, "--realtime/--no-drop", help="drop frames when the model is slow (newest wins; paces files) or process every frame; default: realtime for ndi/camera/syphon, every frame for files and test:"),
    normalize: str = typer.Option("running", "--normalize", metavar="MODE", help="display range: running | fixed:NEAR,FAR | window[:N]"),
    stats_json: Optional[str] = typer.Option(None, "--stats-json", metavar="FILE", help="append one JSON line of live stats per second to this file"),
    seed: Optional[int] = typer.Option(None, "--seed", metavar="N", help="noise seed, for reproducible runs"),
    dilations: Optional[List[str]] = typer.Option(None, "-d", "--dilations", metavar="D", help="snippet dilations, e.g. -d 1 25; default: the preset's"),
    snip_len: Optional[int] = typer.Option(None, "--snip-len", metavar="L", help="frames per snippet, 2..4; default: 3"),
    max_frames: int = typer.Option(0, "--max-frames", metavar="N", help="stop after this many source frames (0 = until the source ends)"),
    status: Optional[bool] = typer.Option(None, "--status/--no-status", help="live status line; default: on when stderr is a terminal"),
    osc: Optional[str] = typer.Option(None, "--osc", metavar="[HOST:]PORT", help="listen for OSC control on UDP PORT (127.0.0.1) or HOST:PORT (e.g. 0.0.0.0:9000 to accept other machines); addresses under /rdstream/"),
    compile_model: bool = typer.Option(False, "--compile/--no-compile", help="torch.compile the UNet and decoder (CUDA graphs on CUDA); compiles for a minute or more before the first frame, eager where it cannot"),
    osc_status: Optional[str] = typer.Option(None, "--osc-status", metavar="[HOST:]PORT", help="send /rdstream/status (once a second) and /rdstream/ack to PORT (127.0.0.1) or HOST:PORT"),
) -> int:
    """Live node: a source through the model to one or more sinks (Ctrl-C stops cleanly)."""
    from stream.cli.run_job import run_stream  # torch and the runtime load only when a run starts

    return run_stream(RunOptions(
        source=source, sinks=list(sink), checkpoint=checkpoint or default_checkpoint(), preset=preset,
        quality=quality, res=res, dtype=dtype, device=device, lookahead=lookahead, realtime=realtime,
        normalize=normalize, stats_json=stats_json, seed=seed, dilations=split_values(dilations, int),
        snip_len=snip_len, max_frames=max_frames, status=status, decoder=decoder, fit_decode=fit_decode,
        osc=osc, osc_status=osc_status, compile=compile_model,
    ))
