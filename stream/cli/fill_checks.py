"""``--fill``, ``--model-fps``, ``--idle-fps``, ``--output-size`` and ``-c oracle:``: their torch-free checks.

``rdstream run`` calls ``check_fill`` from ``check_basics`` (before the model loads), so a typo is one
line and exit 2 at once. Defaults: under ``--realtime`` (live sources) ``--fill flow``, with the
still-scene rule at ``--idle-fps 1``; ``--fill drop`` is the node as it was (one output per model
frame, no keyframe caps unless asked for); ``--no-drop`` sends every frame through the model, so
``--fill flow|hold`` cannot apply and is refused; ``--fill flow|hold`` on a file or ``test:``
without ``--realtime`` turns realtime on (a file then plays at its own rate, as a camera would).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from io_adapters.output_size import parse_output_size, split_size_option
from pipeline.errors import BadInputError
from stream.model.oracle_model import check_oracle, is_oracle

FILL_MODES = ("flow", "hold", "drop")
DEFAULT_IDLE_FPS = 1.0


@dataclass(frozen=True)
class FillSettings:
    """fill: flow | hold | drop; model_fps, idle_fps: keyframe caps (None = none); realtime: the
    frame policy after ``--fill`` (True = newest wins)."""

    fill: str
    model_fps: float | None
    idle_fps: float | None
    realtime: bool


def _rate(value: float | None, option: str) -> float | None:
    if value is None:
        return None
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        err = BadInputError(f"{option} {value}: must be a number of frames per second above 0, e.g. {option} 10")
        err.option = option.removeprefix("--").replace("-", "_")  # RunOptions' field: a rig file's key
        raise err
    return float(value)


def check_fill(fill: str | None, model_fps: float | None, idle_fps: float | None, realtime: bool | None,
               live_source: bool) -> FillSettings:
    """Resolve and check the fill options (module docstring); one BadInputError per problem."""
    if fill is not None and fill.lower() not in FILL_MODES:
        raise BadInputError(f"--fill {fill!r}: use flow (depth carried by optical flow to every frame), hold "
                            "(the last depth repeated) or drop (only the frames the model took)")
    model_fps, idle_fps = _rate(model_fps, "--model-fps"), _rate(idle_fps, "--idle-fps")
    fill = fill.lower() if fill is not None else None
    if realtime is False and fill in ("flow", "hold"):
        raise BadInputError(f"--fill {fill} needs --realtime: with --no-drop every frame goes through the model")
    if realtime is False and (model_fps is not None or idle_fps is not None):
        raise BadInputError("--model-fps and --idle-fps need --realtime: with --no-drop every frame goes through the model")
    drop_frames = realtime if realtime is not None else (live_source or fill in ("flow", "hold"))
    if not drop_frames:
        return FillSettings("drop", None, None, False)
    fill = fill or "flow"
    if fill != "drop" and idle_fps is None:
        idle_fps = DEFAULT_IDLE_FPS
    return FillSettings(fill, model_fps, idle_fps, True)


def split_sink_sizes(sinks: list[str], output_size: str | None) -> tuple[list[str], list | None]:
    """Sink URIs without ``size=``, and each sink's size: its own ``size=``, else ``--output-size``,
    else None; the list itself None when no sink has a size."""
    default = parse_output_size(output_size, "--output-size") if output_size is not None else None
    stripped, sizes = [], []
    for uri in sinks:
        bare, size = split_size_option(uri)
        stripped.append(bare)
        sizes.append(size if size is not None else default)
    return stripped, sizes if any(size is not None for size in sizes) else None


def check_model_source(checkpoint: str, source: str) -> None:
    """``-c oracle:...``: its file against the source (the only model checked before loading)."""
    if is_oracle(checkpoint):
        check_oracle(checkpoint, source)
