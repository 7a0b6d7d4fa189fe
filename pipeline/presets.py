"""Presets of the reference ``run_video`` (docs/method.md, section 7), our ``live`` preset, and what
``--quality`` sets for the live node.

``live`` (the default of ``rdstream run``): dilations 1 and 25, 384 px, fp16 on GPUs, no
refinement: a quarter of the pixels of ``fast`` (768 px), so about a quarter of the work per frame.
``rdstream file`` accepts it too (a quick preview of a clip); its default stays ``fast``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from pipeline.coalign.quality import check_quality
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
    strides: tuple[int, ...] = ()  # one per dilation (pipeline.snippets.check_strides); () = all 1
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


#: How frames needed only for the aligner's fit are decoded: ``half`` = the 2x average-pooled
#: latent (a quarter of the decoder's work), ``full`` = full resolution.
FIT_PATHS = ("half", "full")


def check_fit_path(fit_path: str) -> None:
    """The one check of a ``--fit-decode`` value."""
    if fit_path not in FIT_PATHS:
        raise BadInputError(f"--fit-decode {fit_path}: use one of {', '.join(FIT_PATHS)}")


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
    check_quality(name, tuple(LIVE_QUALITIES))
    if fit_decode is not None:
        check_fit_path(fit_decode)
    changes = {k: v for k, v in (("fit_decode", fit_decode), ("decoder", decoder)) if v is not None}
    return replace(LIVE_QUALITIES[name], **changes)


# ----------------------------------------------------------------------------- the cost ladder
@dataclass(frozen=True)
class SpeedRung:
    """One rung of ``--speed``: how much of the method runs per frame (docs/streaming.md, "The cost ladder").

    base_stride: dilation 1's snippets end every ``base_stride`` frames (at most ``L - 1``: capped so).
    long_stride: every other dilation's (a multiple of the base stride).
    encoder / decoder: ``full`` (the checkpoint's VAE) or ``tiny`` (TAESD); decoder None = the
        ``--quality``'s. trades: what the rung gives up, for the start line.
    snip_len: frames per snippet (None = the preset's; ``--snip-len`` wins).
    """

    name: str
    base_stride: int
    long_stride: int
    encoder: str
    decoder: str | None
    trades: str
    snip_len: int | None = None

    def strides(self, dilations, snip_len: int) -> tuple[int, ...]:
        """Per dilation (same order), within what ``check_strides`` allows for ``snip_len``."""
        base = max(1, min(self.base_stride, snip_len - 1))
        long = max(base, self.long_stride // base * base)
        return tuple(base if d == 1 else long for d in dilations)


#: From today's default (every dilation at every frame, full VAE) down to the cheapest. The default
#: stays ``standard`` until real-weight quality (``rdstream dev evaluate``) says otherwise.
SPEEDS = {
    "standard": SpeedRung("standard", 1, 1, "full", None, "nothing (every dilation at every frame)"),
    "pair": SpeedRung("pair", 1, 2, "full", None,
                      "2-frame snippets, dilation 25 every 2nd frame: half the UNet work, fewer snippets "
                      "per frame", snip_len=2),
    "stride2": SpeedRung("stride2", 2, 2, "full", None,
                         "snippets every 2nd frame: half the UNet work, fewer per frame, up to 1 frame "
                         "more latency"),
    "lite": SpeedRung("lite", 2, 2, "tiny", "tiny",
                      "stride2 + the tiny encoder and decoder (TAESD): approximate latents and depth"),
}
DEFAULT_SPEED = "standard"


def rung_plan_options(rung: SpeedRung, dilations, preset_snip_len: int, snip_len: int | None = None,
                      strides=None) -> tuple[int, tuple[int, ...]]:
    """(snippet length, strides per dilation) of ``rung``; ``snip_len`` / ``strides`` given explicitly win."""
    length = snip_len or rung.snip_len or preset_snip_len
    return length, tuple(strides) if strides else rung.strides(tuple(dilations), length)


def rung_snippet_lengths(dilations, preset_snip_len: int, snip_len: int | None = None) -> tuple[int, ...]:
    """Every snippet length a run may switch to with ``/rdstream/speed`` (what ``--compile`` warms up)."""
    return tuple(sorted({rung_plan_options(rung, dilations, preset_snip_len, snip_len)[0] for rung in SPEEDS.values()}))


def plan_shapes(plan, preset_snip_len: int, snip_len: int | None = None) -> dict:
    """The model-call shapes a stream on ``plan`` (a ``SnippetPlan``) can send, as
    ``RollingDepthSteps`` takes them: 1..(number of dilations) snippets per call, its snippet
    length, and every snippet length ``/rdstream/speed`` may switch it to."""
    return {"snippets_per_call": range(1, len(plan.dilations) + 1), "snippet_length": plan.snip_len,
            "snippet_lengths": rung_snippet_lengths(plan.dilations, preset_snip_len, snip_len)}


def speed_rung(name: str) -> SpeedRung:
    """The rung ``name``; one-line BadInputError for an unknown one."""
    if name not in SPEEDS:
        raise BadInputError(f"--speed {name}: unknown rung; use one of {', '.join(SPEEDS)}")
    return SPEEDS[name]
