"""Every processing size the options accept runs; smaller ones are refused up front (one line, exit 2).

Group norm needs more than one value per group: a 1-frame snippet whose latent shrinks to 1x1 in
the UNet failed with an internal error before ``pipeline.preprocess.MIN_RES`` existed.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import run_rdstream, write_clip


@pytest.mark.parametrize("source, res, shape", [
    ("test:?frames=1&size=16x16", "0", (32, 32)),  # native, below the minimum: upscaled
    ("test:?frames=1&size=2x2", "0", (32, 32)),  # the smallest test pattern
    ("test:?frames=1&size=256x8", "32", (8, 32)),  # the smallest --res, one latent row
])
def test_tiny_sizes_run_through_rdstream_run(tmp_path, tiny_checkpoint, source, res, shape):
    npy = tmp_path / "d.npy"
    result = run_rdstream("run", "--source", source, "--sink", f"npy:{npy}", "-c", str(tiny_checkpoint),
                          "--res", res, "--no-status")
    assert result.returncode == 0, result.stderr
    assert "internal error" not in result.stderr
    assert np.load(npy).shape == (1, *shape)


def test_a_tiny_clip_runs_through_rdstream_file(tmp_path, tiny_checkpoint):
    clip = write_clip(tmp_path / "tiny.mkv", num_frames=3, width=16, height=16)
    result = run_rdstream("file", str(clip), "-o", str(tmp_path / "out"), "-c", str(tiny_checkpoint),
                          "--res", "0", "-d", "1", "--no-save-sbs")
    assert result.returncode == 0, result.stderr
    assert np.load(tmp_path / "out" / "tiny_pred.npy").shape == (3, 32, 32)


@pytest.mark.parametrize("command", ["run", "file"])
@pytest.mark.parametrize("res", ["8", "16", "31"])
def test_a_res_below_what_the_model_takes_is_one_line_exit_2_before_the_load(tmp_path, command, res):
    missing = str(tmp_path / "no-checkpoint")  # the refusal comes before the model would load
    args = (["run", "--source", "test:?frames=1", "--sink", "null:"] if command == "run"
            else ["file", str(tmp_path / "x.mp4"), "-o", str(tmp_path / "out")])
    result = run_rdstream(*args, "-c", missing, "--res", res, timeout=60)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and f"--res {res}: must be 0 (native size) or a number of pixels from 32" in result.stderr
