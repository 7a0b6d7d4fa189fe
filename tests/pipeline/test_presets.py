"""The cost ladder: snippet strides per dilation (live and offline), the named rungs (--speed).

The tiny checkpoint gives meaningless depth: these tests check coverage, counts, frames and errors.
``rdstream dev evaluate`` of the rungs is in tests/cli/test_evaluate.py, ``bench.rungs`` in
tests/bench/test_rungs.py.
"""

from __future__ import annotations

import anyio
import numpy as np
import pytest

from bench.support.stream_doubles import ArraySource, RecordingSink
from pipeline.coalign.online import OnlineAligner
from pipeline.coalign.snippet_depth import still_merged
from pipeline.errors import BadInputError
from pipeline.snippets import SnippetPlan, plan_snippets
from stream.stages.display_normalizer import parse_normalize
from stream.node import NodeConfig, StreamNode
from stream.model.rolling_depth_steps import RollingDepthSteps
from tests.conftest import ROOT, moving_pattern


def live_snippets(plan: SnippetPlan, num_frames: int) -> list[tuple[int, ...]]:
    """Every snippet a live node runs on a stream of ``num_frames`` frames (the tail one included)."""
    out = [s for t in range(num_frames) for s in plan.snippets_ending_at(t)]
    tail = plan.tail_snippet(num_frames - 1)
    return out + ([tail] if tail else [])


@pytest.mark.parametrize("snip_len, dilations, strides", [(3, (1, 25), (2, 2)), (3, (1, 4), (1, 3)),
                                                           (4, (1, 5), (3, 6)), (2, (1, 5), (1, 2)), (4, (1, 3), (2, 4))])
@pytest.mark.parametrize("num_frames", [3, 4, 5, 11, 12, 13, 60])
def test_every_frame_is_covered_by_a_dilation_1_snippet_live_and_offline(snip_len, dilations, strides, num_frames):
    if num_frames < snip_len:
        return
    plan = SnippetPlan(snip_len, dilations, strides)
    live = [s for s in live_snippets(plan, num_frames) if s[1] - s[0] == 1]
    assert set().union(*map(set, live)) == set(range(num_frames))
    # consecutive dilation-1 snippets share a frame: the chain the co-alignment follows
    assert all(a[-1] >= b[0] for a, b in zip(live, live[1:]))
    offline = plan_snippets(num_frames, dilations, snip_len, cap=False, strides=strides) \
        if num_frames > (snip_len - 1) * max(dilations) else plan_snippets(num_frames, (1,), snip_len, strides=(strides[0],))
    assert set().union(*map(set, offline[0].frames)) == set(range(num_frames))


def test_strides_run_fewer_snippets_and_only_where_dilation_1_runs():
    plan = SnippetPlan(3, (25, 1), (4, 2))  # given in any order, kept with their dilation
    assert plan.dilations == (1, 25) and plan.strides == (2, 4)
    assert plan.snippets_ending_at(2) == [(0, 1, 2)] and plan.snippets_ending_at(3) == []
    assert plan.snippets_ending_at(50) == [(48, 49, 50), (0, 25, 50)] and plan.snippets_ending_at(52) == [(50, 51, 52)]
    assert plan.unet_passes_per_frame() == pytest.approx(3 / 2 + 3 / 4)
    assert plan.covered_before(5) == 4 and plan.covered_before(4) == 2 and plan.covered_before(2) == -1


@pytest.mark.parametrize("strides, message", [((3, 3), "leaves frames uncovered"), ((2, 3), "multiple of dilation 1"),
                                              ((1,), "one whole number"), ((0, 1), "one whole number")])
def test_bad_strides_are_one_line_errors(strides, message):
    with pytest.raises(BadInputError, match=message):
        SnippetPlan(3, (1, 25), strides)


@pytest.mark.parametrize("snip_len, strides, lookahead, num_frames", [
    (3, (2, 2), 2, 23), (3, (2, 2), 0, 24), (3, (1, 3), 2, 22), (3, (2, 4), 1, 25), (2, (1, 2), 2, 21), (2, (1, 1), 0, 20),
])
def test_strided_node_outputs_every_frame_with_the_counts_of_its_plan(tiny_model, snip_len, strides, lookahead, num_frames):
    """The real aligner and model steps: frames out == frames in (the stream ends between strides too),
    finite depth, and exactly the decodes still_merged asks for (the aligner raises if a frame it merges
    came only as fit samples)."""
    plan = SnippetPlan(snip_len, (1, 4), strides)
    aligner = OnlineAligner.for_plan(plan, lookahead)
    steps = RollingDepthSteps(tiny_model, 64, seed=0, fit_stride=aligner.fit_stride)
    sink = RecordingSink()
    node = StreamNode(ArraySource(moving_pattern(num_frames, 40, 64)), [("mem:", sink)], steps, aligner,
                      parse_normalize("running"), NodeConfig(plan=plan, lookahead=lookahead, drop_frames=False), report=print)
    result = anyio.run(node.run)
    assert result.frames_out == num_frames and len(sink.frames) == num_frames
    assert all(np.isfinite(f.depth).all() for f in sink.frames)
    snippets = live_snippets(plan, num_frames)
    assert steps.counts.unet_frame_passes == sum(map(len, snippets))
    assert steps.counts.decodes_full + steps.counts.decodes_fit == steps.counts.unet_frame_passes
    assert steps.counts.decodes_fit > 0 or lookahead == 0 and snip_len == 2


