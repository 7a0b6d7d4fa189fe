"""What ``rdstream run`` sets up for ``--fill``, the keyframe caps, ``--output-size`` and the oracle
model once the checks passed (``stream.cli.fill_checks``); kept apart so run_job only calls it."""

from __future__ import annotations

import numpy as np

from stream.cli.fill_checks import FillSettings
from stream.model.oracle_model import OracleModel, OracleSteps, parse_oracle


def fill_config(fill: FillSettings | None, sink_sizes: list | None) -> dict:
    """The ``NodeConfig`` fields of these options (fill, model_fps, idle_fps, sink_sizes)."""
    out: dict = {"sink_sizes": tuple(sink_sizes or ())}
    if fill is not None:
        out.update(fill=fill.fill, model_fps=fill.model_fps, idle_fps=fill.idle_fps)
    return out


def fill_policy(fill: FillSettings | None) -> str:
    """The start line's words for it, e.g. '; every frame out (--fill flow: depth carried by optical
    flow between model frames), model at most 10 fps, 1 fps while the picture is still'."""
    if fill is None or not fill.realtime:
        return ""
    words = {"flow": "every frame out (--fill flow: depth carried by optical flow between model frames)",
             "hold": "every frame out (--fill hold: the last model depth repeated)",
             "drop": "only the frames the model took go out (--fill drop)"}[fill.fill]
    if fill.model_fps is not None:
        words += f", model at most {fill.model_fps:g} fps"
    if fill.idle_fps is not None:
        words += f", {fill.idle_fps:g} fps while the picture is still"
    return "; " + words


def oracle_steps(checkpoint: str, res: int, fit_stride: int) -> OracleSteps:
    """The oracle's steps (its file was checked before; memory-mapped, so long truths cost no memory)."""
    spec = parse_oracle(checkpoint)
    return OracleSteps(np.load(spec.path, mmap_mode="r"), res, spec.delay_s, fit_stride)


def oracle_model() -> OracleModel:
    """What the start line and the banners read of the oracle: the CPU, float32, a marked output."""
    import torch

    return OracleModel(device=torch.device("cpu"), dtype=torch.float32)
