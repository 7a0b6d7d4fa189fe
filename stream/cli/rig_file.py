"""The rig file of ``rdstream rig RIG.toml``: read it and check it whole, with no torch.

```toml
[model]                      # one model for every stream; keys as rdstream run's options
checkpoint = "prs-eth/rollingdepth-v1-0"
preset = "live"
res = 384
seed = 0
speed = "lite"               # the loaded encoder and decoder, and every stream's default rung

[rig]                        # optional: the run as a whole
stats_json = "stats.jsonl"   # one JSON line per stream and second, with "stream": NAME
max_wait_ms = 5              # how long a model call waits for a slower stream
osc = "9000"                 # /rdstream/NAME/... steers stream NAME; /rdstream/... every stream
osc_status = "127.0.0.1:9001"   # /rdstream/NAME/status and /rdstream/NAME/ack
monitor = "8080"             # one monitor page for every stream (and monitor_token, as --monitor-token)

[[stream]]                   # one per camera, at most MAX_STREAMS
name = "left"
source = "ndi:Stage Left"
sinks = ["ndi:Depth left"]
speed = "stride2"            # this stream's strides and snippet length (not its encoder/decoder)
```

The keys are ``rdstream run``'s options, declared once, in ``RunOptions`` (stream.cli.run_checks):
each field's ``option(default, SCOPE)`` makes it a key here, its TOML type from the field's type.
Rig-wide (``[model]``, scope MODEL), because the model is loaded once: checkpoint, preset, res, device,
dtype, decoder, encoder, compile. Per stream (``[[stream]]``, STREAM): source, sinks, quality,
lookahead, no_drop, normalize, max_frames, strides, snip_len, fit_decode, fill, model_fps, idle_fps,
output_size. Both (BOTH: ``[model]`` is every stream's default): seed, and speed (in ``[model]`` also
the encoder and decoder it loads; a stream's own changes only its strides and snippet length). The
run as a whole (``[rig]``, RIG): stats_json, status, osc, osc_status, monitor, monitor_token. Keys
that are no option of ``rdstream run``: a stream's ``name`` and ``[rig] max_wait_ms``.

Adding an option a rig may set: its field in ``RunOptions`` with its scope and its check in
``check_basics`` inside ``option_named(FIELD)``; this module then takes it, checks its type, and says
file, stream and key in every error of it. Each stream is checked by ``check_basics`` once (a
``file:`` source is probed once).

Every problem is one line naming the file, the stream and the key (``BadInputError``, exit 2),
found before the model loads: not TOML, larger than 1 MiB, a missing or unknown key, a value of
the wrong type, a seed outside 0..2**64-1, an empty or over-long stream name, two streams with one
name, two streams writing one file or one NDI/Syphon/Spout name, more streams than
``MAX_STREAMS``, and everything ``rdstream run`` checks of a stream's options.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from io_adapters.names import check_name, shown
from io_adapters.output_paths import _same_file_key, check_outputs, sink_files
from io_adapters.registry import NAMED_OUTPUT_SCHEMES, parse_uri, stream_name
from pipeline.errors import BadInputError, RollingDepthError
from pipeline.noise_seed import check_seed
from pipeline.presets import live_quality, speed_rung
from pipeline.small_files import read_small_text
from stream.model.batcher import DEFAULT_MAX_BATCH, DEFAULT_MAX_WAIT_S
from stream.cli.fill_checks import split_sink_sizes
from stream.cli.run_checks import (BOTH, MODEL, RIG, STREAM, RunBasics, RunOptions, check_basics, option_named,
                                   rig_options)
from stream.model.oracle_model import is_oracle

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10: the same parser, as the tomli package (a dependency there only)
    import tomli as tomllib

#: Most streams in one rig: one model call then carries at most this many streams' work.
MAX_STREAMS = DEFAULT_MAX_BATCH
#: Longest batching deadline a rig file may set, in ms (longer only adds latency).
MAX_WAIT_MS = 100
#: Longest stream name in bytes (UTF-8): a name goes into file names through {name}, and no file
#: system takes a longer file name.
MAX_NAME_BYTES = 255

#: Every rdstream run option a rig file may set, by its key there (stream.cli.run_checks.RunOptions)
OPTIONS = rig_options()
_BY_FIELD = {option.field: option for option in OPTIONS.values()}
# key -> (TOML types, a list's item type), per table: the options of its scope, and the rig file's own keys
MODEL_KEYS = {key: (o.types, o.items) for key, o in OPTIONS.items() if o.scope in (MODEL, BOTH)}
STREAM_KEYS = {"name": ((str,), None), **{key: (o.types, o.items) for key, o in OPTIONS.items()
                                           if o.scope in (STREAM, BOTH)}}
RIG_KEYS = {**{key: (o.types, o.items) for key, o in OPTIONS.items() if o.scope == RIG},
            "max_wait_ms": ((int, float), None)}
STREAM_REQUIRED = ("name", *(key for key, o in OPTIONS.items() if o.scope == STREAM and o.required))
TABLES = {"model", "rig", "stream"}


@dataclass
class RigStreamSpec:
    """One ``[[stream]]``: its name and the ``rdstream run`` options it amounts to, checked."""

    name: str
    options: RunOptions
    basics: RunBasics


@dataclass
class RigSpec:
    path: str
    model: dict
    streams: list[RigStreamSpec]
    stats_json: str | None = None
    max_wait_s: float = DEFAULT_MAX_WAIT_S
    status: bool | None = None
    osc: object = None  # stream.control.osc_control.OscEndpoint: where commands come in, or None
    osc_status: object = None  # where statuses and acknowledgements go, or None
    monitor: object = None  # stream.monitor.endpoint.MonitorEndpoint: the page of every stream, or None


def _where(path: str, stream: str | None = None, key: str | None = None) -> str:
    """'FILE: stream NAME: key KEY', the parts given."""
    text = path
    if stream is not None:
        text += f": stream {shown(stream)}"
    if key is not None:
        text += f": key {key!r}"
    return text


_KINDS = {str: ("a string", "strings"), int: ("a whole number", "whole numbers"), float: ("a number", "numbers"),
          bool: ("true or false", "true or false")}


def _is(value, types: tuple) -> bool:
    """``value`` is of ``types`` as TOML means them: true is no number."""
    return isinstance(value, types) and (bool in types or not isinstance(value, bool))


def _check_table(path: str, table: dict, allowed: dict, what: str, stream: str | None = None) -> None:
    for key, value in table.items():
        if key not in allowed:
            names = ", ".join(allowed)
            raise BadInputError(f"{_where(path, stream, key)}: unknown key in {what} (known: {names})")
        types, items = allowed[key]
        if not _is(value, types) or (items is not None and not all(_is(item, (items,)) for item in value)):
            kind = " or ".join(f"a list of {_KINDS[items][1]}" if t is list else _KINDS[t][0] for t in types
                               if not (t is int and float in types))  # a number takes whole numbers too
            raise BadInputError(f"{_where(path, stream, key)}: must be {kind}, got {value!r}")


def read_rig(path: str, default_checkpoint: str) -> RigSpec:
    """Read and check the rig file at ``path`` (see the module docstring); raises BadInputError."""
    text = read_small_text(path, path, "a TOML rig file")  # bounded: /dev/zero is one line, not a MemoryError
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise BadInputError(f"{path}: not a TOML rig file: {err}") from None
    return check_rig(path, data, default_checkpoint)


def check_rig(path: str, data: dict, default_checkpoint: str) -> RigSpec:
    """Check a rig's tables (as read from a file, or built by ``rdstream run`` with several sources);
    ``path`` names where they came from in every message."""
    for key in data:
        if key not in TABLES:
            raise BadInputError(f"{_where(path, key=key)}: unknown table or key (a rig file has [model], [rig] "
                                "and [[stream]] tables)")
    model, rig, streams = data.get("model", {}), data.get("rig", {}), data.get("stream")
    if not isinstance(model, dict) or not isinstance(rig, dict):
        raise BadInputError(f"{path}: [model] and [rig] must be tables")
    _check_table(path, model, MODEL_KEYS, "[model]")
    _check_table(path, rig, RIG_KEYS, "[rig]")
    # [model]'s seed and speed as rig-wide values (a stream may set its own; the speed's encoder and
    # decoder are loaded for all): named as [model] keys, before any stream
    _checked(path, None, "seed", lambda: check_seed(model.get("seed")))
    if "speed" in model:
        _checked(path, None, "speed", lambda: speed_rung(model["speed"]))
    if not isinstance(streams, list) or not streams:
        raise BadInputError(f"{path}: no [[stream]] table: give one per camera, each with name, source and sinks")
    if len(streams) > MAX_STREAMS:
        raise BadInputError(f"{path}: {len(streams)} streams: a rig runs at most {MAX_STREAMS}; "
                            "run a second rig for more")
    max_wait_ms = rig.get("max_wait_ms", DEFAULT_MAX_WAIT_S * 1000)
    if not 0 <= max_wait_ms <= MAX_WAIT_MS:
        raise BadInputError(f"{_where(path, key='max_wait_ms')}: must be 0..{MAX_WAIT_MS} ms, got {max_wait_ms}")

    specs: list[RigStreamSpec] = []
    for number, table in enumerate(streams, 1):
        name = table.get("name")
        label = name if isinstance(name, str) and name.strip() else f"#{number}"
        _check_table(path, table, STREAM_KEYS, "[[stream]]", label)
        for key in STREAM_REQUIRED:
            if key not in table:
                raise BadInputError(f"{_where(path, label, key)}: missing (every stream needs "
                                    f"{', '.join(STREAM_REQUIRED[:-1])} and {STREAM_REQUIRED[-1]})")
        _checked(path, label, "name", lambda: check_name(name, "the stream name", 'name = "left"', MAX_NAME_BYTES,
                                                         " (it can become a file name through {name})"))
        if not table["sinks"]:  # a list of strings: _check_table
            raise BadInputError(f"{_where(path, label, 'sinks')}: give a list of sink URIs, e.g. "
                                f"sinks = [\"ndi:Depth {label}\"]")
        if any(s.name == table["name"] for s in specs):
            raise BadInputError(f"{_where(path, label, 'name')}: two streams are named {label!r}; give each its own")
        specs.append(_stream_spec(path, label, table, model, default_checkpoint))
    _check_shared_outputs(path, specs, rig.get("stats_json"))
    osc, osc_status = _check_osc(path, rig)
    return RigSpec(path=path, model=model, streams=specs, stats_json=rig.get("stats_json"),
                   max_wait_s=max_wait_ms / 1000.0, status=rig.get("status"), osc=osc, osc_status=osc_status,
                   monitor=_check_monitor(path, rig))


def _check_monitor(path: str, rig: dict):
    """[rig] monitor and monitor_token as --monitor and --monitor-token, the port tried."""
    if "monitor" not in rig and "monitor_token" not in rig:
        return None
    from stream.monitor.endpoint import check_monitor

    monitor = str(rig["monitor"]) if "monitor" in rig else None
    return _checked(path, None, "monitor" if monitor else "monitor_token",
                    lambda: check_monitor(monitor, rig.get("monitor_token")))


def _check_osc(path: str, rig: dict):
    """[rig] osc and osc_status as rdstream run's --osc and --osc-status ([HOST:]PORT), the port tried."""
    if "osc" not in rig and "osc_status" not in rig:
        return None, None
    from stream.control.osc_control import check_can_listen, check_endpoints_differ, parse_endpoint

    endpoints = {}
    for key in ("osc", "osc_status"):
        if key in rig:
            endpoints[key] = _checked(path, None, key, lambda: parse_endpoint(str(rig[key]), key))
    if "osc" in endpoints:
        _checked(path, None, "osc", lambda: check_can_listen(endpoints["osc"], "osc"))
    _checked(path, None, "osc_status", lambda: check_endpoints_differ(endpoints.get("osc"), endpoints.get("osc_status")))
    return endpoints.get("osc"), endpoints.get("osc_status")