def test_still_merged_for_strided_snippets_matches_what_the_aligner_emitted():
    plan = SnippetPlan(3, (1, 4), (2, 2))
    # at frame 6 the previous dilation-1 snippet ended at 4; lookahead 0 had emitted through 4
    flags = still_merged((4, 5, 6), 0, 3, covered_through=plan.covered_before(6))
    assert flags == (False, True, True)
    # lookahead 2: frames up to 6 - 1 - 2 = 3 are out
    assert still_merged((4, 5, 6), 2, 3, covered_through=plan.covered_before(6)) == (True, True, True)


# --- the rungs and the tiny encoder through the command line ----------------------------------

import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402

import torch  # noqa: E402

from pipeline.presets import SPEEDS, speed_rung  # noqa: E402
from tests.conftest import rdstream_in_process as rdstream, write_clip  # noqa: E402


def test_rungs_keep_strides_valid_for_every_snippet_length():
    for rung in SPEEDS.values():
        for snip_len in (2, 3, 4):
            SnippetPlan(snip_len, (1, 10, 25), rung.strides((1, 10, 25), snip_len))  # raises if not
    assert SPEEDS["standard"].strides((1, 25), 3) == (1, 1) and SPEEDS["stride2"].strides((1, 25), 2) == (1, 2)
    with pytest.raises(BadInputError, match="--speed warp: unknown rung"):
        speed_rung("warp")


