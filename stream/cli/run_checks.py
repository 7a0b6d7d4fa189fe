"""``rdstream run``'s options as data (RunOptions) and every check of them that needs no torch.

``rdstream run`` calls ``check_basics`` before it imports the job (stream.cli.run_job, which loads
torch: seconds), so a typo such as ``--preset nope`` or ``--res 5`` is answered at once. Keep this
module's imports light: a test checks that importing it loads no torch.

Every option of ``rdstream run`` is declared here, once, as a ``RunOptions`` field; ``option(default,
SCOPE)`` says whether and where a rig file may set it (``rig_options``; stream.cli.rig_file derives its
keys and their types from it). Adding an option a rig may set takes four places in two files: the
field here, its check in ``check_basics`` inside ``option_named(FIELD)``, and in stream.cli.run its
typer option and its ``RunOptions(...)`` argument.
"""

from __future__ import annotations

import typing
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import MISSING, dataclass, field, fields
from types import UnionType

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


# Where an option may be set in a rig file (``rdstream rig``; ``rdstream run`` with several --source):
MODEL = "model"    # [model] only: the loaded model decides it, so it is one for every stream
STREAM = "stream"  # [[stream]] only: each stream its own
BOTH = "both"      # [model] as every stream's default, a [[stream]] its own
RIG = "rig"        # [rig]: the run as a whole (its stats file, OSC, monitor)


def option(default=MISSING, rig: str | None = None, *, key: str | None = None, types: tuple | None = None,
           to_rig=None, from_rig=None):
    """A ``RunOptions`` field; with ``rig`` a rig file may set it (scope above) under ``key`` (default:
    the field's name), its TOML types ``types`` (default: from the field's type); ``to_rig(value)`` and
    ``from_rig(value)`` translate where the rig key says it otherwise (``no_drop`` for ``realtime``)."""
    metadata = {"rig": rig, "key": key, "types": types, "to_rig": to_rig, "from_rig": from_rig} if rig else {}
    return field(default=default, metadata=metadata)


@dataclass
class RunOptions:
    """The command line of ``rdstream run``; None means "take the preset's value" or the default.

    Every option is declared here once; ``option(default, SCOPE)`` also makes it a rig file key
    (``rig_options``). Adding an option a rig may set: one field here with its scope, its check in
    ``check_basics`` inside ``option_named(FIELD)`` (so a rig file's error names file, stream and key),
    and its typer option in stream.cli.run.

    realtime: True = drop frames when the model is slow (newest wins) and pace files to their
        frame rate; False = process every frame (``--no-drop``); None = realtime for live sources
        (ndi, camera, syphon, spout), every frame for files and test patterns.
    max_frames: stop after this many source frames (0 = until the source ends).
    status: live status line; None = only on a terminal.
    quality: fast | balanced | quality, see ``pipeline.presets.LIVE_QUALITIES``; ``decoder`` and
        ``fit_decode`` (None = the quality's) override what it sets.
    speed: a rung of ``pipeline.presets.SPEEDS``; ``strides``, ``encoder`` and ``decoder`` given
        explicitly override what it sets; in a rig ``[model]`` speed picks the loaded encoder and
        decoder, a stream's own only its strides and snippet length.
    """

    source: str = option(rig=STREAM)
    sinks: list[str] = option(rig=STREAM)
    checkpoint: str = option(rig=MODEL)
    preset: str = option("live", MODEL)
    quality: str = option("fast", STREAM)
    decoder: str | None = option(None, MODEL)
    speed: str = option("standard", BOTH)
    strides: list[int] | None = option(None, STREAM)
    encoder: str | None = option(None, MODEL)
    fit_decode: str | None = option(None, STREAM)
    res: int | None = option(None, MODEL)
    dtype: str | None = option(None, MODEL)
    device: str = option("auto", MODEL)
    lookahead: int = option(DEFAULT_LOOKAHEAD, STREAM)
    realtime: bool | None = option(None, STREAM, key="no_drop", types=(bool,),
                                   to_rig=lambda realtime: True if realtime is False else None,
                                   from_rig=lambda no_drop: False if no_drop else None)
    normalize: str = option("running", STREAM)
    stats_json: str | None = option(None, RIG)
    seed: int | None = option(None, BOTH)
    dilations: list[int] | None = None
    snip_len: int | None = option(None, STREAM)
    max_frames: int = option(0, STREAM)
    status: bool | None = option(None, RIG)
    osc: str | None = option(None, RIG, types=(str, int))
    osc_status: str | None = option(None, RIG, types=(str, int))
    monitor: str | None = option(None, RIG, types=(str, int))
    monitor_token: str | None = option(None, RIG)
    compile: bool = option(False, MODEL)  # torch.compile the UNet and decoder (stream.model.rolling_depth_steps)
    lookahead_given: bool = True  # False: the default, which is not warned about when it adds only latency
    fill: str | None = option(None, STREAM)  # flow | hold | drop; None = flow under --realtime (stream.cli.fill_checks)
    model_fps: float | None = option(None, STREAM)
    idle_fps: float | None = option(None, STREAM)
    output_size: str | None = option(None, STREAM)  # source or WxH for every sink without its own ?size=
    sink_sizes: list | None = None  # per sink: "source", (W, H) or None (io_adapters.output_size)


