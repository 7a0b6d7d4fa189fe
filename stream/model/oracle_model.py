"""The stand-in model ``-c oracle:TRUTH.npy?delay_ms=N`` (development and tests only).

It answers each model call with the true depth of those frames, read from TRUTH.npy (float32
``[N, H, W]``, the quantity the model estimates: larger = nearer, e.g. inverse depth; resized to the
processing size), after ``delay_ms`` on the model thread, through the same snippet, alignment and
display path as the real model. With it a benchmark measures what streaming, alignment, filling and
upsampling add to a perfect model's error, with no weights. Its colour outputs carry the random
test model's "NOT DEPTH" mark: it is not a depth model.

``check_oracle`` needs no torch (it reads the file's header, and the source's declared length), so
a missing file, a wrong dtype or shape, or fewer frames than the source is said before anything
loads. ``OracleSteps`` is a ``stream.model.depth_steps.DepthSteps``; it knows each frame by its source
index (``takes_frame_index``: the encode stage passes it).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from io_adapters.uri import OptionReader, parse_uri
from pipeline.errors import BadInputError
from pipeline.preprocess import processing_size

ORACLE_PREFIX = "oracle:"
ORACLE_OPTIONS = {"delay_ms": "milliseconds each model call takes, default 0"}


def is_oracle(checkpoint: str | None) -> bool:
    return bool(checkpoint) and checkpoint.lower().startswith(ORACLE_PREFIX)


@dataclass(frozen=True)
class OracleSpec:
    """``oracle:PATH?delay_ms=N`` read: the truth file, and seconds per model call."""

    path: Path
    delay_s: float


def parse_oracle(checkpoint: str) -> OracleSpec:
    """``oracle:TRUTH.npy?delay_ms=N`` -> OracleSpec (BadInputError for a malformed one)."""
    parsed = parse_uri(checkpoint)
    options = OptionReader(parsed, ORACLE_OPTIONS)
    if not parsed.target:
        raise BadInputError("-c oracle: needs the truth file, e.g. -c oracle:truth.npy?delay_ms=100")
    delay_ms = options.integer("delay_ms", 0, minimum=0, maximum=60_000)
    return OracleSpec(Path(parsed.target), delay_ms / 1000.0)


def source_length(source_uri: str) -> int | None:
    """Frames a source declares it will deliver: ``test:?frames=N``, a file's count (after
    ``start``/``frames``); None for an endless one (a live input, ``test:`` without frames, ``loop=1``)."""
    parsed = parse_uri(source_uri)
    options = parsed.options
    if parsed.scheme == "test":
        return int(options.get("frames", 0)) or None
    if parsed.scheme == "file":
        if options.get("loop") in ("1", "true", "yes", "on"):
            return None
        from io_adapters.video_file import probe_video

        total = max(0, probe_video(parsed.target).frame_count - int(options.get("start", 0)))
        asked = int(options.get("frames", 0))
        return min(asked, total) if asked and total else (asked or total or None)
    return None


def check_oracle(checkpoint: str, source_uri: str) -> OracleSpec:
    """The oracle's file and options, and that it holds a depth for every source frame; one
    BadInputError per problem (checked before anything loads)."""
    spec = parse_oracle(checkpoint)
    if not spec.path.is_file():
        raise BadInputError(f"-c oracle: no truth file {str(spec.path)!r}")
    try:
        truth = np.load(spec.path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as err:
        raise BadInputError(f"-c oracle: {str(spec.path)!r} is not a .npy array ({err})") from None
    if truth.dtype != np.float32 or truth.ndim != 3 or min(truth.shape) < 1:
        raise BadInputError(f"-c oracle: {str(spec.path)!r} holds {truth.dtype} {tuple(truth.shape)}; expected "
                            "float32 [frames, height, width] (larger = nearer)")
    frames = source_length(source_uri)
    if frames is None:
        raise BadInputError(f"-c oracle: the source {source_uri!r} has no declared length; the oracle needs one "
                            "true depth per source frame (use a file or test:?frames=N)")
    if truth.shape[0] < frames:
        raise BadInputError(f"-c oracle: {str(spec.path)!r} has {truth.shape[0]} frames, the source {frames}")
    return spec


@dataclass(frozen=True)
class OracleModel:
    """What the run command shows about a model, for the oracle (``announce_model``, the start line):
    not a depth model, so its colour outputs are marked."""

    device: object
    dtype: object = "float32"
    is_tiny: bool = False
    output_is_noise: bool = True

    class _Part:
        name = "oracle"
        is_random = False

    decoder = _Part()
    encoder = _Part()


class OracleSteps:
    """``DepthSteps`` answering with the truth (see the module docstring).

    truth: float32 [N, H, W] (may be memory-mapped); res: the processing size's longer edge (0 =
    native), as the real steps; delay_s: seconds each ``predict`` sleeps on the model thread;
    fit_stride: the aligner's (``OnlineAligner.fit_stride``).
    """

    takes_frame_index = True

    def __init__(self, truth: np.ndarray, res: int, delay_s: float = 0.0, fit_stride: int = 10) -> None:
        self.truth = truth
        self.res = res
        self.delay_s = delay_s
        from stream.model.depth_steps import StepCounts  # torch: not for check_oracle's start-up import

        self.fit_stride = fit_stride
        self.counts = StepCounts()
        self._size: tuple[int, int] | None = None

    def fix_size(self, height: int, width: int) -> tuple[int, int]:
        """The processing size, fixed by the first frame's ``height`` x ``width`` (as the real steps')."""
        if self._size is None:
            self._size = processing_size(height, width, self.res)
        return self._size

    def encode(self, rgb: np.ndarray, index: int = 0) -> tuple[np.ndarray, int]:
        """uint8 [H, W, 3] of source frame ``index`` -> (display rgb [H', W', 3], the index as its "latent")."""
        self.fix_size(rgb.shape[0], rgb.shape[1])
        if not 0 <= index < len(self.truth):
            raise BadInputError(f"-c oracle: source frame {index} has no true depth (the file has {len(self.truth)})")
        self.counts.encodes += 1
        height, width = self._size
        display = rgb if rgb.shape[:2] == (height, width) else cv2.resize(rgb, (width, height),
                                                                         interpolation=cv2.INTER_AREA)
        return np.ascontiguousarray(display), int(index)

    def truth_at(self, index: int) -> np.ndarray:
        """The true depth of source frame ``index`` at the processing size, float32 [H', W']."""
        height, width = self._size
        depth = np.asarray(self.truth[index], dtype=np.float32)
        if depth.shape != (height, width):
            depth = cv2.resize(depth, (width, height), interpolation=cv2.INTER_LINEAR)
        return depth

    def predict(self, latents, merged):
        """The truth of each snippet's frames, after ``delay_s`` (a model call's time)."""
        import torch

        from pipeline.coalign.fit_grid import fit_grid
        from pipeline.coalign.snippet_depth import SnippetDepth

        if self.delay_s:
            time.sleep(self.delay_s)
        out = []
        for indices, flags in zip(latents, merged):
            depth = torch.from_numpy(np.stack([self.truth_at(i) for i in indices]))
            grid = fit_grid(depth.shape[1], depth.shape[2], self.fit_stride)
            keep = torch.tensor(flags)
            out.append(SnippetDepth(depth[keep], tuple(flags), grid.take(depth)))
            self.counts.unet_frame_passes += len(indices)
            self.counts.decodes_full += int(keep.sum())
        return out
