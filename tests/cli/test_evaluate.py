"""``rdstream dev evaluate`` (stream/cli/evaluate.py): the rungs of the cost ladder against a cached
offline reference, its bad input, and the tiny autoencoder it picks with and without the hub."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from pipeline.errors import BadInputError
from tests.conftest import ROOT, moving_pattern, rdstream_in_process as rdstream, write_clip


def test_dev_evaluate_two_rungs_end_to_end_with_cached_reference(tmp_path, tiny_checkpoint, tiny_decoder):
    clip = write_clip(tmp_path / "clip.mp4", num_frames=60, width=96, height=64)
    out = tmp_path / "eval"
    command = [sys.executable, "-m", "stream.cli", "dev", "evaluate", str(clip), "-c", str(tiny_checkpoint),
               "--rungs", "standard,lite", "--tiny", str(tiny_decoder), "-o", str(out), "--res", "64"]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "say nothing about depth quality" in result.stderr and "offline reference: preset paper" in result.stderr
    report = json.loads((out / "evaluate.json").read_text())
    assert "say nothing about depth" in report["note"] and set(report["rungs"]) == {"standard", "lite"}
    for name, row in report["rungs"].items():
        assert row["frames_in"] == row["frames_out"] == 60
        assert np.isfinite([row["abs_rel"], row["temporal_error"], row["tflop_per_frame"]]).all()
        assert np.load(out / f"rung-{name}.npy").shape == (60, 40, 64)
    standard, lite = report["rungs"]["standard"], report["rungs"]["lite"]
    assert lite["counts"]["unet_frame_passes"] < standard["counts"]["unet_frame_passes"]
    assert lite["tflop_per_frame"] < standard["tflop_per_frame"]
    assert (out / "evaluate.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    again = subprocess.run(command[:-8] + ["--rungs", "pair", "-o", str(out), "--res", "64"], cwd=ROOT,
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "offline reference: cached" in again.stderr, again.stderr


@pytest.mark.parametrize("case, message", [("unreadable", "clip.mp4"), ("short", "shorter than the longest snippet"),
                                           ("folder", "cannot write there"), ("rung", "--speed warp: unknown rung")])
def test_dev_evaluate_bad_input_is_one_line_exit_2(tmp_path, tiny_checkpoint, capsys, case, message):
    clip = tmp_path / "clip.mp4"
    if case == "unreadable":
        clip.write_bytes(b"not a video")
    else:
        write_clip(clip, num_frames=20 if case == "short" else 60)
    out = tmp_path / "eval"
    if case == "folder":
        out.write_text("a file where the folder should be")
    code = rdstream("dev", "evaluate", clip, "-c", tiny_checkpoint, "-o", out, "--res", "64",
                    "--rungs", "warp" if case == "rung" else "standard")
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err


@pytest.fixture
def no_hub(monkeypatch):
    """huggingface_hub answers nothing: not in the cache, no network (what an offline machine sees)."""
    import huggingface_hub

    asked = []

    def unreachable(repo_id, **kwargs):
        asked.append(repo_id)
        raise OSError("offline: the hub cannot be reached")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", unreachable)
    return asked


def test_dev_evaluate_of_the_random_checkpoint_uses_a_random_tiny_autoencoder_without_the_hub(tmp_path, tiny_model,
                                                                                              no_hub):
    from stream.cli.evaluate import EvaluateOptions, choose_tiny, load_tiny

    said = []
    opts = EvaluateOptions(clip="clip.mp4", checkpoint="ckpt")
    choice, skipped = choose_tiny(opts, ["standard", "lite"], True, tmp_path, said.append)
    assert skipped == [] and no_hub == []  # nothing asked of the hub
    assert said == [said[0]] and "rungs lite: a random tiny autoencoder" in said[0]
    encoder, decoder = load_tiny(tiny_model, choice)
    assert encoder.is_random and decoder.is_random  # so every output says its numbers are meaningless
    assert choose_tiny(opts, ["standard", "pair"], True, tmp_path, said.append) == (None, [])


def test_dev_evaluate_of_real_weights_without_taesd_skips_the_tiny_rungs_with_the_fetch_command(tmp_path, no_hub):
    from stream.cli.evaluate import EvaluateOptions, choose_tiny

    said = []
    opts = EvaluateOptions(clip="clip.mp4", checkpoint="ckpt")
    choice, skipped = choose_tiny(opts, ["standard", "pair", "lite"], False, tmp_path, said.append)
    assert (choice, skipped) == (None, ["lite"]) and "madebyollin/taesd" in no_hub
    assert len(said) == 1 and said[0].startswith("rungs lite skipped:")
    assert "`hf download madebyollin/taesd`" in said[0] and "--tiny FOLDER" in said[0]
    with pytest.raises(BadInputError, match="hf download madebyollin/taesd"):  # nothing left to run
        choose_tiny(opts, ["lite"], False, tmp_path, said.append)


def test_dev_evaluate_shows_the_offline_references_progress_as_lines_off_a_terminal(tmp_path, tiny_model):
    import io

    from rich.console import Console

    from stream.cli.evaluate import EvaluateOptions, reference_depth

    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"")  # only its name, size and time key the cache
    out = io.StringIO()
    opts = EvaluateOptions(clip=str(clip), checkpoint="ckpt", preset="fast", res=64)
    depth = reference_depth(tiny_model, opts, moving_pattern(8, 36, 64), tmp_path, lambda line: None,
                            console=Console(file=out, force_terminal=False, width=200))
    assert depth.shape == (8, 32, 64)
    lines = out.getvalue().splitlines()
    assert any(line.startswith("offline reference encode: 8/8") for line in lines), lines
    assert any(line.startswith("offline reference snippets: ") for line in lines)
    assert "\x1b" not in out.getvalue()  # plain lines, no bar
