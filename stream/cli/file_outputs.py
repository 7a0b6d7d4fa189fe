"""What ``rdstream file`` writes for one input: the output names, and each output written to a
temporary name beside its final one and renamed when complete, so every output file that exists
is complete, even after Ctrl-C (and kept under another name when Windows refuses the rename)."""

from __future__ import annotations

import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from io_adapters.encodings import burn_mark, colormap_lut, to_uint16, to_uint8
from io_adapters.video_writers import ColorVideoWriter, Gray16VideoWriter
from pipeline.errors import RuntimeFailure
from pipeline.preprocess import resize

if TYPE_CHECKING:  # the options' type only: file_job imports this module
    from stream.cli.file_job import FileJobOptions


def partial_path(path: Path) -> Path:
    """Where an output is written until it is complete: ``NAME.partial.EXT`` beside it."""
    return path.with_name(f"{path.stem}.partial{path.suffix}")


@contextmanager
def completed_as(path: Path):
    """Yield a temporary name beside ``path``; it becomes ``path`` only when the block completes.

    An interrupted or failed write leaves no file under the final name (and no partial file), so
    every output that exists is complete. The suffix is kept: PyAV picks the container from it.
    """
    partial = partial_path(path)
    try:
        yield partial
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    move_into_place(partial, path)


# Windows refuses to replace a file another program has open (a player showing the last run's
# output), and virus scanners hold a new file for a moment: retry briefly, then keep the finished
# output under another name rather than lose it.
REPLACE_RETRY_DELAYS_S = (0.1, 0.2, 0.4, 0.8)


def move_into_place(finished: Path, path: Path) -> None:
    """Rename the complete file ``finished`` to ``path``; when the OS keeps refusing (the old
    ``path`` is open elsewhere), keep it as ``NAME.new.EXT`` and say so in one line.

    Raises:
        RuntimeFailure: the replacement was refused; the message names where the output is.
    """
    for delay in (*REPLACE_RETRY_DELAYS_S, None):
        try:
            os.replace(finished, path)
            return
        except PermissionError:
            if delay is None:
                break
            time.sleep(delay)
    kept = path.with_name(f"{path.stem}.new{path.suffix}")
    try:
        os.replace(finished, kept)
    except OSError:
        kept = finished
    raise RuntimeFailure(f"{path} is open in another program, so it could not be replaced; "
                         f"the new output is complete as {kept.name} (close the other program and rename it)")


def save_npy(path: Path, array: np.ndarray) -> None:
    with completed_as(path) as partial, open(partial, "wb") as fh:
        np.save(fh, array)


def save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    with completed_as(path) as partial, open(partial, "wb") as fh:
        np.savez(fh, **arrays)


def depth_to_output_size(depth: np.ndarray, size: tuple[int, int] | None, method: str) -> np.ndarray:
    """float32 [N, H', W'] -> [N, H, W] at ``size`` (None keeps the processing size)."""
    if size is None or tuple(depth.shape[1:]) == tuple(size):
        return depth
    resized = resize(torch.from_numpy(depth)[:, None], size, method)[:, 0]
    return resized.clamp_(-1, 1).numpy()


def rgb_at_size(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """uint8 [H, W, 3] -> uint8 [h, w, 3] (the RGB half of the side-by-side matches the depth's size)."""
    if rgb.shape[:2] == tuple(size):
        return rgb
    image = torch.from_numpy(rgb).permute(2, 0, 1)[None].float()
    return resize(image, size, "bilinear")[0].permute(1, 2, 0).clamp_(0, 255).round_().byte().numpy()


def output_names(stem: str, opts: FileJobOptions) -> dict[tuple[str, str], str]:
    """The file name of every output ``opts`` asks for, for the input ``stem``, keyed by
    (kind, colour map): ("npy", ""), ("snippets", ""), ("cmap", NAME) per colour map, ("rgbd", ""),
    ("depth16", "")."""
    names = {}
    if opts.save_npy:
        names["npy", ""] = f"{stem}_pred.npy"
    if opts.save_snippets:
        names["snippets", ""] = f"{stem}_snippets.npz"
    for cmap in opts.cmaps:
        names["cmap", cmap] = f"{stem}_{cmap}.mp4"
    if opts.save_sbs:
        names["rgbd", ""] = f"{stem}_rgbd.mp4"
    if opts.save_16bit:
        names["depth16", ""] = f"{stem}_depth16.mkv"
    return names


def write_outputs(stem: str, out: Path, frames: np.ndarray, depth: np.ndarray, fps: float, opts: FileJobOptions, snippets, report,
                  mark: str | None = None) -> list[Path]:
    """Write every requested output for one input; returns the paths written."""
    written = []
    names = output_names(stem, opts)
    if opts.save_npy:
        save_npy(out / names["npy", ""], depth.astype(np.float32))
        written.append(out / names["npy", ""])
    if snippets is not None:
        save_npz(out / names["snippets", ""], snippets)
        written.append(out / names["snippets", ""])
    # Colour maps span the whole video's min/max (refined presets are clipped, not renormalised).
    low, high = float(depth.min()), float(depth.max())
    depth01 = (depth - low) / max(high - low, 1e-12)
    total = len(depth) * (len(opts.cmaps) + int(opts.save_sbs) + int(opts.save_16bit))
    for name in opts.cmaps:
        lut = colormap_lut(name)
        path = out / names["cmap", name]
        with completed_as(path) as partial, ColorVideoWriter(partial, fps) as writer:
            for frame in depth01:
                writer.write(marked(lut[to_uint8(frame)], mark))
                report("write", 1, total)
        written.append(path)
    if opts.save_sbs:
        lut = colormap_lut(opts.cmaps[0] if opts.cmaps else "Spectral_r")
        path = out / names["rgbd", ""]
        with completed_as(path) as partial, ColorVideoWriter(partial, fps) as writer:
            for rgb, frame in zip(frames, depth01):
                writer.write(np.concatenate([rgb_at_size(rgb, frame.shape), marked(lut[to_uint8(frame)], mark)], axis=1))
                report("write", 1, total)
        written.append(path)
    if opts.save_16bit:
        path = out / names["depth16", ""]
        with completed_as(path) as partial, Gray16VideoWriter(partial, fps) as writer:
            for frame in depth01:
                writer.write(to_uint16(frame))
                report("write", 1, total)
        written.append(path)
    return written


def marked(picture: np.ndarray, mark: str | None) -> np.ndarray:
    return burn_mark(np.ascontiguousarray(picture), mark) if mark else picture