def _stream_spec(path: str, label: str, table: dict, model: dict, checkpoint: str) -> RigStreamSpec:
    """A stream's options: its own keys, else the ``[model]``'s, else the defaults; checked once by
    ``check_basics``, whose errors name their option: a key of the stream, or of ``[model]``."""
    if is_oracle(model.get("checkpoint", checkpoint)):
        raise BadInputError(f"{_where(path, key='checkpoint')}: the oracle model is for rdstream run only")
    values, stream_of = {"checkpoint": checkpoint}, {}  # field -> the stream that gave it (None: [model])
    for key, option in OPTIONS.items():
        if option.scope in (STREAM, BOTH) and key in table:
            values[option.field], stream_of[option.field] = option.from_rig(table[key]), label
        elif option.scope in (MODEL, BOTH) and key in model:
            values[option.field], stream_of[option.field] = option.from_rig(model[key]), None
    options = RunOptions(**values, lookahead_given="lookahead" in table)
    try:
        with option_named("output_size"):
            options.sinks, options.sink_sizes = split_sink_sizes(options.sinks, options.output_size)
        basics = check_basics(options)
    except RollingDepthError as err:
        field = getattr(err, "option", None)
        key = _BY_FIELD[field].key if field in _BY_FIELD else None
        err.args = (f"{_where(path, stream_of.get(field, label), key)}: {err}",)
        raise
    return RigStreamSpec(label, options, basics)