@dataclass(frozen=True)
class RigOption:
    """A ``RunOptions`` field a rig file may set: its key there, scope, TOML types and translations."""

    field: str
    key: str
    scope: str
    types: tuple
    items: type | None  # a list's item type
    default: object
    to_rig: Callable = staticmethod(lambda value: value)
    from_rig: Callable = staticmethod(lambda value: value)

    @property
    def required(self) -> bool:
        return self.default is MISSING


def _toml_types(hint) -> tuple[tuple, type | None]:
    """A field's type -> (the TOML values it takes, a list's item type): float takes whole numbers too."""
    kinds = [arg for arg in (typing.get_args(hint) if isinstance(hint, UnionType) else (hint,))
             if arg is not type(None)]
    kind = kinds[0]
    if typing.get_origin(kind) is list:
        return (list,), typing.get_args(kind)[0]
    return ((int, float) if kind is float else (kind,)), None


def rig_options() -> dict[str, RigOption]:
    """Every option a rig file may set, by its key there, derived from ``RunOptions``'s fields."""
    hints = typing.get_type_hints(RunOptions)
    found = {}
    for each in fields(RunOptions):
        meta = each.metadata
        if not meta.get("rig"):
            continue
        toml, items = _toml_types(hints[each.name])
        key = meta["key"] or each.name
        found[key] = RigOption(each.name, key, meta["rig"], meta["types"] or toml, items, each.default,
                               meta["to_rig"] or (lambda value: value), meta["from_rig"] or (lambda value: value))
    return found


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
    RuntimeFailure for a missing NDI/Syphon library) and the option it is about (``option_named``):
    source and sinks (a file source is probed, once: a rig checks its streams only here; NDI
    sender names are tried), numbers (the seed included), quality, normalisation, preset, size,
    output files."""
    with option_named("sinks"):
        if not opts.sinks:
            raise BadInputError("give at least one --sink, e.g. --sink file:depth.mp4 or --sink ndi:Depth or "
                                "--sink null:")
    with option_named("source"):
        check_source(opts.source)  # scheme, options, test pattern size; a file: source probed
        source = parse_uri(opts.source)
    with option_named("fill"):  # --model-fps and --idle-fps name themselves (stream.cli.fill_checks)
        fill = check_fill(opts.fill, opts.model_fps, opts.idle_fps, opts.realtime, source.scheme in LIVE_SCHEMES)
    with option_named("checkpoint"):
        check_model_source(opts.checkpoint, opts.source)
    with option_named("sinks"):
        for uri in opts.sinks:
            check_sink(uri)  # scheme, extension, options, layout
    with option_named("device"):
        parse_device_name(opts.device)  # the name only; whether this machine has it needs torch
    with option_named("lookahead"):
        check_lookahead(opts.lookahead)
    with option_named("speed"):
        speed = speed_rung(opts.speed)
    with option_named("fit_decode"):
        if opts.fit_decode is not None:
            check_fit_path(opts.fit_decode)
    with option_named("quality"):
        quality = live_quality(opts.quality, fit_decode=opts.fit_decode, decoder=opts.decoder or speed.decoder)
    with option_named("max_frames"):
        if opts.max_frames < 0:
            raise BadInputError(f"--max-frames {opts.max_frames}: must be 0 (until the source ends) or more")
    with option_named("seed"):
        check_seed(opts.seed)
    with option_named("normalize"):
        normalizer = parse_normalize(opts.normalize)
    with option_named("preset"):
        preset = get_preset(opts.preset, dilations=opts.dilations, res=opts.res)
    with option_named("snip_len"):
        if opts.snip_len is not None:
            check_snippet_options(opts.snip_len, (1,))  # the length only: dilations are checked below
    snip_len, strides = rung_plan_options(speed, preset.dilations, preset.snip_len, opts.snip_len, opts.strides)
    with option_named("strides" if opts.strides else None):
        plan = SnippetPlan(snip_len=snip_len, dilations=tuple(preset.dilations), strides=strides)
    with option_named("res"):
        check_res(preset.res)
    with option_named("sinks"):
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
