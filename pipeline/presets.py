"""Presets of the reference ``run_video`` (docs/method.md, section 7), our ``live`` preset, and what
``--quality`` sets for the live node.

``live`` (the default of ``rdstream run``): dilations 1 and 25, 384 px, fp16 on GPUs, no
refinement: a quarter of the pixels of ``fast`` (768 px), so about a quarter of the work per frame.
``rdstream file`` accepts it too (a quick preview of a clip); its default stays ``fast``.
"""

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
    "live": Preset("live", (1, 25), 0, 384, "fp16", True),
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


@dataclass(frozen=True)
class LiveQuality:
    """What one ``--quality`` level sets for the live node (``rdstream run``).

    aligner: ``OnlineAligner`` quality (fit stride, refinement solves, tolerance).
    fit_decode: how frames needed only for the aligner's fit are decoded: ``half`` (2x pooled
        latent, a quarter of the decoder's work) or ``full``. decoder: ``full`` or ``tiny`` / a folder.
    """

    name: str
    aligner: str
    fit_decode: str
    decoder: str


# The tiny decoder is opt-in at every level: its effect on depth cannot be measured without the
# real weights (rdstream dev compare-decoders measures it where they exist).
LIVE_QUALITIES = {
    "fast": LiveQuality("fast", aligner="fast", fit_decode="half", decoder="full"),
    "balanced": LiveQuality("balanced", aligner="balanced", fit_decode="half", decoder="full"),
    "quality": LiveQuality("quality", aligner="quality", fit_decode="full", decoder="full"),
}


def live_quality(name: str, fit_decode: str | None = None, decoder: str | None = None) -> LiveQuality:
    """The settings of ``--quality name``; ``--fit-decode`` and ``--decoder`` given explicitly override them."""
    if name not in LIVE_QUALITIES:
        raise BadInputError(f"--quality {name}: use one of {', '.join(LIVE_QUALITIES)}")
    changes = {k: v for k, v in (("fit_decode", fit_decode), ("decoder", decoder)) if v is not None}
    return replace(LIVE_QUALITIES[name], **changes)
