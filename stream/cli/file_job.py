"""``rdstream file``: the offline job. Video files in; .npy, colour-mapped and 16-bit videos out.

For each input: read its frames -> OfflinePipeline -> write the outputs (``file_outputs``: written to a
temporary name and renamed when complete, so every output file that exists is complete, even
after Ctrl-C). In a batch, one failing input is reported in one line and the others go on; the
exit code is then non-zero.
"""

from __future__ import annotations

import math
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from io_adapters.names import check_path_fits
from io_adapters.output_paths import remove_if_left_empty
from io_adapters.registry import MAX_FPS
from io_adapters.video_file import VideoInfo, iter_video_frames, probe_video
from pipeline.checkpoint import RollingDepthModel, choose_dtype, device_label, load_rolling_depth, resolve_device
from pipeline.cost_estimate import measure_gflops, model_scale, offline_work, rough_duration
from io_adapters.encodings import RANDOM_MODEL_MARK, colormap_lut
from pipeline.errors import BadInputError, RollingDepthError, RuntimeFailure
from pipeline.device import prepare_device
from pipeline.device_names import parse_device_name
from pipeline.noise_seed import check_seed
from pipeline.offline import OfflinePipeline, OfflineSettings
from pipeline.preprocess import describe_sizes, processing_size
from pipeline.presets import get_preset
from pipeline.small_files import read_small_text
from pipeline.tiny_decoder import resolve_decoder
from pipeline.tiny_encoder import resolve_encoder
from stream.cli.file_outputs import depth_to_output_size, output_names, partial_path, write_outputs
from stream.cli.model_banner import announce_model
from stream.cli.progress import stage_progress

VIDEO_SUFFIXES = {".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v", ".mpg", ".mpeg", ".ts", ".mxf", ".gif"}


@dataclass
class FileJobOptions:
    """The command line of ``rdstream file``; None means "take the preset's value"."""

    inputs: list[str]
    output_dir: str
    checkpoint: str
    preset: str = "fast"
    start_frame: int = 0
    frame_count: int = 0
    res: int | None = None
    max_vae_bs: int = 4
    fps: float = 0.0
    restore_res: bool = False
    save_sbs: bool = True
    save_npy: bool = True
    save_snippets: bool = False
    save_16bit: bool = False
    cmaps: list[str] = field(default_factory=lambda: ["Spectral_r", "Greys_r"])
    dilations: list[int] | None = None
    cap_dilation: bool | None = None
    dtype: str | None = None
    snip_len: int | None = None
    strides: list[int] | None = None
    refine_step: int | None = None
    refine_snippet_len: int | None = None
    refine_start_dilation: int | None = None
    resample_method: str = "bilinear"
    unload_snippet: bool = False
    verbose: bool = False
    seed: int | None = None
    quality: str = "balanced"
    coalign: str = "exact"
    device: str = "auto"
    decoder: str = "full"
    encoder: str = "full"
    unet_bs: int = 4
    compile: bool = False


def collect_inputs(spec: str) -> list[Path]:
    """A video file, a folder (its video files, sorted) or a .txt list (one path per line)."""
    path = Path(spec).expanduser()
    if not path.exists():
        raise BadInputError(f"input {spec}: no such file or folder")
    if path.is_dir():
        found = sorted(p for p in path.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES and p.is_file())
        if not found:
            raise BadInputError(f"input folder {spec}: holds no video files ({', '.join(sorted(VIDEO_SUFFIXES))})")
        return found
    if path.suffix.lower() == ".txt":
        text = read_small_text(path, f"input list {spec}", "a list of videos (one path per line)")
        lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
        if not lines:
            raise BadInputError(f"input list {spec}: is empty")
        return [p if p.is_absolute() else path.parent / p for p in map(Path, lines)]
    return [path]


