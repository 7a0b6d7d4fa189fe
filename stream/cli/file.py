"""``rdstream file``: its options (as the reference ``run_video.py`` names them) and their defaults.

The options are parsed here and handed, as one ``FileJobOptions``, to ``stream.cli.file_job``,
which resolves and checks them once before the model loads.
"""

from __future__ import annotations

from typing import List, Optional

import typer

from pipeline.device_names import DEVICE_HELP
from pipeline.errors import BadInputError
from stream.cli.argv import DECODER_HELP, DEFAULT_CHECKPOINT_HELP, ENCODER_HELP, STRIDES_HELP, default_checkpoint, split_values
from stream.cli.help_format import PANEL_IO, PANEL_MODEL, PANEL_MONITORING, PANEL_SPEED


def file_command(
    input_pos: Optional[List[str]] = typer.Argument(None, metavar="INPUT", help="video file, folder of videos, or .txt list"),
    input_video: Optional[List[str]] = typer.Option(None, "-i", "--input-video", metavar="VIDEO", help="same as INPUT (reference name)", rich_help_panel=PANEL_IO),
    output_dir: str = typer.Option("output", "-o", "--output-dir", metavar="DIR", help="folder for the outputs", rich_help_panel=PANEL_IO),
    preset: str = typer.Option("fast", "-p", "--preset", metavar="NAME", help="fast | fast1024 | full | paper | live (384 px preview)", rich_help_panel=PANEL_MODEL),
    start_frame: int = typer.Option(0, "--start-frame", metavar="N", help="first frame to process", rich_help_panel=PANEL_IO),
    frame_count: int = typer.Option(0, "--frame-count", metavar="N", help="number of frames (0 = all)", rich_help_panel=PANEL_IO),
    checkpoint: Optional[str] = typer.Option(None, "-c", "--checkpoint", metavar="PATH_OR_ID", help=DEFAULT_CHECKPOINT_HELP, rich_help_panel=PANEL_MODEL),
    res: Optional[int] = typer.Option(None, "--res", metavar="PX", help="longer edge in pixels, 0 (native; inputs under 32 px are upscaled to 32) or 32..4096, rounded to a multiple of 8; above the input's size it upscales (default: preset)", rich_help_panel=PANEL_SPEED),
    max_vae_bs: int = typer.Option(4, "--max-vae-bs", metavar="N", help="frames per VAE batch", rich_help_panel=PANEL_SPEED),
    fps: float = typer.Option(0.0, "--fps", metavar="FPS", help="output video frame rate (0 = input rate)", rich_help_panel=PANEL_IO),
    restore_res: bool = typer.Option(False, "--restore-res/--no-restore-res", help="resize depth back to the input size", rich_help_panel=PANEL_IO),
    save_sbs: bool = typer.Option(True, "--save-sbs/--no-save-sbs", help="write {stem}_rgbd.mp4 (RGB beside depth)", rich_help_panel=PANEL_IO),
    save_npy: bool = typer.Option(True, "--save-npy/--no-save-npy", help="write {stem}_pred.npy (float32 [N,H,W] in [-1,1])", rich_help_panel=PANEL_IO),
    save_snippets: bool = typer.Option(False, "--save-snippets/--no-save-snippets", help="write {stem}_snippets.npz", rich_help_panel=PANEL_IO),
    save_16bit: bool = typer.Option(False, "--save-16bit/--no-save-16bit", help="write {stem}_depth16.mkv (lossless 16-bit FFV1)", rich_help_panel=PANEL_IO),
    cmap: Optional[List[str]] = typer.Option(None, "--cmap", metavar="NAME", help="colour maps for {stem}_{cmap}.mp4 (default: Spectral_r Greys_r)", rich_help_panel=PANEL_IO),
    dilations: Optional[List[str]] = typer.Option(None, "-d", "--dilations", metavar="D", help="snippet dilations, e.g. -d 1 10 25 (default: preset)", rich_help_panel=PANEL_MODEL),
    cap_dilation: Optional[bool] = typer.Option(None, "--cap-dilation/--no-cap-dilation", help="cap dilations on short clips (default: preset)", rich_help_panel=PANEL_MODEL),
    dtype: Optional[str] = typer.Option(None, "--dtype", metavar="TYPE", help="fp16 | fp32 | bf16 (default: fp16 on mps/cuda, fp32 on cpu)", rich_help_panel=PANEL_MODEL),
    snip_len: Optional[int] = typer.Option(None, "--snip-len", metavar="L", help="frames per snippet, 2..4 (default: 3)", rich_help_panel=PANEL_MODEL),
    strides: Optional[List[str]] = typer.Option(None, "--strides", metavar="K", help=STRIDES_HELP + "; default: 1 each", rich_help_panel=PANEL_SPEED),
    refine_step: Optional[int] = typer.Option(None, "--refine-step", metavar="N", help="refinement steps (0 = off) (default: preset)", rich_help_panel=PANEL_MODEL),
    refine_snippet_len: Optional[int] = typer.Option(None, "--refine-snippet-len", metavar="L", help="frames per refinement snippet (default: 3)", rich_help_panel=PANEL_MODEL),
    refine_start_dilation: Optional[int] = typer.Option(None, "--refine-start-dilation", metavar="D", help="first refinement dilation (default: 6)", rich_help_panel=PANEL_MODEL),
    resample_method: str = typer.Option("bilinear", "--resample-method", metavar="METHOD", help="bilinear | bicubic | nearest | nearest-exact | area (or BILINEAR, NEAREST_EXACT...)", rich_help_panel=PANEL_MODEL),
    unload_snippet: bool = typer.Option(False, "--unload-snippet/--no-unload-snippet", help="keep decoded snippets in CPU memory (saves GPU memory)", rich_help_panel=PANEL_SPEED),
    verbose: bool = typer.Option(False, "--verbose/--no-verbose", help="print per-stage timings", rich_help_panel=PANEL_MONITORING),
    seed: Optional[int] = typer.Option(None, "--seed", metavar="N", help="noise seed, for reproducible runs", rich_help_panel=PANEL_MODEL),
    quality: str = typer.Option("balanced", "--quality", metavar="LEVEL", help="co-alignment quality: fast | balanced | quality", rich_help_panel=PANEL_MODEL),
    coalign: str = typer.Option("exact", "--coalign", metavar="SOLVER", help="co-alignment solver: exact | adam (the reference's)", rich_help_panel=PANEL_MODEL),
    device: str = typer.Option("auto", "--device", metavar="DEVICE", help=DEVICE_HELP, rich_help_panel=PANEL_MODEL),
    decoder: str = typer.Option("full", "--decoder", metavar="DECODER", help=DECODER_HELP, rich_help_panel=PANEL_MODEL),
    encoder: str = typer.Option("full", "--encoder", metavar="ENCODER", help=ENCODER_HELP, rich_help_panel=PANEL_MODEL),
    unet_bs: int = typer.Option(4, "--unet-bs", metavar="N", help="snippets per UNet call (independent of --max-vae-bs)", rich_help_panel=PANEL_SPEED),
    compile_model: bool = typer.Option(False, "--compile/--no-compile", help="torch.compile the UNet and decoder (CUDA graphs on CUDA); the first snippets wait for the compile, eager where it cannot", rich_help_panel=PANEL_SPEED),
) -> int:
    """Offline: a video file (or folder, or .txt list) to depth .npy and colour-mapped videos."""
    from pipeline.preprocess import check_res
    from pipeline.presets import get_preset

    # The commonest typos, answered before the job's imports load torch (seconds); the job checks the rest.
    check_res(get_preset(preset, res=res).res)
    inputs = list(input_pos or []) + list(input_video or [])
    if not inputs:
        raise BadInputError("give an input video: rdstream file INPUT (a file, a folder or a .txt list)")
    from stream.cli.starting import say_starting

    say_starting("file")
    from stream.cli.file_job import FileJobOptions, run_file_job

    opts = FileJobOptions(
        inputs=inputs, output_dir=output_dir, checkpoint=checkpoint or default_checkpoint(), preset=preset,
        start_frame=start_frame, frame_count=frame_count, res=res, max_vae_bs=max_vae_bs, fps=fps,
        restore_res=restore_res, save_sbs=save_sbs, save_npy=save_npy, save_snippets=save_snippets,
        save_16bit=save_16bit, cmaps=split_values(cmap) or ["Spectral_r", "Greys_r"],
        dilations=split_values(dilations, int), cap_dilation=cap_dilation, dtype=dtype, snip_len=snip_len, strides=split_values(strides, int),
        refine_step=refine_step, refine_snippet_len=refine_snippet_len,
        refine_start_dilation=refine_start_dilation, resample_method=resample_method,
        unload_snippet=unload_snippet, verbose=verbose, seed=seed, quality=quality, coalign=coalign, device=device,
        decoder=decoder, encoder=encoder, unet_bs=unet_bs, compile=compile_model,
    )
    return run_file_job(opts)
