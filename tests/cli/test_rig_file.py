"""The rig file's keys come from ``RunOptions`` (stream.cli.run_checks), declared once; each stream
is checked once (a ``file:`` source probed once) and every error names file, stream and key."""

from __future__ import annotations

from dataclasses import fields

import pytest

from pipeline.errors import BadInputError
from stream.cli.rig_file import MODEL_KEYS, RIG_KEYS, STREAM_KEYS, STREAM_REQUIRED, check_rig, rig_from_run
from stream.cli.run_checks import BOTH, MODEL, RIG, STREAM, RunOptions, rig_options

TABLE_OF = {MODEL: (MODEL_KEYS,), STREAM: (STREAM_KEYS,), BOTH: (MODEL_KEYS, STREAM_KEYS), RIG: (RIG_KEYS,)}


def test_every_option_a_rig_allows_is_a_key_of_its_tables_and_of_no_other():
    options = rig_options()
    declared = [f for f in fields(RunOptions) if f.metadata.get("rig")]
    assert len(declared) == len(options) >= 25  # every rdstream run option but --dilations and the derived fields
    for key, option in options.items():
        for table in (MODEL_KEYS, STREAM_KEYS, RIG_KEYS):
            assert (key in table) == (table in TABLE_OF[option.scope]), (key, option.scope)
    # the rig file's own keys are the only ones not an option of rdstream run
    assert set(MODEL_KEYS) | set(STREAM_KEYS) | set(RIG_KEYS) == set(options) | {"name", "max_wait_ms"}
    assert STREAM_REQUIRED == ("name", "source", "sinks")
    # types from the fields' types: a float takes whole numbers, a list its items' type
    assert STREAM_KEYS["model_fps"] == ((int, float), None) and STREAM_KEYS["strides"] == ((list,), int)
    assert STREAM_KEYS["no_drop"] == ((bool,), None) and "realtime" not in STREAM_KEYS  # --no-drop's key


def test_an_unknown_key_lists_the_known_ones_of_its_table():
    stream = {"name": "a", "source": "test:", "sinks": ["null:"], "colour": 1}
    with pytest.raises(BadInputError) as info:
        check_rig("rig.toml", {"stream": [stream]}, "ckpt")
    message = str(info.value)
    known = message.split("(known: ")[1].rstrip(")").split(", ")
    assert message.startswith("rig.toml: stream 'a': key 'colour': unknown key in [[stream]]")
    assert set(known) == {"name"} | {k for k, o in rig_options().items() if o.scope in (STREAM, BOTH)}
    assert {"output_size", "no_drop", "fill", "speed"} <= set(known) and "res" not in known


@pytest.mark.parametrize("table, value, expected", [
    ("stream", {"model_fps": "ten"}, "stream 'a': key 'model_fps': must be a number, got 'ten'"),
    ("stream", {"model_fps": -1}, "stream 'a': key 'model_fps': --model-fps -1: must be a number of frames"),
    ("stream", {"no_drop": True, "fill": "flow"}, "stream 'a': key 'fill': --fill flow needs --realtime"),
    ("stream", {"output_size": "huge"}, "stream 'a': key 'output_size': "),
    ("stream", {"max_frames": -2}, "stream 'a': key 'max_frames': --max-frames -2: must be 0"),
    ("stream", {"source": "nope:x"}, "stream 'a': key 'source': "),
    ("model", {"preset": "nope"}, "rig.toml: key 'preset': "),  # a [model] key: no stream named
    ("model", {"res": 5}, "rig.toml: key 'res': "),
    ("model", {"device": "tpu"}, "rig.toml: key 'device': "),
])
def test_each_error_names_the_key_it_is_about_and_the_stream_only_where_the_stream_set_it(table, value, expected):
    stream = {"name": "a", "source": "test:", "sinks": ["null:"]}
    data = {"model": value, "stream": [stream]} if table == "model" else {"stream": [{**stream, **value}]}
    with pytest.raises(BadInputError) as info:
        check_rig("rig.toml", data, "ckpt")
    assert str(info.value).startswith("rig.toml") and expected in str(info.value), str(info.value)


def test_a_file_source_is_probed_once_at_start(tmp_path, monkeypatch):
    import io_adapters.file_source as file_source
    from stream.cli.rig_file import read_rig
    from tests.conftest import write_clip

    probed = []
    real = file_source.probe_video
    monkeypatch.setattr(file_source, "probe_video", lambda path: probed.append(str(path)) or real(path))
    clips = [write_clip(tmp_path / f"{name}.mkv", 2, 32, 32) for name in ("a", "b")]
    rig = tmp_path / "rig.toml"
    rig.write_text("".join(f'[[stream]]\nname = "{c.stem}"\nsource = "file:{c}"\nsinks = ["null:"]\n' for c in clips))
    read_rig(str(rig), "ckpt")
    assert sorted(probed) == sorted(map(str, clips))  # once each, not once per check
    probed.clear()
    rig_from_run(RunOptions(source="", sinks=["null:"], checkpoint="ckpt"), [f"file:{c}" for c in clips])
    assert sorted(probed) == sorted(map(str, clips))


def test_run_with_several_sources_gives_every_stream_the_options_a_rig_can_take(tmp_path):
    options = RunOptions(source="", sinks=["null:"], checkpoint="ckpt", preset="fast", quality="balanced",
                         decoder="tiny", speed="stride2", strides=[1, 2], encoder="full", fit_decode="full", res=64,
                         dtype="fp32", device="cpu", lookahead=1, realtime=False, normalize="fixed:5,1", seed=7,
                         snip_len=2, max_frames=9, compile=True, output_size="32x32", status=False,
                         stats_json=str(tmp_path / "stats.jsonl"))
    spec = rig_from_run(options, ["test:?size=64x64", "test:?size=32x32"])
    assert (spec.status, spec.stats_json, spec.model["compile"]) == (False, options.stats_json, True)
    for stream in spec.streams:
        for key, option in rig_options().items():
            if option.scope != RIG and key not in ("source", "sinks"):
                assert getattr(stream.options, option.field) == getattr(options, option.field), key
        assert stream.options.sink_sizes == [(32, 32)]


def test_rdstream_run_probes_its_file_source_once_before_the_job(tmp_path, monkeypatch):
    import io_adapters.file_source as file_source
    import stream.cli.run_job as run_job
    from stream.cli import main
    from tests.conftest import write_clip

    probed = []
    real = file_source.probe_video
    monkeypatch.setattr(file_source, "probe_video", lambda path: probed.append(str(path)) or real(path))
    jobs = []
    monkeypatch.setattr(run_job, "run_live", lambda job, console: jobs.append(job) or 0)  # the checks only
    clip = write_clip(tmp_path / "clip.mkv", 2, 32, 32)
    with pytest.raises(SystemExit) as done:
        main(["run", "--source", f"file:{clip}", "--sink", "null:", "-c", "x", "--no-status"])
    assert done.value.code in (0, None) and len(jobs) == 1
    assert probed == [str(clip)]  # rdstream run's check, not again in the job's