def check_output_dir(folder: str) -> Path:
    """Create the output folder and prove it is writable, before any model work."""
    path = Path(folder).expanduser()
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".rdstream-write-test-"):
            pass
    except OSError as err:
        raise BadInputError(f"output folder {folder}: cannot write there ({err.strerror or err})") from None
    return path


def build_settings(opts: FileJobOptions) -> tuple[OfflineSettings, str]:
    """Preset values overridden by the options, checked once (``OfflineSettings`` checks itself when
    made); returns the settings and the preset's precision for GPUs (see ``choose_dtype``)."""
    preset = get_preset(
        opts.preset, dilations=opts.dilations, cap_dilation=opts.cap_dilation, res=opts.res,
        snip_len=opts.snip_len, strides=opts.strides, refine_steps=opts.refine_step, refine_snippet_len=opts.refine_snippet_len,
        refine_start_dilation=opts.refine_start_dilation, dtype=opts.dtype,
    )
    settings = OfflineSettings(
        dilations=tuple(preset.dilations), snip_len=preset.snip_len, strides=tuple(preset.strides), cap_dilation=preset.cap_dilation,
        res=preset.res, resample_method=opts.resample_method, refine_steps=preset.refine_steps,
        refine_snippet_len=preset.refine_snippet_len, refine_start_dilation=preset.refine_start_dilation,
        max_vae_bs=opts.max_vae_bs, seed=opts.seed, coalign=opts.coalign, quality=opts.quality,
        unload_snippet=opts.unload_snippet, keep_snippets=opts.save_snippets, unet_bs=opts.unet_bs,
    )
    return settings, preset.dtype


def check_options(opts: FileJobOptions) -> None:
    """Option checks that need no model (each with its own message)."""
    if opts.start_frame < 0:
        raise BadInputError(f"--start-frame {opts.start_frame}: must be 0 or more")
    if opts.frame_count < 0:
        raise BadInputError(f"--frame-count {opts.frame_count}: must be 0 (all frames) or more")
    if not math.isfinite(opts.fps) or opts.fps < 0 or opts.fps > MAX_FPS:
        raise BadInputError(f"--fps {opts.fps}: must be 0 (the input's rate) or a rate up to {MAX_FPS:g}")
    check_seed(opts.seed)
    for name in opts.cmaps:
        colormap_lut(name)
    parse_device_name(opts.device)  # the name only; whether this machine has it needs torch


def no_frames_error(path: Path, info: VideoInfo, opts: FileJobOptions) -> BadInputError:
    return BadInputError(f"input {path}: no frames to process (start frame {opts.start_frame}, video has "
                         f"{info.frame_count or 'unknown'} frames)")


def check_input(path: Path, info: VideoInfo, out: Path, opts: FileJobOptions) -> None:
    """BadInputError when the probed input ``path`` cannot be processed as asked: --start-frame
    past its end, or an output (its partial name, the longest) whose name, made from the input's,
    is too long for the file system of ``out``."""
    if info.frame_count and opts.start_frame >= info.frame_count:
        raise no_frames_error(path, info, opts)
    for name in output_names(path.stem, opts).values():
        check_path_fits(partial_path(out / name), f"input {path.name} (its outputs are named after it)")


def probe_inputs(inputs: list[Path], console: Console, check=lambda path, info: None) -> tuple[dict[Path, VideoInfo], int]:
    """Probe every input before the model loads: {readable input: its info} and the exit code so far.

    ``check(path, info)`` raises for an input that cannot be processed as asked (``check_input``).
    One unreadable input of several is reported in one line and skipped (the others go on); when
    none can be read, the first problem is raised (one line, exit 2).
    """
    infos, failures = {}, []
    for path in inputs:
        try:
            info = probe_video(path)
            check(path, info)
            infos[path] = info
        except RollingDepthError as err:
            failures.append(err)
    if failures and not infos:
        raise failures[0]
    for err in failures:
        console.print(f"[red]rdstream: error:[/] {err}", highlight=False, soft_wrap=True)
    return infos, max((err.exit_code for err in failures), default=0)


