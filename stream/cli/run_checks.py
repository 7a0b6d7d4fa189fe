"""``rdstream run``'s options as data (RunOptions) and every check of them that needs no torch.

``rdstream run`` calls ``check_basics`` before it imports the job (stream.cli.run_job, which loads
torch: seconds), so a typo such as ``--preset nope`` or ``--res 5`` is answered at once. Keep this
module's imports light: a test checks that importing it loads no torch.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

from io_adapters.output_paths import check_outputs
from io_adapters.registry import LIVE_SCHEMES, check_sink, check_sinks_free, check_source, parse_uri
from pipeline.device_names import parse_device_name
from pipeline.errors import BadInputError, RollingDepthError
from pipeline.noise_seed import check_seed
from pipeline.preprocess import check_res
from pipeline.presets import (LiveQuality, SpeedRung, check_fit_path, get_preset, live_quality, rung_plan_options,
                              speed_rung)
from pipeline.snippets import SnippetPlan, check_lookahead, check_snippet_options
from stream.cli.fill_checks import FillSettings, check_fill, check_model_source
from stream.stages.display_normalizer import DisplayNormalizer, parse_normalize

DEFAULT_LOOKAHEAD = 2


@dataclass
class RunOptions:
    """The command line of ``rdstream run``; None means "take the preset's value" or the default.

    realtime: True = drop frames when the model is slow (newest wins) and pace files to their
        frame rate; False = process every frame (``--no-drop``); None = realtime for live sources
        (ndi, camera, syphon, spout), every frame for files and test patterns.
    max_frames: stop after this many source frames (0 = until the source ends).
    status: live status line; None = only on a terminal.
    quality: fast | balanced | quality, see ``pipeline.presets.LIVE_QUALITIES``; ``decoder`` and
        ``fit_decode`` (None = the quality's) override what it sets.
    speed: a rung of ``pipeline.presets.SPEEDS``; ``strides``, ``encoder`` and ``decoder`` given
        explicitly override what it sets.
    """

    source: str
    sinks: list[str]
    checkpoint: str
    preset: str = "live"
    quality: str = "fast"
    decoder: str | None = None
    speed: str = "standard"
    strides: list[int] | None = None
    encoder: str | None = None
    fit_decode: str | None = None
    res: int | None = None
    dtype: str | None = None
    device: str = "auto"
    lookahead: int = DEFAULT_LOOKAHEAD
    realtime: bool | None = None
    normalize: str = "running"
    stats_json: str | None = None
    seed: int | None = None
    dilations: list[int] | None = None
    snip_len: int | None = None
    max_frames: int = 0
    status: bool | None = None
    osc: str | None = None
    osc_status: str | None = None
    monitor: str | None = None
    monitor_token: str | None = None
    compile: bool = False  # torch.compile the UNet and decoder (stream.model.rolling_depth_steps)
    lookahead_given: bool = True  # False: the default, which is not warned about when it adds only latency
    fill: str | None = None  # flow | hold | drop; None = flow under --realtime (stream.cli.fill_checks)
    model_fps: float | None = None
    idle_fps: float | None = None
    sink_sizes: list | None = None  # per sink: "source", (W, H) or None (io_adapters.output_size)


@dataclass(frozen=True)
class RunBasics:
    """What ``check_basics`` resolved: the snippet plan, display normaliser, processing size,
    the preset's precision for mps/cuda, the frame policy and the live quality."""

    plan: SnippetPlan
    normalizer: DisplayNormalizer
    res: int
    preset_dtype: str
    drop_frames: bool
    pace_source: bool | None
    quality: LiveQuality
    speed: SpeedRung
    fill: FillSettings | None = None


@contextmanager
def option_named(field: str | None):
    """Marks an error raised inside as one about ``RunOptions.field`` (``err.option``), so a rig file,
    whose keys are these field names, names its key without checking the value a second time."""
    try:
        yield
    except RollingDepthError as err:
        if field is not None and getattr(err, "option", None) is None:
            err.option = field
        raise


def check_basics(opts: RunOptions) -> RunBasics:
    """Every check that needs no torch, each problem with its own message (BadInputError, or
    RuntimeFailure for a missing NDI/Syphon library): source and sinks (a file source is probed,
    NDI sender names are tried), numbers (the seed included), quality, normalisation, preset, size,
    output files."""
    if not opts.sinks:
        raise BadInputError("give at least one --sink, e.g. --sink file:depth.mp4 or --sink ndi:Depth or --sink null:")
    check_source(opts.source)  # scheme, options, test pattern size
    source = parse_uri(opts.source)
    fill = check_fill(opts.fill, opts.model_fps, opts.idle_fps, opts.realtime, source.scheme in LIVE_SCHEMES)
    check_model_source(opts.checkpoint, opts.source)
    for uri in opts.sinks:
        check_sink(uri)  # scheme, extension, options, layout
    parse_device_name(opts.device)  # the name only; whether this machine has it needs torch
    check_lookahead(opts.lookahead)
    with option_named("speed"):
        speed = speed_rung(opts.speed)
    with option_named("fit_decode"):
        if opts.fit_decode is not None:
            check_fit_path(opts.fit_decode)
    quality = live_quality(opts.quality, fit_decode=opts.fit_decode, decoder=opts.decoder or speed.decoder)
    if opts.max_frames < 0:
        raise BadInputError(f"--max-frames {opts.max_frames}: must be 0 (until the source ends) or more")
    check_seed(opts.seed)
    normalizer = parse_normalize(opts.normalize)
    preset = get_preset(opts.preset, dilations=opts.dilations, res=opts.res)
    with option_named("snip_len"):
        if opts.snip_len is not None:
            check_snippet_options(opts.snip_len, (1,))  # the length only: dilations are checked below
    snip_len, strides = rung_plan_options(speed, preset.dilations, preset.snip_len, opts.snip_len, opts.strides)
    with option_named("strides" if opts.strides else None):
        plan = SnippetPlan(snip_len=snip_len, dilations=tuple(preset.dilations), strides=strides)
    check_res(preset.res)
    check_outputs(opts.sinks, {"--stats-json": opts.stats_json})  # "-" (stdout) is no file
    check_sinks_free(opts.sinks)  # a taken NDI name: refused now (make demo picks a free one instead)
    return RunBasics(
        plan=plan,
        normalizer=normalizer,
        res=preset.res,
        preset_dtype=preset.dtype,
        drop_frames=fill.realtime,
        pace_source=True if opts.realtime or (opts.realtime is None and fill.realtime and opts.fill) else None,
        quality=quality,
        speed=speed,
        fill=fill,
    )