def test_speed_rung_with_the_tiny_encoder_runs_live_and_counts_its_plan(tmp_path, tiny_checkpoint, tiny_decoder):
    clip = write_clip(tmp_path / "clip.mkv", num_frames=15, width=96, height=64)
    npy, stats = tmp_path / "depth.npy", tmp_path / "stats.jsonl"
    result = subprocess.run(
        [sys.executable, "-m", "stream.cli", "run", "--source", f"file:{clip}", "--sink", f"npy:{npy}",
         "-c", str(tiny_checkpoint), "--speed", "lite", "--encoder", str(tiny_decoder), "--decoder",
         str(tiny_decoder), "--no-drop", "--lookahead", "2", "--res", "64", "-d", "1", "-d", "3", "--no-status",
         "--stats-json", str(stats)],
        cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr
    assert "speed lite (strides 2,2, encoder " in result.stderr and "trades stride2 + the tiny encoder" in result.stderr
    assert "tiny RANDOM test AutoencoderTiny" in result.stderr and "15 frames in, 15 out" in result.stderr
    depth = np.load(npy)
    assert depth.shape == (15, 40, 64) and np.isfinite(depth).all()
    counts = json.loads(stats.read_text().splitlines()[-1])["counts"]
    assert counts["unet_frame_passes"] == sum(map(len, live_snippets(SnippetPlan(3, (1, 3), (2, 2)), 15)))


def test_snip_len_2_runs_live_with_a_rung(tmp_path, tiny_checkpoint, capsys):
    clip = write_clip(tmp_path / "clip.mkv", num_frames=11, width=96, height=64)
    code = rdstream("run", "--source", f"file:{clip}", "--sink", f"npy:{tmp_path / 'd.npy'}", "-c", tiny_checkpoint,
                    "--speed", "pair", "--no-drop", "--res", "64", "-d", "1", "4", "--no-status")
    assert code == 0
    err = capsys.readouterr().err
    assert "speed pair (strides 1,2" in err and "11 frames in, 11 out" in err
    # 2-frame snippets: dilation 1 at every frame from frame 1, dilation 4 at frames 5, 7, 9
    assert "per output frame: 1.00 encodes, 2.36 UNet frame-passes" in err  # (10 + 3) x 2 / 11
    assert np.isfinite(np.load(tmp_path / "d.npy")).all()


def test_tiny_encoder_latents_are_taesd_latents_unscaled(tiny_checkpoint, tiny_decoder):
    from pipeline.checkpoint import load_rolling_depth
    from pipeline.inference import LATENT_SCALE, encode_rgb

    model = load_rolling_depth(str(tiny_checkpoint), "cpu", encoder=str(tiny_decoder))
    rgb = torch.rand(2, 3, 32, 48) * 2 - 1
    taesd = model.encoder.autoencoder
    expected = taesd.encoder.layers((rgb + 1) / 2)  # TAESD's own convention: [0, 1] in, latents out
    torch.testing.assert_close(encode_rgb(model, rgb), expected)
    full = load_rolling_depth(str(tiny_checkpoint), "cpu")
    torch.testing.assert_close(encode_rgb(full, rgb), full.vae.encode(rgb).latent_dist.mean * LATENT_SCALE)


@pytest.mark.parametrize("args, message", [
    (["--speed", "warp"], "--speed warp: unknown rung"),
    (["--strides", "3,3"], "leaves frames uncovered"),
    (["--strides", "1"], "one whole number >= 1 per dilation"),
    (["--encoder", "/no/such/folder"], "--encoder /no/such/folder: no such folder"),
    (["--encoder", "{kl}"], "holds a AutoencoderKL, not an AutoencoderTiny"),
])
def test_bad_ladder_options_are_one_line_exit_2(tmp_path, tiny_checkpoint, capsys, args, message):
    kl = tmp_path / "kl"
    kl.mkdir()
    (kl / "config.json").write_text('{"_class_name": "AutoencoderKL"}')
    args = [a.replace("{kl}", str(kl)) for a in args]
    code = rdstream("run", "--source", "test:?frames=5&size=64x48", "--sink", "null:", "-c", tiny_checkpoint, *args)
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_tiny_encoder_with_other_latent_channels_is_refused_before_loading(tmp_path, tiny_checkpoint, capsys):
    from diffusers import AutoencoderTiny

    folder = tmp_path / "taesd8"
    AutoencoderTiny(encoder_block_out_channels=(8, 8, 8, 8), decoder_block_out_channels=(8, 8, 8, 8),
                    num_encoder_blocks=(1, 1, 1, 1), num_decoder_blocks=(1, 1, 1, 1), latent_channels=8).save_pretrained(folder)
    code = rdstream("file", write_clip(tmp_path / "c.mp4", 6), "-o", tmp_path / "out", "-c", tiny_checkpoint,
                    "--encoder", folder, "--res", "64", "-d", "1")
    err = capsys.readouterr().err
    assert code == 2 and "--encoder" in err and "8" in err and "Traceback" not in err


def test_offline_strides_through_rdstream_file(tmp_path, tiny_checkpoint, capsys):
    clip = write_clip(tmp_path / "clip.mp4", num_frames=14)
    code = rdstream("file", clip, "-o", tmp_path, "-c", tiny_checkpoint, "--res", "64", "-d", "1", "3",
                    "--strides", "2", "4", "--no-save-sbs", "--cmap", "Greys_r", "--verbose")
    assert code == 0
    depth = np.load(tmp_path / "clip_pred.npy")
    assert depth.shape == (14, 40, 64) and np.isfinite(depth).all()
    offline = plan_snippets(14, (1, 3), 3, strides=(2, 4))
    assert [len(level.frames) for level in offline] == [7, 2]  # ends 2,4,..,12 and the last frame 13; 8 and 12
    assert "unet_frame_passes=27" in capsys.readouterr().err  # (7 + 2) x 3


# --- /rdstream/speed: switching rungs live ----------------------------------------------------

def test_speed_over_osc_is_validated():
    from stream.stages.messages import NodeCommand
    from stream.control.osc_commands import parse_command

    assert parse_command("/rdstream/speed", ["stride2"]) == NodeCommand("speed", ("stride2",))
    for args in (["warp"], [], [2], ["lite", "pair"]):
        with pytest.raises(ValueError, match="expects one rung"):
            parse_command("/rdstream/speed", args)


def test_speed_switches_between_frames_carrying_over_or_restarting_and_every_frame_comes_out():
    from bench.support.stream_doubles import ListSource
    from tests.support.osc import run_controlled_node, wait_frames

    seen = {}

    async def script(client, sink, node):
        seen["node"] = node
        await wait_frames(sink, 20)
        client.send_message("/rdstream/speed", "stride2")  # same snippet length: carries over
        await wait_frames(sink, 60)
        seen["passes_before_pair"] = node.steps.counts.unet_frame_passes
        client.send_message("/rdstream/speed", "pair")  # 2-frame snippets: the aligner restarts
        await wait_frames(sink, 110)
        client.send_message("/rdstream/speed", "standard")  # back to 3 frames: restarts again

    source = ListSource(180, interval=0.01)
    sink = RecordingSink()
    result, listener, reports, _ = run_controlled_node(source, sink, script)
    assert result.frames_out == 180 and len(sink.frames) == 180
    assert [f.index for f in sink.frames] == list(range(180))
    assert all(np.isfinite(f.depth).all() for f in sink.frames)
    speed_lines = [r for r in reports if r.startswith("speed:")]
    assert len(speed_lines) == 3 and "carry over" in speed_lines[0]
    assert "restart" in speed_lines[1] and "snippets of 2 frames" in speed_lines[1] and "restart" in speed_lines[2]
    acks = [args for address, args in listener.messages if address == "/rdstream/ack" and args[0] == "/rdstream/speed"]
    assert [a[2] for a in acks] == ["stride2", "pair", "standard"] and all(a[1] >= 20 for a in acks)
    assert seen["node"].snippets.plan.snip_len == 3 and seen["node"].snippets.plan.strides == (1, 1)
    assert seen["passes_before_pair"] < 60 * 6  # strided frames ran fewer UNet passes
