"""``make demo``: the main job on the built-in test source, with the real weights when they are found.

Weights are looked up in this order: ``--checkpoint``, $RDSTREAM_CHECKPOINT, the Hugging Face cache
(prs-eth/rollingdepth-v1-0). Without them the demo writes the tiny RANDOM test checkpoint and says
loudly that its output is not depth.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import av
import numpy as np
import typer
from rich.console import Console
from rich.panel import Panel

from io_adapters.video_file import ColorVideoWriter
from pipeline.checkpoint import DEFAULT_CHECKPOINT, resolve_device

OUTPUT = Path("demo_output")
MISSING_WEIGHTS = (
    "[bold]The RollingDepth weights were not found[/] (prs-eth/rollingdepth-v1-0, 3.4 GB).\n"
    "This demo runs the TINY RANDOM test checkpoint instead: [bold red]its output is NOT depth[/], "
    "only proof that every stage runs.\n"
    "To get real depth: `huggingface-cli download prs-eth/rollingdepth-v1-0` (or any folder with "
    "that layout), then `make demo CHECKPOINT=/path/to/folder` or set RDSTREAM_CHECKPOINT."
)


def find_real_checkpoint(explicit: str | None) -> str | None:
    """--checkpoint, then $RDSTREAM_CHECKPOINT, then the Hugging Face cache; None when absent."""
    if explicit:
        return explicit
    if os.environ.get("RDSTREAM_CHECKPOINT"):
        return os.environ["RDSTREAM_CHECKPOINT"]
    try:
        from huggingface_hub import snapshot_download

        return snapshot_download(DEFAULT_CHECKPOINT, local_files_only=True)
    except Exception:
        return None


def write_test_clip(path: Path, frames: int, size: str = "640x360", rate: int = 30) -> Path:
    """FFmpeg's testsrc2 pattern as an H.264 clip (the built-in test source, made into a file)."""
    with av.open(f"testsrc2=size={size}:rate={rate}:duration={frames / rate}", format="lavfi") as source:
        with ColorVideoWriter(path, rate) as writer:
            for frame in source.decode(video=0):
                writer.write(frame.to_ndarray(format="rgb24"))
    return path


def demo(
    checkpoint: str | None = typer.Option(None, "--checkpoint", "-c", help="RollingDepth checkpoint folder or hub id"),
    frames: int = typer.Option(60, "--frames", help="length of the built-in test clip"),
) -> None:
    console = Console(stderr=True)
    from stream.cli import main as rdstream
    from pipeline.tiny_checkpoint import write_tiny_checkpoint

    OUTPUT.mkdir(exist_ok=True)
    real = find_real_checkpoint(checkpoint)
    if real is None:
        console.print(Panel(MISSING_WEIGHTS, title="rollingdepth-stream demo", border_style="red"))
        real = str(write_tiny_checkpoint(OUTPUT / "tiny-checkpoint"))
        res = "192"
    else:
        console.print(f"Using the RollingDepth weights at {real}")
        res = "384" if resolve_device("auto").type != "cpu" else "256"
    clip = write_test_clip(OUTPUT / "testsrc2.mp4", frames)
    console.print(f"Built-in test clip: {clip} ({frames} frames). Running `rdstream file` on it...")
    try:
        rdstream(["file", str(clip), "-o", str(OUTPUT), "-c", real, "--res", res, "--save-16bit", "--seed", "0", "--verbose"])
    except SystemExit as done:
        if done.code:
            sys.exit(done.code)
    console.print(Panel(
        f"Outputs in {OUTPUT.resolve()}:\n"
        "  testsrc2_pred.npy        float32 [N, H, W] depth in [-1, 1] (1 = near)\n"
        "  testsrc2_Spectral_r.mp4  testsrc2_Greys_r.mp4  colour-mapped depth\n"
        "  testsrc2_rgbd.mp4        input beside depth\n"
        "  testsrc2_depth16.mkv     lossless 16-bit depth (FFV1)",
        title="demo finished", border_style="green"))


if __name__ == "__main__":
    typer.run(demo)