def process_one(path: Path, info: VideoInfo, model: RollingDepthModel, pipeline: OfflinePipeline,
                opts: FileJobOptions, out: Path, console: Console) -> dict:
    """Read, infer and write one input (``info``: its probe); returns its stage seconds and counts."""
    stem = path.stem
    processed = processing_size(info.height, info.width, pipeline.settings.res)
    console.print(describe_sizes(path.name, (info.height, info.width), processed), highlight=False, soft_wrap=True)
    timings: dict[str, float] = {}
    with stage_progress(console, stem, keep=opts.verbose) as report:
        start = time.perf_counter()
        expected = frames_to_process(info, opts) or opts.frame_count
        frames = []
        for rgb in iter_video_frames(path, opts.start_frame, opts.frame_count):
            frames.append(rgb)
            report("read", 1, max(expected, len(frames)))
        if not frames:
            raise no_frames_error(path, info, opts)
        frames = np.stack(frames)
        timings["read"] = time.perf_counter() - start
        try:
            result = pipeline(frames, report)
        except torch.OutOfMemoryError:
            raise RuntimeFailure(f"{path.name}: out of memory; try a smaller --res or --max-vae-bs, or --unload-snippet") from None
        timings.update(result.seconds)
        start = time.perf_counter()
        size = frames.shape[1:3] if opts.restore_res else None
        depth = depth_to_output_size(result.depth, size, opts.resample_method)
        fps = opts.fps or info.fps or 30.0
        try:
            written = write_outputs(stem, out, frames, depth, fps, opts, result.snippets, report,
                                    RANDOM_MODEL_MARK if model.output_is_noise else None)
        except OSError as err:
            raise RuntimeFailure(f"{path.name}: cannot write its outputs to {out} ({err.strerror or err})") from None
        timings["write"] = time.perf_counter() - start
    console.print(f"[green]{path.name}[/]: {len(frames)} frames -> {out}/: " + ", ".join(p.name for p in written), soft_wrap=True)
    return {"seconds": timings, "counts": result.counts}


def frames_to_process(info: VideoInfo, opts: FileJobOptions) -> int:
    """Frames of one input this run processes (0 when its container does not say how many)."""
    frames = max(0, info.frame_count - opts.start_frame) if info.frame_count else 0
    return min(frames, opts.frame_count) if opts.frame_count and frames else frames


def cpu_time_note(opts: FileJobOptions, settings: OfflineSettings, infos: dict[Path, VideoInfo], model,
                  gflops: float | None = None) -> str | None:
    """Roughly how long the run takes on this CPU (pipeline.cost_estimate), and what ``--res 384``
    and ``--preset live`` would take instead when they save a quarter or more; None when no input
    says how many frames it has. ``gflops``: the CPU's rate (None = measure it now)."""
    scale = model_scale(model)

    def total_gflop(run: OfflineSettings) -> tuple[float, int, tuple[int, int]]:
        work, frames, largest = 0.0, 0, (0, 0)
        for info in infos.values():
            count = frames_to_process(info, opts)
            size = processing_size(info.height, info.width, run.res)
            counts = offline_work(count, run.dilations, run.snip_len, run.cap_dilation, run.strides or None,
                                  run.refine_steps, run.refine_snippet_len, run.refine_start_dilation) if count else None
            if counts is not None:
                work, frames = work + counts.gflop(*size, scale), frames + count
                largest = max(largest, size, key=lambda hw: hw[0] * hw[1])
        return work, frames, largest

    work, frames, (height, width) = total_gflop(settings)
    if not frames:
        return None
    rate = gflops or measure_gflops()
    seconds = work / rate
    videos = f"{len(infos)} videos, " if len(infos) > 1 else ""
    amount = f"{work / 1e3:,.0f} TFLOP" if work >= 1e4 else f"{work:,.0f} GFLOP"
    note = (f"on the CPU this run takes {rough_duration(seconds)} ({videos}{frames} frames at {width}x{height}: "
            f"{amount} at the {rate:.0f} GFLOP/s this CPU gives now)")
    shorter: dict[str, list[str]] = {}  # what it would take -> the options that give it
    for option, changed in (("--res 384", {"res": 384}), ("--preset live", {"preset": "live", "res": None})):
        other_seconds = total_gflop(build_settings(replace(opts, **changed))[0])[0] / rate
        if other_seconds < 0.75 * seconds:
            shorter.setdefault(rough_duration(other_seconds), []).append(option)
    if shorter:
        note += "; " + "; ".join(f"{' or '.join(options)}: {duration}" for duration, options in shorter.items())
    return note


