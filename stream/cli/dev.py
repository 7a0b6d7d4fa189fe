"""``rdstream dev ...``: tools for developers and tests (the tiny random checkpoint and decoder, decoder comparison,
the cost ladder's evaluation)."""

from __future__ import annotations

from typing import List, Optional

import typer

from pipeline.device_names import DEVICE_HELP
from stream.cli.argv import DEFAULT_CHECKPOINT_HELP, default_checkpoint
from stream.cli.help_format import PlainArgumentsCommand

dev_app = typer.Typer(help="Developer tools.", no_args_is_help=True, rich_markup_mode=None)


def _write_folder(write, folder: str, what: str):
    """``write(folder)``, with a folder name too long for the file system, or one that cannot be
    written, said in one line (exit 2) instead of an internal error."""
    from pathlib import Path

    from io_adapters.names import check_path_fits
    from pipeline.errors import BadInputError

    check_path_fits(Path(folder) / "config.json", "FOLDER")
    try:
        return write(folder)
    except OSError as err:
        raise BadInputError(f"FOLDER {folder}: cannot write {what} there ({err.strerror or err})") from None


@dev_app.command("make-tiny-checkpoint", short_help="Write the tiny RANDOM test checkpoint (not depth).", cls=PlainArgumentsCommand)
def make_tiny_checkpoint(folder: str = typer.Argument(..., metavar="FOLDER", help="folder to write")) -> int:
    """Write a tiny RANDOM checkpoint in the real layout, for tests and demos (its output is NOT depth)."""
    from pipeline.tiny_checkpoint import write_tiny_checkpoint

    path = _write_folder(write_tiny_checkpoint, folder, "a checkpoint")
    typer.echo(f"wrote a tiny random checkpoint to {path} (for tests only: its output is not depth)")
    return 0


@dev_app.command("make-tiny-decoder", short_help="Write a tiny RANDOM decoder for tests (not depth).", cls=PlainArgumentsCommand)
def make_tiny_decoder(folder: str = typer.Argument(..., metavar="FOLDER", help="folder to write")) -> int:
    """Write a small RANDOM AutoencoderTiny folder for --decoder in tests (its output is NOT depth)."""
    from pipeline.tiny_decoder import write_tiny_decoder

    path = _write_folder(write_tiny_decoder, folder, "a decoder")
    typer.echo(f"wrote a tiny random AutoencoderTiny to {path} (for tests only: its output is not depth)")
    return 0


@dev_app.command("compare-decoders", short_help="Another decoder's depth against the full VAE's.", cls=PlainArgumentsCommand)
def compare_decoders_command(
    clip: str = typer.Argument(..., metavar="CLIP", help="a video file"),
    checkpoint: Optional[str] = typer.Option(None, "-c", "--checkpoint", metavar="PATH_OR_ID", help=DEFAULT_CHECKPOINT_HELP),
    decoder: str = typer.Option("tiny", "--decoder", metavar="DECODER", help="the decoder to compare with the full VAE decoder: tiny | folder | hub id"),
    frame_count: int = typer.Option(30, "--frame-count", metavar="N", help="frames of the clip to use (from the start)"),
    res: int = typer.Option(384, "--res", metavar="PX", help="longer edge in pixels (the live preset's 384 by default)"),
    device: str = typer.Option("auto", "--device", metavar="DEVICE", help=DEVICE_HELP),
    dtype: Optional[str] = typer.Option(None, "--dtype", metavar="TYPE", help="fp16 | fp32 | bf16 (default: fp16 on mps/cuda, fp32 on cpu)"),
) -> int:
    """Depth with another decoder against the full VAE decoder: AbsRel, frame-to-frame error, speed of each."""
    from stream.cli.compare_decoders import CompareOptions, run_compare

    return run_compare(CompareOptions(clip=clip, checkpoint=checkpoint or default_checkpoint(), decoder=decoder,
                                      frame_count=frame_count, res=res, device=device, dtype=dtype))


@dev_app.command("evaluate", short_help="What each --speed rung costs in depth quality, on your clip.")
def evaluate_command(
    clip: str = typer.Argument(..., help="a video file"),
    checkpoint: Optional[str] = typer.Option(None, "-c", "--checkpoint", metavar="PATH_OR_ID", help=DEFAULT_CHECKPOINT_HELP),
    rungs: Optional[List[str]] = typer.Option(None, "--rungs", metavar="A,B", help="rungs to run, e.g. standard,lite (default: every rung)"),
    output_dir: str = typer.Option("rdstream-evaluate", "-o", "--output-dir", metavar="DIR", help="where the cached reference, each rung's depth, evaluate.json and evaluate.png go"),
    preset: str = typer.Option("paper", "--preset", metavar="NAME", help="preset of the offline reference (run at --res)"),
    res: int = typer.Option(384, "--res", metavar="PX", help="longer edge in pixels, for the reference and every rung"),
    lookahead: int = typer.Option(2, "--lookahead", metavar="N", help="the live node's lookahead"),
    frame_count: int = typer.Option(0, "--frame-count", metavar="N", help="frames of the clip to use (0 = all)"),
    tiny: str = typer.Option("tiny", "--tiny", metavar="AUTOENCODER", help="the AutoencoderTiny of rungs with the tiny encoder/decoder: tiny | folder | hub id"),
    device: str = typer.Option("auto", "--device", metavar="DEVICE", help=DEVICE_HELP),
    dtype: Optional[str] = typer.Option(None, "--dtype", metavar="TYPE", help="fp16 | fp32 | bf16 (default: fp16 on mps/cuda, fp32 on cpu)"),
    fill: Optional[str] = typer.Option(None, "--fill", metavar="MODE", help="flow | hold: play the clip live at its own rate, every frame out (the model takes what it can, the rest is carried), as rdstream run --fill does; default: every frame through the model"),
) -> int:
    """Each rung of the cost ladder through the live node against the offline reference: AbsRel, temporal
    error, TFLOP per frame and fps; a table, evaluate.json and evaluate.png in the output folder."""
    from stream.cli.argv import split_values
    from stream.cli.evaluate import EvaluateOptions, run_evaluate

    return run_evaluate(EvaluateOptions(clip=clip, checkpoint=checkpoint or default_checkpoint(), rungs=split_values(rungs),
                                        output_dir=output_dir, preset=preset, res=res, lookahead=lookahead,
                                        frame_count=frame_count, tiny=tiny, device=device, dtype=dtype, fill=fill))
