"""Live speed: decode only what reaches the output, the tiny decoder, --quality for the live node, the live preset.

The tiny checkpoint and the tiny random decoder give meaningless depth: these tests check counts,
shapes, frames, ranges and errors, never depth quality.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import anyio
import numpy as np
import pytest
import torch

from bench.support.stream_doubles import ArraySource, RecordingSink
from pipeline.coalign.fit_grid import fit_grid
from pipeline.coalign.online import OnlineAligner
from pipeline.coalign.snippet_depth import SnippetDepth, still_merged
from pipeline.errors import BadInputError, RuntimeFailure
from pipeline.presets import LIVE_QUALITIES, get_preset, live_quality
from stream.cli import main
from pipeline.snippets import SnippetPlan
from stream.display_normalizer import parse_normalize
from stream.node import NodeConfig, StreamNode
from stream.rolling_depth_steps import RollingDepthSteps
from tests.conftest import moving_pattern, write_clip

ROOT = Path(__file__).resolve().parents[1]


def snippets_ending_at(t: int, dilations, snip_len: int = 3) -> list[tuple[int, ...]]:
    return SnippetPlan(snip_len, tuple(dilations)).snippets_ending_at(t)


@pytest.fixture(scope="session")
def tiny_decoder(tmp_path_factory) -> Path:
    from pipeline.tiny_decoder import write_tiny_decoder

    return write_tiny_decoder(tmp_path_factory.mktemp("decoder") / "taesd-random")


def rdstream(*args) -> int:
    with pytest.raises(SystemExit) as info:
        main([str(a) for a in args])
    return info.value.code


# --- which frames are decoded at full resolution ---------------------------------------------

@pytest.mark.parametrize("lookahead, full_per_frame", [(0, 2), (1, 3), (2, 4), (24, 4)])
def test_steady_state_full_resolution_frames_per_output_frame(lookahead, full_per_frame):
    t = 80
    flags = [still_merged(s, lookahead, 3) for s in snippets_ending_at(t, (1, 25), 3)]
    assert sum(map(sum, flags)) == full_per_frame and sum(map(len, flags)) == 6


def test_every_frame_still_merged_is_one_the_aligner_has_not_emitted():
    """Replaying a stream through the real aligner: a frame flagged fit-only was emitted already,
    a frame flagged merged was not (so the aligner never lacks full depth, nor is sent any in vain)."""
    for lookahead in (0, 2, 5):
        aligner = OnlineAligner.for_plan(SnippetPlan(3, (1, 4)), lookahead)
        emitted = set()
        for t in range(30):
            for frames in snippets_ending_at(t, (1, 4), 3):
                flags = still_merged(frames, lookahead, 3)
                assert all(flag == (f not in emitted) for f, flag in zip(frames, flags)), (lookahead, t, frames)
                aligner.push(torch.rand(3, 8, 8) + 1, frames)
            for frame in aligner.ready_frames():
                aligner.emit(frame)
                emitted.add(frame)


# --- the aligner with fit samples only -------------------------------------------------------

def _partial(depth: torch.Tensor, frames, lookahead: int, stride: int) -> SnippetDepth:
    flags = still_merged(frames, lookahead, 3)
    keep = torch.tensor(flags)
    return SnippetDepth(depth[keep], flags, fit_grid(*depth.shape[1:], stride).take(depth))


def test_fit_samples_for_emitted_frames_give_the_same_output_and_hold_less():
    gen = torch.Generator().manual_seed(0)
    depths = {}
    for t in range(40):
        for frames in snippets_ending_at(t, (1, 5), 3):
            depths[frames] = torch.rand(3, 24, 32, generator=gen) + 0.5
    outputs = []
    for partial in (False, True):
        aligner = OnlineAligner.for_plan(SnippetPlan(3, (1, 5)), 2)
        out, held = [], []
        for t in range(40):
            for frames in snippets_ending_at(t, (1, 5), 3):
                depth = depths[frames]
                aligner.push(_partial(depth, frames, 2, aligner.fit_stride) if partial else depth, frames)
            out += [aligner.emit(f) for f in aligner.ready_frames()]
            held.append(aligner.full_frames_held)
        out += [d for _, d in aligner.flush()]
        outputs.append(np.stack(out))
        if partial:  # only frames still to be merged: at most lookahead + 1 frames' worth per dilation
            assert max(held[20:]) <= 2 * (2 + 1)
    assert outputs[0].shape == (40, 24, 32)
    np.testing.assert_allclose(outputs[0], outputs[1], rtol=1e-5, atol=1e-5)


def test_node_arrays_are_taken_without_a_copy_and_merged_in_float32():
    aligner = OnlineAligner(lookahead=0, window=6)
    full = (torch.rand(3, 16, 16) + 1).half()
    aligner.push(SnippetDepth(full, (True, True, True), None), (0, 1, 2))
    held = next(iter(aligner._snippets.values())).full
    assert all(held[slot].data_ptr() == full[slot].data_ptr() for slot in range(3))
    out = aligner.emit(0)
    assert out.dtype == np.float32


def test_a_due_frame_without_full_depth_is_a_clear_failure_not_garbage():
    aligner = OnlineAligner(lookahead=0, window=6)
    depth = torch.rand(3, 16, 16) + 1
    grid = fit_grid(16, 16, aligner.fit_stride)
    aligner.push(SnippetDepth(depth[2:], (False, False, True), grid.take(depth)), (0, 1, 2))
    with pytest.raises(RuntimeFailure, match="only fit samples"):
        aligner.emit(0)


def test_bad_fit_samples_are_rejected():
    aligner = OnlineAligner(lookahead=0, window=6)
    depth = torch.rand(3, 16, 16)
    with pytest.raises(BadInputError, match="fit samples must be"):
        aligner.push(SnippetDepth(depth[2:], (False, False, True), torch.zeros(3, 5)), (0, 1, 2))
    with pytest.raises(BadInputError, match="brings 3 full-resolution"):
        aligner.push(SnippetDepth(depth, (False, False, True), None), (0, 1, 2))
    with pytest.raises(BadInputError, match="without fit samples"):
        aligner.push(SnippetDepth(depth[2:], (False, False, True), None), (0, 1, 2))


def test_fit_grid_samples_a_half_resolution_decode_at_the_full_resolution_pixels():
    y, x = torch.meshgrid(torch.arange(30.0), torch.arange(44.0), indexing="ij")
    ramp = (0.3 * y + 0.7 * x)[None]
    coarse = torch.nn.functional.avg_pool2d(ramp[:, None], 2, ceil_mode=True)[:, 0]
    grid = fit_grid(30, 44, 3)
    # bilinear sampling of a pooled linear ramp at the same pixel centres is exact (inside the border);
    # the ramp is pooled per pixel, so a "latent" is one pixel (scale 1)
    np.testing.assert_allclose(grid.sample(coarse, 2, scale=1).numpy(), grid.take(ramp).numpy(), atol=1e-4)


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


def test_half_fit_path_decodes_a_quarter_size_and_full_path_full_size(tiny_model):
    from pipeline.inference import decode_depth

    latents = torch.randn(2, 4, 5, 8)
    assert decode_depth(tiny_model, latents).shape == (2, 40, 64)
    assert decode_depth(tiny_model, latents, pool=2).shape == (2, 24, 32)  # ceil(5 / 2) latents high
    assert decode_depth(tiny_model, latents, dtype=None).dtype == tiny_model.dtype
    assert decode_depth(tiny_model, latents[:0]).shape == (0, 40, 64)


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


def test_prepare_frames_on_device_matches_the_cpu_preprocessing():
    from pipeline.inference import prepare_frames_on
    from pipeline.preprocess import prepare_frames

    frames = moving_pattern(2, 60, 90)
    expected = prepare_frames(frames, 64)
    got = prepare_frames_on(torch.device("cpu"), frames, tuple(expected.shape[-2:]))
    assert torch.allclose(got, expected, atol=1e-5)


def test_offline_unet_batch_is_independent_of_max_vae_bs(tiny_model, monkeypatch):
    import pipeline.offline as offline

    calls = []
    real = offline.predict_snippets
    monkeypatch.setattr(offline, "predict_snippets",
                        lambda m, lat, noise, *rest: calls.append(lat.shape[0]) or real(m, lat, noise, *rest))
    frames = moving_pattern(12, 40, 64)
    result = offline.OfflinePipeline(tiny_model, offline.OfflineSettings(dilations=(1, 3), res=64, max_vae_bs=1,
                                                                         unet_bs=4, seed=0))(frames)
    assert max(calls) == 4 and result.depth.shape == (12, 40, 64)


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


def test_live_cost_quick_meets_the_count_and_flop_targets():
    result = subprocess.run([sys.executable, "-m", "bench.live_cost", "--quick", "--rounds", "1", "--threads", "1"],
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    per_frame = report["per_output_frame"]
    assert per_frame["old_decode_everything"]["counts"] == {"encodes": 1, "unet_frame_passes": 6, "decodes_full": 6, "decodes_fit": 0}
    assert per_frame["lookahead_0/full"]["counts"]["decodes_full"] == 2
    assert per_frame["lookahead_2/full"]["counts"]["decodes_full"] == 4
    targets = report["targets_met"]
    assert all(v for k, v in targets.items() if not k.startswith("cpu_")), targets


def test_summary_gives_model_work_per_output_frame():
    from stream.cli.run_job import summary_line
    from stream.node import NodeResult

    result = NodeResult(end_reason="source ended", frames_in=10, frames_out=10, frames_processed=10, dropped=0, lost=0,
                        elapsed_s=1.0, latency_p50_ms=1.0, latency_p95_ms=2.0, latency_max_ms=3.0,
                        step_counts={"encodes": 10, "unet_frame_passes": 60, "decodes_full": 20, "decodes_fit": 40},
                        sinks={}, stages={})
    assert summary_line(result).endswith("per output frame: 1.00 encodes, 6.00 UNet frame-passes, "
                                         "2.00 full decodes, 4.00 fit decodes")
