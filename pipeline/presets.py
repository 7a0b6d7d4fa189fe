"""Presets of the reference ``run_video`` (docs/method.md, section 7) and the quality modes (section 5)."""

from __future__ import annotations

from dataclasses import dataclass, replace

from pipeline.errors import BadInputError


@dataclass(frozen=True)
class Preset:
    """One named set of defaults; any field can be overridden from the command line.

    dilations: snippet dilations (1 must be present). refine_steps: 0 = no refinement.
    res: longer edge in pixels (0 = native). dtype: on mps/cuda ("fp16", "fp32", "bf16").
    """

    name: str
    dilations: tuple[int, ...]
    refine_steps: int
    res: int
    dtype: str
    cap_dilation: bool
    snip_len: int = 3
    refine_snippet_len: int = 3
    refine_start_dilation: int = 6


PRESETS = {
    "fast": Preset("fast", (1, 25), 0, 768, "fp16", True),
    "fast1024": Preset("fast1024", (1, 25), 0, 1024, "fp16", True),
    "full": Preset("full", (1, 10, 25), 10, 1024, "fp16", True),
    "paper": Preset("paper", (1, 10, 25), 10, 768, "fp32", False),
}


def get_preset(name: str, **overrides) -> Preset:
    """The preset ``name`` with ``overrides`` (fields left None are not overridden)."""
    if name not in PRESETS:
        raise BadInputError(f"--preset {name}: unknown preset; use one of {', '.join(PRESETS)}")
    changes = {k: (tuple(v) if isinstance(v, list) else v) for k, v in overrides.items() if v is not None}
    return replace(PRESETS[name], **changes)