def _checked(path: str, label: str | None, key: str, check):
    """``check()``, its error prefixed with where: the file, the stream and the key."""
    try:
        return check()
    except RollingDepthError as err:
        err.args = (f"{_where(path, label, key)}: {err}",)
        raise


def _check_shared_outputs(path: str, specs: list[RigStreamSpec], stats_json: str | None) -> None:
    """No file and no NDI/Syphon/Spout name written by two streams (or by a stream and --stats-json);
    the stats file can be written (each stream's own outputs were checked with its options)."""
    check_outputs([], {f"{path}: [rig] stats_json": stats_json})
    files: dict[tuple, str] = {}
    if stats_json and stats_json != "-":
        files[_same_file_key(Path(stats_json))] = "[rig] stats_json"
    names: dict[tuple[str, str], str] = {}
    for spec in specs:
        for uri in spec.options.sinks:
            for file in sink_files(uri):
                key = _same_file_key(file)
                if key in files:
                    raise BadInputError(f"{_where(path, spec.name, 'sinks')}: {uri} writes {file.resolve()}, "
                                        f"which {files[key]} writes too; give each output its own file")
                files[key] = f"stream {spec.name!r}"
            parsed = parse_uri(uri)
            if parsed.scheme in NAMED_OUTPUT_SCHEMES:
                name = (parsed.scheme, parsed.target)
                if name in names and names[name] != spec.name:
                    raise BadInputError(f"{_where(path, spec.name, 'sinks')}: {parsed.scheme} name {parsed.target!r} "
                                        f"is also used by stream {names[name]!r}; give each stream its own name")
                names[name] = spec.name


