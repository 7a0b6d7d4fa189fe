"""bench.offline: its quick mode prints one JSON document whose counts follow from the snippet plan."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from bench.offline import main
from tests.conftest import ROOT



@pytest.fixture(scope="module")
def quick_document() -> dict:
    # A subprocess: stdout must hold nothing but the JSON, and --threads 1 must not leak into the
    # test session. One thread also keeps the tiny model fast on a busy machine (2 threads of tiny
    # ops stall whenever another process holds a core).
    done = subprocess.run(
        [sys.executable, "-m", "bench.offline", "--quick", "--threads", "1", "--frames", "10"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_quick_mode_runs_only_the_tiny_model(quick_document):
    assert [m["name"] for m in quick_document["models"]] == ["tiny"]
    assert quick_document["clip"]["frames"] == 10
    assert quick_document["machine"]["torch_threads"] == 1
    assert any("not depth" in note for note in quick_document["notes"])


def test_counts_follow_the_snippet_plan(quick_document):
    tiny = quick_document["models"][0]
    # N = 10, L = 3: dilation 25 is capped to int(10 / 3) - 1 = 2, so 8 + 6 snippets of 3 frames.
    assert tiny["dilations"] == {"requested": [1, 25], "used": [1, 2]}
    counts = tiny["counts"]
    assert counts["frames_encoded"] == 10
    assert counts["snippets"] == 14
    assert counts["unet_frame_passes"] == counts["frames_decoded"] == 42
    assert counts["coalign_iterations"] >= 1
    # max_vae_bs 4: encode in batches of 4 frames; the UNet takes 4 snippets a call whatever
    # max_vae_bs is (8 + 6 snippets: 2 + 2 calls); each call's 12 (or 6) frames decode 4 at a time.
    assert tiny["module_calls"] == {"vae_encoder": 3, "unet": 4, "vae_decoder": 3 + 3 + 3 + 2}


def test_seconds_are_positive_and_consistent(quick_document):
    tiny = quick_document["models"][0]
    seconds = tiny["seconds"]
    assert set(seconds) == {"encode", "snippets", "coalign", "total"}
    assert all(value > 0 for value in seconds.values())
    assert seconds["total"] >= seconds["encode"] + seconds["snippets"] + seconds["coalign"] - 1e-3
    inside = tiny["module_seconds"]
    assert 0 < inside["vae_encoder"] <= seconds["encode"]
    assert 0 < inside["unet"] + inside["vae_decoder"] <= seconds["snippets"]
    per = tiny["seconds_per"]
    assert per["unet_frame_pass"] == pytest.approx(inside["unet"] / 42, rel=0.01, abs=1e-5)
    assert per["decoded_frame"] == pytest.approx(inside["vae_decoder"] / 42, rel=0.01, abs=1e-5)


def test_describes_the_run(quick_document):
    tiny = quick_document["models"][0]
    assert tiny["resolution"] == {"height": 32, "width": 64}  # 640x360 -> 64x36 -> multiples of 8
    assert tiny["latent"] == {"height": 4, "width": 8}
    assert (tiny["device"], tiny["dtype"]) == ("cpu", "float32")
    assert tiny["coalign"] == {"method": "exact", "quality": "balanced"}
    assert tiny["depth_range"] == [-1.0, 1.0]
    assert tiny["params_m"]["unet"] < 5
    assert tiny["random_weights"] is True


@pytest.mark.parametrize(
    "argv, named",
    [(["--res", "-5"], "--res -5"), (["--frames", "2"], "too short"),
     (["--device", "mps"], "--device mps"), (["--threads", "-1"], "--threads -1")],
)
def test_bad_option_is_one_line_and_exit_code_2(capsys, argv, named):
    assert main(["--quick", *argv]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.strip().count("\n") == 0 and named in captured.err