def print_timings(console: Console, name: str, stats: dict) -> None:
    table = Table(title=f"{name}: seconds per stage")
    for stage in stats["seconds"]:
        table.add_column(stage)
    table.add_row(*(f"{s:.2f}" for s in stats["seconds"].values()))
    console.print(table)
    console.print("counts: " + ", ".join(f"{k}={v}" for k, v in stats["counts"].items()))


def run_file_job(opts: FileJobOptions, console: Console | None = None) -> int:
    """Run the offline job; returns the exit code (0, or the worst error's code when inputs failed).

    An output folder this run created is removed again if the run leaves it empty (it failed).
    """
    with remove_if_left_empty(opts.output_dir):
        return _run_file_job(opts, console)


def _run_file_job(opts: FileJobOptions, console: Console | None = None) -> int:
    console = console or Console(stderr=True)
    # 1. Everything that can be checked without the model, before loading it.
    check_options(opts)
    settings, preset_dtype = build_settings(opts)
    inputs = [p for spec in opts.inputs for p in collect_inputs(spec)]
    # a missing or damaged video, a --start-frame past its end, or outputs' names too long: said now
    folder = Path(opts.output_dir).expanduser()
    infos, exit_code = probe_inputs(inputs, console, lambda path, info: check_input(path, info, folder, opts))
    out = check_output_dir(opts.output_dir)
    device = resolve_device(opts.device)
    dtype = choose_dtype(opts.dtype, preset_dtype, device)
    decoder = resolve_decoder(opts.decoder)  # may download: still before the model loads
    encoder = resolve_encoder(opts.encoder)
    # 2. The model.
    model = load_rolling_depth(opts.checkpoint, device, dtype, decoder, encoder)
    announce_model(model, console)
    console.print(f"rdstream file: running on {device_label(model.device)}, {str(model.dtype).removeprefix('torch.')}",
                  highlight=False, markup=False, soft_wrap=True)
    for note in prepare_device(model.device, model.dtype):
        console.print(f"rdstream: note: {note}", highlight=False, markup=False, soft_wrap=True)
    if opts.compile:
        from pipeline.compiled import compile_cost, compile_model

        console.print(f"--compile: the UNet and decoder compile on the first snippets: {compile_cost(model.device)}; "
                      f"Ctrl-C stops it at once", highlight=False, markup=False, soft_wrap=True)
        model = compile_model(model, lambda line: console.print(line, highlight=False, markup=False, soft_wrap=True))
    if model.device.type == "cpu":  # minutes to hours: said before the wait, with what shortens it
        note = cpu_time_note(opts, settings, infos, model)
        if note:
            console.print(f"rdstream: note: {note}", highlight=False, markup=False, soft_wrap=True)
    pipeline = OfflinePipeline(model, settings)
    # 3. Each readable input in turn; a failure is one line and the others go on.
    for path, info in infos.items():
        try:
            stats = process_one(path, info, model, pipeline, opts, out, console)
        except RollingDepthError as err:
            console.print(f"[red]rdstream: error:[/] {err}", highlight=False, soft_wrap=True)
            exit_code = max(exit_code, err.exit_code)
            continue
        if opts.verbose:
            print_timings(console, path.name, stats)
    return exit_code
