"""``rdstream file`` end to end on the tiny random checkpoint, and every bad input it must reject."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from io_adapters.video_file import read_gray16_video
from stream.cli.argv import normalize_argv
from tests.conftest import ROOT, count_frames, rdstream_in_process as rdstream, write_clip

SMALL = ["--res", "64", "--seed", "1"]


def test_writes_every_output_with_n_frames(tiny_checkpoint, clip40, tmp_path, capsys):
    code = rdstream("file", clip40, "-o", tmp_path, "-c", tiny_checkpoint, "--preset", "fast", "--res", "128",
                    "--save-16bit", "--save-snippets", "--seed", "1")
    assert code == 0
    depth = np.load(tmp_path / "clip_pred.npy")
    assert depth.dtype == np.float32 and depth.shape[0] == 40 and depth.min() >= -1 and depth.max() <= 1
    for name in ("clip_Spectral_r.mp4", "clip_Greys_r.mp4", "clip_rgbd.mp4"):
        assert count_frames(tmp_path / name) == 40, name
    assert read_gray16_video(tmp_path / "clip_depth16.mkv").shape[0] == 40
    snippets = np.load(tmp_path / "clip_snippets.npz")
    assert set(snippets.files) == {"dilation1", "dilation25"}
    err = capsys.readouterr().err
    assert "NOT depth" in err  # the tiny-model banner
    assert "rdstream file: running on cpu, float32" in err  # the device and precision in force
    assert "clip.mp4: 96x64 in, processed at 128x88 (upscaled" in err  # --res 128 above the input's size
    # on the CPU, said before the work starts: the tiny test model is quick (tests/pipeline/test_cost_estimate.py)
    assert "rdstream: note: on the CPU this run takes under a minute (40 frames at 128x88" in err
    assert err.index("on the CPU this run takes") < err.index("clip.mp4: 96x64 in")


def test_reference_argument_habits_are_accepted():
    assert normalize_argv(["-d", "1", "10", "25", "clip.mp4"]) == ["-d", "1", "-d", "10", "-d", "25", "clip.mp4"]
    assert normalize_argv(["--cmap", "Spectral_r", "Greys_r", "x.mp4"]) == ["--cmap", "Spectral_r", "--cmap", "Greys_r", "x.mp4"]
    assert normalize_argv(["--save-npy", "false", "--restore-res", "true"]) == ["--no-save-npy", "--restore-res"]


def test_frame_range_input_flag_and_restore_res(tiny_checkpoint, clip40, tmp_path):
    code = rdstream("file", "-i", clip40, "-o", tmp_path, "-c", tiny_checkpoint, *SMALL, "--start-frame", "5",
                    "--frame-count", "20", "--restore-res", "--no-save-sbs", "--cmap", "turbo",
                    "--resample-method", "NEAREST_EXACT")  # the reference's spelling
    assert code == 0
    assert np.load(tmp_path / "clip_pred.npy").shape == (20, 64, 96)
    assert count_frames(tmp_path / "clip_turbo.mp4") == 20
    assert not (tmp_path / "clip_rgbd.mp4").exists()


def test_odd_input_size_gives_even_videos(tiny_checkpoint, tmp_path):
    clip = write_clip(tmp_path / "odd.mkv", 12, width=61, height=35)
    assert rdstream("file", clip, "-o", tmp_path / "out", "-c", tiny_checkpoint, "--res", "0", "--restore-res", "-d", "1") == 0
    assert np.load(tmp_path / "out" / "odd_pred.npy").shape == (12, 35, 61)
    import av

    with av.open(str(tmp_path / "out" / "odd_rgbd.mp4")) as container:
        stream = container.streams.video[0]
        assert stream.width % 2 == 0 and stream.height % 2 == 0


@pytest.mark.parametrize("quality", ["fast", "balanced", "quality"])
def test_each_quality_mode(tiny_checkpoint, clip40, tmp_path, quality):
    code = rdstream("file", clip40, "-o", tmp_path, "-c", tiny_checkpoint, *SMALL, "--quality", quality,
                    "--frame-count", "16", "--no-save-sbs", "--cmap", "Greys_r")
    assert code == 0 and np.load(tmp_path / "clip_pred.npy").shape[0] == 16


def test_adam_coalignment_option(tiny_checkpoint, clip40, tmp_path):
    code = rdstream("file", clip40, "-o", tmp_path, "-c", tiny_checkpoint, *SMALL, "--coalign", "adam",
                    "--quality", "fast", "--frame-count", "12", "--no-save-sbs", "--cmap", "Greys_r")
    assert code == 0


def test_preset_full_with_refinement(tiny_checkpoint, clip40, tmp_path):
    code = rdstream("file", clip40, "-o", tmp_path, "-c", tiny_checkpoint, "--preset", "full", *SMALL,
                    "--frame-count", "14", "--refine-step", "3", "--no-save-sbs", "--cmap", "Greys_r")
    assert code == 0
    depth = np.load(tmp_path / "clip_pred.npy")
    assert depth.shape[0] == 14 and depth.min() >= -1 and depth.max() <= 1


def test_seed_makes_runs_reproducible(tiny_checkpoint, clip40, tmp_path):
    for out in ("a", "b"):
        rdstream("file", clip40, "-o", tmp_path / out, "-c", tiny_checkpoint, *SMALL, "--frame-count", "10",
                 "--no-save-sbs", "--cmap", "Greys_r")
    assert np.array_equal(np.load(tmp_path / "a" / "clip_pred.npy"), np.load(tmp_path / "b" / "clip_pred.npy"))


def test_batch_keeps_finished_outputs_when_one_input_is_bad(tiny_checkpoint, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    write_clip(folder / "a_good.mp4", 10)
    (folder / "b_bad.mp4").write_bytes(b"this is not a video")
    code = rdstream("file", folder, "-o", tmp_path / "out", "-c", tiny_checkpoint, *SMALL, "-d", "1")
    assert code == 2
    assert np.load(tmp_path / "out" / "a_good_pred.npy").shape[0] == 10


# Bad input: each gives one clear line, a non-zero exit and no traceback.
def bad_inputs(tmp_path: Path, clip: Path, checkpoint: Path):
    not_video = tmp_path / "notes.mp4"
    not_video.write_text("hello")
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(clip.read_bytes()[: clip.stat().st_size // 2])
    short = write_clip(tmp_path / "short.mp4", 2)
    three = write_clip(tmp_path / "three.mp4", 3)
    no_unet = tmp_path / "no_unet"
    import shutil

    shutil.copytree(checkpoint, no_unet)
    shutil.rmtree(no_unet / "unet")
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    return {
        "missing input": ([tmp_path / "missing.mp4"], "no such file"),
        "not a video": ([not_video], "notes.mp4"),
        "truncated": ([truncated], "truncated.mp4"),
        "too short": ([short], "too short"),
        "refinement snippet longer than the clip": (
            [three, "-d", "1", "--refine-step", "2", "--refine-snippet-len", "4"], "--refine-snippet-len 4: the clip has only 3 frames"),
        "negative res": ([clip, "--res", "-8"], "--res -8"),
        "checkpoint without unet": ([clip, "-c", no_unet], "unet/"),
        "unwritable output": ([clip, "-o", blocker / "sub"], "cannot write"),
        "no mps": ([clip, "--device", "mps"], "MPS is not available"),
        "unknown preset": ([clip, "--preset", "ultra"], "--preset ultra"),
        "unknown colour map": ([clip, "--cmap", "Nope"], "Nope"),
        "unknown resample method": ([clip, "--resample-method", "LANCZOS"], "use one of bilinear, bicubic"),
    }


def test_bad_inputs_give_one_clear_line(tiny_checkpoint, clip40, tmp_path, capsys):
    failures = []
    for name, (args, expected) in bad_inputs(tmp_path, clip40, tiny_checkpoint).items():
        code = rdstream("file", "-o", tmp_path / "out", "-c", tiny_checkpoint, "--res", "64", *args)
        err = capsys.readouterr().err
        if code == 0 or "Traceback" in err or expected not in err:
            failures.append(f"{name}: rc={code} stderr={err[-400:]!r}")
    assert not failures, "\n".join(failures)


def test_a_real_process_prints_one_line_and_no_traceback(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    argv = [sys.executable, "-m", "stream.cli", "file", str(tmp_path / "missing.mp4")]
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [f"rdstream: error: input {tmp_path / 'missing.mp4'}: no such file or folder"]


def test_usage_errors_exit_2_without_traceback(capsys):
    assert rdstream("file") == 2
    assert rdstream("file", "x.mp4", "--res", "abc") == 2
    assert rdstream("no-such-command") == 2
    assert "Traceback" not in capsys.readouterr().err


def test_file_with_compile_where_it_cannot_compile(tiny_checkpoint, clip40, tmp_path):
    env = dict(os.environ, RDSTREAM_COMPILE_BACKEND="no_such_backend")
    result = subprocess.run([sys.executable, "-m", "stream.cli", "file", str(clip40), "-o", str(tmp_path),
                             "-c", str(tiny_checkpoint), "--res", "64", "--frame-count", "8", "-d", "1",
                             "--device", "cpu", "--compile", "--no-save-sbs"],
                            cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    failures = [line for line in result.stderr.splitlines() if line.startswith("--compile: cannot compile")]
    assert len(failures) == 2 and all("running it eager" in line for line in failures)
    assert np.load(tmp_path / "clip_pred.npy").shape[0] == 8
