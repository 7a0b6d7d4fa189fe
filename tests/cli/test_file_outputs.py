"""Offline outputs: complete-or-absent files, colour range over the clip, dtype choice, shared scheduler."""


import av
import numpy as np
import pytest
import torch

from pipeline.checkpoint import choose_dtype
from io_adapters.encodings import colormap_lut
from pipeline.diffusion_refine import refine_timesteps
from stream.cli.file_job import FileJobOptions
from stream.cli.file_outputs import completed_as, write_outputs


def test_an_interrupted_write_leaves_neither_the_file_nor_a_partial(tmp_path):
    target = tmp_path / "clip_pred.npy"
    with pytest.raises(KeyboardInterrupt):
        with completed_as(target) as partial:
            partial.write_bytes(b"half")
            raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []
    with completed_as(target) as partial:
        partial.write_bytes(b"done")
    assert target.read_bytes() == b"done" and list(tmp_path.iterdir()) == [target]


def test_colour_videos_span_the_clips_own_range(tmp_path):
    # Refined presets are clipped, not renormalised: their depth need not reach -1 and 1.
    depth = np.linspace(-0.5, 0.3, 4 * 16 * 16, dtype=np.float32).reshape(4, 16, 16)
    frames = np.zeros((4, 16, 16, 3), np.uint8)
    opts = FileJobOptions(inputs=[], output_dir=str(tmp_path), checkpoint="", cmaps=["Greys_r"], save_sbs=False, save_npy=False)
    write_outputs("clip", tmp_path, frames, depth, 30.0, opts, None, lambda *a: None)
    with av.open(str(tmp_path / "clip_Greys_r.mp4")) as container:
        grey = np.stack([f.to_ndarray(format="gray") for f in container.decode(video=0)])
    assert grey[0].min() < 20 and grey[-1].max() > 235


def test_dtype_choice_is_one_rule_for_both_commands():
    cpu, gpu = torch.device("cpu"), torch.device("cuda")
    assert choose_dtype(None, "fp16", cpu) == torch.float32  # half precision is slow on the CPU
    assert choose_dtype(None, "fp16", gpu) == torch.float16
    assert choose_dtype(None, "fp32", gpu) == torch.float32  # preset paper
    assert choose_dtype("bf16", "fp16", cpu) == torch.bfloat16  # an explicit --dtype wins


def test_refinement_schedule_does_not_change_the_shared_scheduler(tiny_model):
    before = tiny_model.scheduler.num_inference_steps
    assert refine_timesteps(tiny_model, 10)[0] == 499
    assert tiny_model.scheduler.num_inference_steps == before
    assert tiny_model.one_step_timestep == 999


def test_colour_tables_are_built_once_and_read_only():
    lut = colormap_lut("turbo")
    assert colormap_lut("turbo") is lut and not lut.flags.writeable