def rig_autoencoders(spec: RigSpec) -> tuple[str, str]:
    """(decoder, encoder) the rig loads once for every stream: ``[model]``'s decoder and encoder, else
    its speed's, else the first stream's quality's decoder and the full encoder (a stream's own speed
    changes only its strides and snippet length)."""
    speed = speed_rung(spec.model.get("speed", "standard"))
    decoder = spec.model.get("decoder") or speed.decoder or live_quality(spec.streams[0].options.quality).decoder
    return decoder, spec.model.get("encoder") or speed.encoder


# ``rdstream run --source A --source B``: options a rig cannot take yet (flag -> its field, its
# default, what to do instead)
_OSC_INSTEAD = "for OSC write a rig file with [rig] osc and osc_status (docs/rig.md)"
_MONITOR_INSTEAD = "for one page of several streams write a rig file and run rdstream rig RIG.toml --monitor PORT"
NOT_IN_A_RIG = {"--dilations": ("dilations", None, "a rig uses its preset's dilations"),
                "--osc": ("osc", None, _OSC_INSTEAD), "--osc-status": ("osc_status", None, _OSC_INSTEAD),
                "--monitor": ("monitor", None, _MONITOR_INSTEAD), "--monitor-token": ("monitor_token", None, _MONITOR_INSTEAD)}
SHORTHAND = "rdstream run"


def rig_from_run(options: RunOptions, sources: list[str], output_size: str | None = None) -> RigSpec:
    """Several ``--source`` of ``rdstream run``: one stream each, ``{name}`` and ``{index}`` (from 1) in
    every ``--sink`` replaced per stream; the other options apply to every stream (``output_size``
    given: instead of ``options.output_size``)."""
    for flag, (attr, default, instead) in NOT_IN_A_RIG.items():
        if getattr(options, attr) not in (default, [], ()):
            raise BadInputError(f"{flag}: not with several --source (a rig runs them): {instead}; or give one "
                                "--source")
    check_seed(options.seed)  # named as the options here, not as the rig keys they become
    check_outputs([], {"--stats-json": options.stats_json})
    names: list[str] = []
    for index, source in enumerate(sources, 1):
        try:
            name = stream_name(source, index)
        except RollingDepthError as err:
            raise BadInputError(f"--source {source}: {err}") from None
        names.append(name if name not in names else f"{name}-{index}")
    tables: dict[str, dict] = {MODEL: {}, BOTH: {}, STREAM: {}, RIG: {}}  # BOTH: [model], every stream's default
    for key, option in OPTIONS.items():
        value = option.to_rig(output_size if key == "output_size" and output_size is not None
                              else getattr(options, option.field))
        given = key == "lookahead" and options.lookahead_given  # the default said aloud warns as given
        if key not in ("source", "sinks") and value not in (None, []) and (value != option.default or given):
            tables[option.scope][key] = value
    streams = [{**tables[STREAM], "name": name, "source": source,
                "sinks": [uri.replace("{name}", name).replace("{index}", str(index)) for uri in options.sinks]}
               for index, (name, source) in enumerate(zip(names, sources), 1)]
    try:
        spec = check_rig(SHORTHAND, {"model": {**tables[MODEL], **tables[BOTH]}, "rig": tables[RIG], "stream": streams},
                         options.checkpoint)
    except BadInputError as err:
        if "give each" in str(err):  # one --sink for every stream: say how to tell them apart
            raise BadInputError(f"{err} (put {{name}} or {{index}} in each --sink)") from None
        raise
    return spec
