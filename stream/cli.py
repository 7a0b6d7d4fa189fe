"""The ``rdstream`` command line (typer). Each command only parses options and calls its module.

Errors meant for the user (pipeline.errors) end as one line on stderr and exit code 2 (bad input or
usage) or 1 (runtime failure); see SPEC.md section 11. Set RDSTREAM_DEBUG=1 to see tracebacks.
"""

from __future__ import annotations

import os
import sys
from typing import List, Optional

import typer

from pipeline.errors import BadInputError, RollingDepthError

app = typer.Typer(
    name="rdstream",
    help="RollingDepth video-to-depth: offline files and a live node for Syphon/NDI.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
dev_app = typer.Typer(help="Developer tools.", no_args_is_help=True)
app.add_typer(dev_app, name="dev")

DEFAULT_CHECKPOINT_HELP = "checkpoint folder or hub id (default: $RDSTREAM_CHECKPOINT or prs-eth/rollingdepth-v1-0)"
# Options the reference run_video.py takes as several values after one flag (argparse nargs).
MULTI_VALUE = {"-d": "int", "--dilations": "int", "--cmap": "name"}
# Boolean options the reference takes as `--flag true|false`.
BOOL_FLAGS = {"--restore-res", "--save-sbs", "--save-npy", "--save-snippets", "--cap-dilation",
              "--unload-snippet", "--verbose", "--save-16bit"}
TRUE, FALSE = {"true", "1", "yes", "on"}, {"false", "0", "no", "off"}


def normalize_argv(args: list[str]) -> list[str]:
    """Accept the reference's argparse habits: ``-d 1 10 25`` and ``--save-npy false``."""
    out: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg in MULTI_VALUE:
            kind = MULTI_VALUE[arg]
            i += 1
            values = []
            while i < len(args) and not args[i].startswith("-"):
                token = args[i]
                looks_right = token.replace(",", "").isdigit() if kind == "int" else ("." not in token and "/" not in token)
                if values and not looks_right:
                    break
                values.append(token)
                i += 1
            for value in values or [""]:
                out += [arg, value]
            continue
        if arg in BOOL_FLAGS and i + 1 < len(args) and args[i + 1].lower() in TRUE | FALSE:
            out.append(arg if args[i + 1].lower() in TRUE else "--no-" + arg[2:])
            i += 2
            continue
        out.append(arg)
        i += 1
    return out


def split_values(values: Optional[List[str]], cast=str) -> Optional[list]:
    """``["1,10", "25"]`` -> ``[1, 10, 25]``; None stays None."""
    if not values:
        return None
    items = [v for value in values for v in value.replace(",", " ").split()]
    try:
        return [cast(v) for v in items]
    except ValueError:
        raise BadInputError(f"expected whole numbers, got {' '.join(items)}") from None


def default_checkpoint() -> str:
    return os.environ.get("RDSTREAM_CHECKPOINT") or "prs-eth/rollingdepth-v1-0"


@app.command("file")
def file_command(
    input_pos: Optional[List[str]] = typer.Argument(None, metavar="[INPUT]...", help="video file, folder of videos, or .txt list"),
    input_video: Optional[List[str]] = typer.Option(None, "-i", "--input-video", help="same as INPUT (reference name)"),
    output_dir: str = typer.Option("output", "-o", "--output-dir", help="folder for the outputs"),
    preset: str = typer.Option("fast", "-p", "--preset", help="fast | fast1024 | full | paper"),
    start_frame: int = typer.Option(0, "--start-frame", help="first frame to process"),
    frame_count: int = typer.Option(0, "--frame-count", help="number of frames (0 = all)"),
    checkpoint: Optional[str] = typer.Option(None, "-c", "--checkpoint", help=DEFAULT_CHECKPOINT_HELP),
    res: Optional[int] = typer.Option(None, "--res", help="longer edge in pixels, rounded to a multiple of 8 (0 = native) (default: preset)"),
    max_vae_bs: int = typer.Option(4, "--max-vae-bs", help="frames per VAE batch"),
    fps: float = typer.Option(0.0, "--fps", help="output video frame rate (0 = input rate)"),
    restore_res: bool = typer.Option(False, "--restore-res/--no-restore-res", help="resize depth back to the input size"),
    save_sbs: bool = typer.Option(True, "--save-sbs/--no-save-sbs", help="write {stem}_rgbd.mp4 (RGB beside depth)"),
    save_npy: bool = typer.Option(True, "--save-npy/--no-save-npy", help="write {stem}_pred.npy (float32 [N,H,W] in [-1,1])"),
    save_snippets: bool = typer.Option(False, "--save-snippets/--no-save-snippets", help="write {stem}_snippets.npz"),
    save_16bit: bool = typer.Option(False, "--save-16bit/--no-save-16bit", help="write {stem}_depth16.mkv (lossless 16-bit FFV1)"),
    cmap: Optional[List[str]] = typer.Option(None, "--cmap", help="colour maps for {stem}_{cmap}.mp4 (default: Spectral_r Greys_r)"),
    dilations: Optional[List[str]] = typer.Option(None, "-d", "--dilations", help="snippet dilations, e.g. -d 1 10 25 (default: preset)"),
    cap_dilation: Optional[bool] = typer.Option(None, "--cap-dilation/--no-cap-dilation", help="cap dilations on short clips (default: preset)"),
    dtype: Optional[str] = typer.Option(None, "--dtype", help="fp16 | fp32 | bf16 (default: fp16 on mps/cuda, fp32 on cpu)"),
    snip_len: Optional[int] = typer.Option(None, "--snip-len", help="frames per snippet, 2..4 (default: 3)"),
    refine_step: Optional[int] = typer.Option(None, "--refine-step", help="refinement steps (0 = off) (default: preset)"),
    refine_snippet_len: Optional[int] = typer.Option(None, "--refine-snippet-len", help="frames per refinement snippet (default: 3)"),
    refine_start_dilation: Optional[int] = typer.Option(None, "--refine-start-dilation", help="first refinement dilation (default: 6)"),
    resample_method: str = typer.Option("bilinear", "--resample-method", help="bilinear | bicubic | nearest | nearest-exact | area (or BILINEAR, NEAREST_EXACT...)"),
    unload_snippet: bool = typer.Option(False, "--unload-snippet/--no-unload-snippet", help="keep decoded snippets in CPU memory (saves GPU memory)"),
    verbose: bool = typer.Option(False, "--verbose/--no-verbose", help="print per-stage timings"),
    seed: Optional[int] = typer.Option(None, "--seed", help="noise seed, for reproducible runs"),
    quality: str = typer.Option("balanced", "--quality", help="co-alignment quality: fast | balanced | quality"),
    coalign: str = typer.Option("exact", "--coalign", help="co-alignment solver: exact | adam (the reference's)"),
    device: str = typer.Option("auto", "--device", help="auto | mps | cuda | cpu"),
) -> int:
    """Offline: a video file (or folder, or .txt list) to depth .npy and colour-mapped videos."""
    from stream.offline_job import FileJobOptions, run_file_job

    inputs = list(input_pos or []) + list(input_video or [])
    if not inputs:
        raise BadInputError("give an input video: rdstream file INPUT (a file, a folder or a .txt list)")
    opts = FileJobOptions(
        inputs=inputs, output_dir=output_dir, checkpoint=checkpoint or default_checkpoint(), preset=preset,
        start_frame=start_frame, frame_count=frame_count, res=res, max_vae_bs=max_vae_bs, fps=fps,
        restore_res=restore_res, save_sbs=save_sbs, save_npy=save_npy, save_snippets=save_snippets,
        save_16bit=save_16bit, cmaps=split_values(cmap) or ["Spectral_r", "Greys_r"],
        dilations=split_values(dilations, int), cap_dilation=cap_dilation, dtype=dtype, snip_len=snip_len,
        refine_step=refine_step, refine_snippet_len=refine_snippet_len,
        refine_start_dilation=refine_start_dilation, resample_method=resample_method,
        unload_snippet=unload_snippet, verbose=verbose, seed=seed, quality=quality, coalign=coalign, device=device,
    )
    return run_file_job(opts)


@app.command("run")
def run_command(
    source: str = typer.Option(..., "--source", help="source URI: file:clip.mp4, test:?frames=300&size=640x360&rate=30, ndi:NAME, camera:0"),
    sink: List[str] = typer.Option(..., "--sink", help="sink URI, repeat for more: file:depth.mp4, file:depth.mkv, npy:depth.npy, ndi:Depth?format=p216, null:"),
    checkpoint: Optional[str] = typer.Option(None, "-c", "--checkpoint", help="checkpoint folder or hub id (default: $RDSTREAM_CHECKPOINT or prs-eth/rollingdepth-v1-0)"),
    preset: str = typer.Option("fast", "-p", "--preset", help="fast | fast1024 | full | paper (dilations, res, dtype; no refinement live)"),
    quality: str = typer.Option("fast", "--quality", help="online co-alignment quality: fast | balanced | quality"),
    res: Optional[int] = typer.Option(None, "--res", help="longer edge in pixels, rounded to a multiple of 8 (0 = native); default: the preset's"),
    dtype: Optional[str] = typer.Option(None, "--dtype", help="fp16 | fp32 | bf16; default: the preset's on mps/cuda, fp32 on cpu"),
    device: str = typer.Option("auto", "--device", help="auto | mps | cuda | cpu"),
    lookahead: int = typer.Option(2, "--lookahead", help="frames of delay before a frame is output (0 = lowest latency, more = closer to offline)"),
    realtime: Optional[bool] = typer.Option(None, "--realtime/--no-drop", help="drop frames when the model is slow (newest wins; paces files) or process every frame; default: realtime for ndi/camera/syphon, every frame for files and test:"),
    normalize: str = typer.Option("running", "--normalize", help="display range: running | fixed:NEAR,FAR | window[:N]"),
    stats_json: Optional[str] = typer.Option(None, "--stats-json", help="append one JSON line of live stats per second to this file"),
    seed: Optional[int] = typer.Option(None, "--seed", help="noise seed, for reproducible runs"),
    dilations: Optional[List[str]] = typer.Option(None, "-d", "--dilations", help="snippet dilations, e.g. -d 1 25; default: the preset's"),
    snip_len: Optional[int] = typer.Option(None, "--snip-len", help="frames per snippet, 2..4; default: 3"),
    max_frames: int = typer.Option(0, "--max-frames", help="stop after this many source frames (0 = until the source ends)"),
    status: Optional[bool] = typer.Option(None, "--status/--no-status", help="live status line; default: on when stderr is a terminal"),
) -> int:
    """Live node: a source through the model to one or more sinks (Ctrl-C stops cleanly)."""
    from stream.run_command import RunOptions, run_stream

    return run_stream(RunOptions(
        source=source, sinks=list(sink), checkpoint=checkpoint or default_checkpoint(), preset=preset,
        quality=quality, res=res, dtype=dtype, device=device, lookahead=lookahead, realtime=realtime,
        normalize=normalize, stats_json=stats_json, seed=seed, dilations=split_values(dilations, int),
        snip_len=snip_len, max_frames=max_frames, status=status,
    ))


@app.command("sources")
def sources_command(
    as_json: bool = typer.Option(False, "--json", help="print JSON instead of text"),
    ndi_wait: float = typer.Option(1.5, "--ndi-wait", help="seconds to listen for NDI sources"),
    ndi_ips: Optional[str] = typer.Option(None, "--ndi-ips", help="extra IPs to ask for NDI sources, comma-separated"),
) -> int:
    """List the cameras, NDI sources and Syphon servers this machine can open as sources."""
    from io_adapters.listing import print_sources

    print_sources(as_json=as_json, ndi_wait_s=ndi_wait, ndi_ips=ndi_ips)
    return 0


@dev_app.command("make-tiny-checkpoint")
def make_tiny_checkpoint(folder: str = typer.Argument(..., help="folder to write")) -> int:
    """Write a tiny RANDOM checkpoint in the real layout, for tests and demos (its output is NOT depth)."""
    from pipeline.tiny_checkpoint import write_tiny_checkpoint

    path = write_tiny_checkpoint(folder)
    typer.echo(f"wrote a tiny random checkpoint to {path} (for tests only: its output is not depth)")
    return 0


def quiet_libraries() -> None:
    """Library chatter (weight-loading bars, advisory warnings) is noise for our users."""
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    try:
        import diffusers.utils.logging as dlog
        import transformers.utils.logging as tlog

        dlog.disable_progress_bar()
        tlog.disable_progress_bar()
    except Exception:
        pass


def is_usage_error(err: Exception) -> bool:
    """Typer's (vendored click) usage errors: they print themselves and carry exit code 2."""
    return hasattr(err, "show") and isinstance(getattr(err, "exit_code", None), int)


def fail(message: str, code: int) -> None:
    sys.stderr.write(f"rdstream: error: {message}\n")
    sys.exit(code)


def main(argv: list[str] | None = None) -> None:
    """Console entry point: run the app and turn errors into one line and an exit code."""
    args = normalize_argv(list(sys.argv[1:] if argv is None else argv))
    quiet_libraries()
    try:
        code = app(args=args, prog_name="rdstream", standalone_mode=False)
    except (typer.Abort, KeyboardInterrupt):
        sys.stderr.write("rdstream: interrupted; files already written are complete\n")
        sys.exit(130)
    except RollingDepthError as err:
        fail(str(err), err.exit_code)
    except Exception as err:
        if is_usage_error(err):
            err.show()
            sys.exit(err.exit_code)
        if os.environ.get("RDSTREAM_DEBUG"):
            raise
        fail(f"internal error: {type(err).__name__}: {err} (set RDSTREAM_DEBUG=1 for the traceback)", 1)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
