"""Live speed in the model steps (stream/model/rolling_depth_steps.py): decode only what reaches the
output, the tiny decoder, --quality for the live node, the live preset, through the node and the
command line. The aligner's side of the cheap path (fit samples only) is in
tests/pipeline/coalign/test_online.py.

The tiny checkpoint and the tiny random decoder give meaningless depth: these tests check counts,
shapes, frames, ranges and errors, never depth quality.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import anyio
import numpy as np
import pytest
import torch

from bench.support.stream_doubles import ArraySource, RecordingSink
from pipeline.coalign.online import OnlineAligner
from pipeline.coalign.snippet_depth import still_merged
from pipeline.presets import LIVE_QUALITIES, get_preset, live_quality
from pipeline.snippets import SnippetPlan
from stream.stages.display_normalizer import parse_normalize
from stream.node import NodeConfig, StreamNode
from stream.model.rolling_depth_steps import RollingDepthSteps
from tests.conftest import ROOT, moving_pattern, rdstream_in_process as rdstream, write_clip


def snippets_ending_at(t: int, dilations, snip_len: int = 3) -> list[tuple[int, ...]]:
    return SnippetPlan(snip_len, tuple(dilations)).snippets_ending_at(t)


# --- which frames are decoded at full resolution ---------------------------------------------

@pytest.mark.parametrize("lookahead, full_per_frame", [(0, 2), (1, 3), (2, 4), (24, 4)])
def test_steady_state_full_resolution_frames_per_output_frame(lookahead, full_per_frame):
    t = 80
    flags = [still_merged(s, lookahead, 3) for s in snippets_ending_at(t, (1, 25), 3)]
    assert sum(map(sum, flags)) == full_per_frame and sum(map(len, flags)) == 6


# --- model steps: counts, cheap path, decoders -----------------------------------------------

def _run_node(model, frames, lookahead: int, quality: str = "fast", dilations=(1, 3), source=None):
    settings = live_quality(quality)
    aligner = OnlineAligner.for_plan(SnippetPlan(3, dilations), lookahead, settings.aligner)
    steps = RollingDepthSteps(model, 64, seed=0, fit_stride=aligner.fit_stride, fit_path=settings.fit_decode)
    sink = RecordingSink()
    node = StreamNode(source or ArraySource(frames), [("mem:", sink)], steps, aligner, parse_normalize("running"),
                      NodeConfig(plan=SnippetPlan(3, dilations), lookahead=lookahead), report=print)
    return anyio.run(node.run), steps, sink


@pytest.mark.parametrize("lookahead", [0, 2])
def test_node_counts_follow_still_merged(tiny_model, lookahead):
    frames = moving_pattern(12, 40, 64)
    result, steps, sink = _run_node(tiny_model, frames, lookahead)
    expected_full = sum(sum(still_merged(s, lookahead, 3)) for t in range(12) for s in snippets_ending_at(t, (1, 3), 3))
    passes = sum(len(s) for t in range(12) for s in snippets_ending_at(t, (1, 3), 3))
    assert result.frames_out == 12 and len(sink.frames) == 12
    assert steps.counts.as_dict() == {"encodes": 12, "unet_frame_passes": passes, "decodes_full": expected_full,
                                      "decodes_fit": passes - expected_full}
    assert result.step_counts == steps.counts.as_dict()


@pytest.mark.parametrize("decoder", ["full", "tiny"])
def test_no_drop_file_run_outputs_every_frame_with_every_decoder_and_quality(tiny_checkpoint, tiny_decoder, decoder,
                                                                            tmp_path):
    from io_adapters.registry import open_source
    from pipeline.checkpoint import load_rolling_depth

    model = load_rolling_depth(str(tiny_checkpoint), "cpu", decoder=str(tiny_decoder) if decoder == "tiny" else "full")
    clip = write_clip(tmp_path / "clip.mkv", num_frames=9, width=96, height=64)
    for quality in LIVE_QUALITIES:
        result, steps, sink = _run_node(model, None, 1, quality, source=open_source(f"file:{clip}"))
        assert result.frames_in == result.frames_out == 9, quality
        assert all(np.isfinite(f.depth).all() for f in sink.frames)


def test_decoders_scale_latents_as_each_expects(tiny_model, tiny_decoder):
    """SD VAE: latents / 0.18215; AutoencoderTiny: unscaled (scaling factor 1), output already in [-1, 1]."""
    from diffusers import AutoencoderTiny

    from pipeline.tiny_decoder import load_decoder, resolve_decoder

    latents = torch.randn(2, 4, 4, 4)
    with torch.no_grad():
        full = tiny_model.decoder(latents)
        assert torch.allclose(full, tiny_model.vae.decode(latents / 0.18215).sample.mean(1))
        tiny = load_decoder(resolve_decoder(str(tiny_decoder)), tiny_model.vae, 8, torch.device("cpu"), torch.float32)
        reference = AutoencoderTiny.from_pretrained(tiny_decoder)
        raw = reference.decoder(latents)  # diffusers maps TAESD's [0, 1] to [-1, 1] inside the decoder
        assert torch.allclose(tiny(latents), raw.mean(1), atol=1e-6)
        assert torch.allclose(tiny(latents), reference.decode(latents).sample.mean(1), atol=1e-6)
    assert tiny.is_random and tiny(latents).shape == (2, 32, 32)


# --- presets, quality, bad input -------------------------------------------------------------

def test_live_preset_and_quality_levels():
    from stream.cli.file_job import FileJobOptions, build_settings
    from stream.cli.run_job import RunOptions, check_options

    live = get_preset("live")
    assert (live.dilations, live.res, live.dtype, live.refine_steps) == ((1, 25), 384, "fp16", 0)
    checked = check_options(RunOptions(source="test:?frames=3", sinks=["null:"], checkpoint="x"))
    assert checked.res == 384 and checked.quality.fit_decode == "half" and checked.decoder.name == "full"
    assert live_quality("quality").fit_decode == "full" and live_quality("balanced").aligner == "balanced"
    assert live_quality("quality", fit_decode="half", decoder="tiny") == \
        live_quality("quality").__class__("quality", "quality", "half", "tiny")  # explicit flags override
    settings, _ = build_settings(FileJobOptions(inputs=[], output_dir=".", checkpoint="x", preset="live"))
    assert settings.res == 384  # rdstream file accepts the live preset


@pytest.mark.parametrize("args, message", [
    (["--decoder", "/no/such/folder"], "no such folder"),
    (["--decoder", "VAE_FOLDER"], "not an AutoencoderTiny"),
    (["--decoder", "nobody-here/no-such-decoder"], "could not download"),
    (["--quality", "best"], "--quality best"),
    (["--fit-decode", "quarter"], "--fit-decode quarter"),
])
def test_bad_decoder_and_quality_are_one_line_exit_2_before_the_model_loads(tmp_path, tiny_checkpoint, capsys, args, message):
    args = [str(tiny_checkpoint / "vae") if a == "VAE_FOLDER" else a for a in args]
    env = {"HF_HUB_OFFLINE": "1"}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:  # -c points nowhere: an error about the decoder proves it came before any model load
        code = rdstream("run", "--source", "test:?frames=3", "--sink", "null:", "-c", tmp_path / "none", *args)
    finally:
        for k, v in old.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("rdstream: error:") and message in err and err.count("\n") == 1, err


def test_bad_decoder_for_file_is_exit_2_before_the_model_loads(tmp_path, clip40, capsys):
    code = rdstream("file", clip40, "-o", tmp_path, "-c", tmp_path / "none", "--decoder", tmp_path)
    err = capsys.readouterr().err
    assert code == 2 and "not an AutoencoderTiny" in err


# --- end to end through the command line -----------------------------------------------------

def test_tiny_decoder_through_rdstream_run_counts_in_stats_json_and_summary(tmp_path, tiny_checkpoint, tiny_decoder):
    clip = write_clip(tmp_path / "clip.mkv", num_frames=14, width=96, height=64)
    npy, stats = tmp_path / "depth.npy", tmp_path / "stats.jsonl"
    result = subprocess.run(
        [sys.executable, "-m", "stream.cli", "run", "--source", f"file:{clip}", "--sink", f"npy:{npy}",
         "-c", str(tiny_checkpoint), "--decoder", str(tiny_decoder), "--no-drop", "--lookahead", "0",
         "--res", "64", "-d", "1", "-d", "3", "--no-status", "--stats-json", str(stats)],
        cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr
    assert "tiny RANDOM test AutoencoderTiny" in result.stderr
    assert f"decoder {tiny_decoder}" in result.stderr and "64 px" in result.stderr and "quality fast" in result.stderr
    assert "14 frames in, 14 out" in result.stderr and "per output frame: 1.00 encodes" in result.stderr
    assert np.load(npy).shape == (14, 40, 64)
    counts = json.loads(stats.read_text().splitlines()[-1])["counts"]
    passes = sum(len(s) for t in range(14) for s in snippets_ending_at(t, (1, 3), 3))
    full = sum(sum(still_merged(s, 0, 3)) for t in range(14) for s in snippets_ending_at(t, (1, 3), 3))
    assert counts == {"encodes": 14, "unet_frame_passes": passes, "decodes_full": full, "decodes_fit": passes - full}


def test_tiny_decoder_through_rdstream_file(tmp_path, tiny_checkpoint, tiny_decoder, capsys):
    clip = write_clip(tmp_path / "clip.mp4", num_frames=12)
    code = rdstream("file", clip, "-o", tmp_path, "-c", tiny_checkpoint, "--decoder", tiny_decoder, "--res", "64",
                    "-d", "1", "3", "--no-save-sbs", "--cmap", "Greys_r")
    assert code == 0
    depth = np.load(tmp_path / "clip_pred.npy")
    assert depth.shape == (12, 40, 64) and depth.min() >= -1 and depth.max() <= 1
    assert "tiny RANDOM test AutoencoderTiny" in capsys.readouterr().err


def test_compare_decoders_on_the_tiny_pair(tmp_path, tiny_checkpoint, tiny_decoder, capsys):
    clip = write_clip(tmp_path / "clip.mp4", num_frames=9)
    code = rdstream("dev", "compare-decoders", clip, "-c", tiny_checkpoint, "--decoder", tiny_decoder,
                    "--res", "64", "--frame-count", "9")
    out = capsys.readouterr()
    assert code == 0
    report = json.loads(out.out)
    # two different random decoders: their depths differ, so both errors are positive numbers
    assert 0 < report["abs_rel"] < math.inf and 0 < report["temporal_error"] < math.inf and report["frames"] == 9
    assert report["fit_path_half_error"] > 0
    assert set(report["decoders"]) == {"full", str(tiny_decoder)}
    assert all(v["seconds_per_frame"] > 0 for v in report["decoders"].values())
    assert "say nothing about depth quality" in report["note"]


def test_make_tiny_decoder_says_it_is_not_depth(tmp_path, capsys):
    assert rdstream("dev", "make-tiny-decoder", tmp_path / "dec") == 0
    assert "not depth" in capsys.readouterr().out
    assert json.loads((tmp_path / "dec" / "config.json").read_text())["_class_name"] == "AutoencoderTiny"


def test_summary_gives_model_work_per_output_frame():
    from stream.cli.run_job import summary_line
    from stream.node import NodeResult

    result = NodeResult(end_reason="source ended", frames_in=10, frames_out=10, frames_processed=10, dropped=0, lost=0,
                        elapsed_s=1.0, latency_p50_ms=1.0, latency_p95_ms=2.0, latency_max_ms=3.0,
                        step_counts={"encodes": 10, "unet_frame_passes": 60, "decodes_full": 20, "decodes_fit": 40},
                        sinks={}, stages={})
    assert summary_line(result).endswith("per output frame: 1.00 encodes, 6.00 UNet frame-passes, "
                                         "2.00 full decodes, 4.00 fit decodes")
