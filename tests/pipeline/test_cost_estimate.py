"""How long an offline run on the CPU will take, said before it starts (pipeline.cost_estimate and
``rdstream file``'s note)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from io_adapters.video_file import VideoInfo
from pipeline.cost_estimate import REAL_GFLOP_PER_FRAME, gflop_per_frame, model_scale, offline_work, rough_duration
from stream.cli import file_job
from stream.cli.file_job import FileJobOptions, build_settings, cpu_time_note


def test_the_work_of_a_clip_is_counted_from_its_snippet_plan():
    # docs/method.md, section 4: 100 frames, dilations 1 and 25 -> 148 snippets, 444 passes and decodes
    assert offline_work(100, (1, 25), 3, True) == file_job.offline_work(100, (1, 25), 3, True)
    work = offline_work(100, (1, 25), 3, True)
    assert (work.encodes, work.unet_passes, work.decodes) == (100, 444, 444)
    refined = offline_work(100, (1, 10, 25), 3, True, refine_steps=10)
    assert refined.encodes == 200 and refined.decodes > work.decodes and refined.unet_passes > 444 + 10 * 3 * 80
    assert offline_work(4, (1, 25), 3, False) is None  # too short: the pipeline says why when it runs


def test_work_per_frame_follows_the_measured_table_and_grows_with_the_picture():
    for side, costs in REAL_GFLOP_PER_FRAME.items():
        assert gflop_per_frame(side, side) == pytest.approx(costs)
    small, large = gflop_per_frame(216, 384), gflop_per_frame(432, 768)
    assert all(3.5 < big / little < 5.0 for big, little in zip(large, small))  # 4x the pixels, attention a bit more


def test_the_tiny_test_model_scales_the_estimate_far_down(tiny_model):
    unet, decoder, encoder = model_scale(tiny_model)
    assert 0 < unet < 1e-2 and 0 < decoder < 1e-2 and 0 < encoder < 1e-2


def test_the_note_says_how_long_and_what_res_and_the_live_preset_would_take(monkeypatch):
    monkeypatch.setattr(file_job, "model_scale", lambda model: (1.0, 1.0, 1.0))  # the real model's size
    opts = FileJobOptions(inputs=["clip.mp4"], output_dir="out", checkpoint="ckpt")  # preset fast: 768 px
    infos = {Path("clip.mp4"): VideoInfo(width=320, height=180, fps=30.0, frame_count=60)}
    note = cpu_time_note(opts, build_settings(opts)[0], infos, model=None, gflops=100.0)
    # 60 frames at 768x432: 60 encodes, 2 x 3 x (58 + 22) passes and decodes (dilation 25 capped to 19)
    found = re.fullmatch(r"on the CPU this run takes about ([\d.]+) (min|h) \(60 frames at 768x432: ([\d,]+) TFLOP at "
                         r"the 100 GFLOP/s this CPU gives now\); --res 384 or --preset live: about ([\d.]+) (min|h)", note)
    assert found, note
    minutes = [float(found.group(i)) * (60 if found.group(i + 1) == "h" else 1) for i in (1, 4)]
    tflop = float(found.group(3).replace(",", ""))
    assert 900 < tflop < 1400 and minutes[0] == pytest.approx(tflop * 1e3 / 100 / 60, rel=0.05)
    assert 3 * minutes[1] <= minutes[0]  # a quarter of the pixels
    assert rough_duration(30) == "under a minute" and rough_duration(2 * 3600) == "about 2.0 h"
    unknown = {Path("clip.mkv"): VideoInfo(width=320, height=180, fps=30.0, frame_count=0)}
    assert cpu_time_note(opts, build_settings(opts)[0], unknown, model=None, gflops=100.0) is None
