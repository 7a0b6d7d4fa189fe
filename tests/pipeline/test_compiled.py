"""--compile without stalls: every shape a run can take is compiled before the first frame, and a
shape met later says so in one line. On the CPU with dynamo's "eager" backend (it captures and
guards the graphs as inductor would, without generating code). With CUDA graphs each call is a new step and its output is copied out
of graph memory (the branch CUDA takes, forced on the CPU)."""

from __future__ import annotations

import os

import pytest
import torch

from pipeline.presets import rung_snippet_lengths
from stream.model.rolling_depth_steps import RollingDepthSteps

from tests.conftest import moving_pattern


def test_a_shape_not_compiled_before_the_first_frame_says_so_once(dynamo_eager):
    from pipeline.compiled import CompiledCall

    lines: list[str] = []
    call = CompiledCall(lambda x: x + 1.0, "decoder", torch.device("cpu"), lines.append)
    for size in (2, 3):  # the warm-up
        call(torch.zeros(size, 5))
    call.seal()
    call(torch.zeros(3, 5))
    assert lines == []
    for _ in range(2):
        out = call(torch.zeros(4, 5))
    assert out.shape == (4, 5) and not call.failed
    assert len(lines) == 1 and lines[0].startswith("--compile: the decoder gets an input of shape 4x5")
    assert "not compiled before the first frame" in lines[0]


def test_the_snippet_lengths_of_every_rung_a_run_can_switch_to():
    assert rung_snippet_lengths((1, 25), 3) == (2, 3)  # standard, stride2, lite: 3; pair: 2
    assert rung_snippet_lengths((1, 25), 3, snip_len=4) == (4,)  # --snip-len wins on every rung


def test_warm_up_runs_every_snippet_length_and_batch_the_run_can_take(tiny_model, monkeypatch):
    # where compiling fails the calls run eager, but still see (and record) every warm-up shape
    monkeypatch.setenv("RDSTREAM_COMPILE_BACKEND", "no_such_backend")
    lines: list[str] = []
    steps = RollingDepthSteps(tiny_model, 64, seed=0, fit_stride=4, decode_batch=2, compile=True,
                              snippets_per_call=(1, 2), snippet_length=3, snippet_lengths=(2,), report=lines.append)
    steps.encode(moving_pattern(1, 48, 80)[0])  # the first frame: the warm-up
    assert lines[-1].startswith("--compile: ready in") and lines[-1].endswith("the first frame follows")
    unet_batches = {signature[0][0][0][0] for signature in steps.model.unet.call.shapes}
    assert unet_batches == {2, 3, 4, 6}  # 1 or 2 snippets of 2 frames (pair) and of 3 (this run's plan)
    decoder_batches = {signature[0][0][0][0] for signature in steps.model.decoder.call.shapes}
    assert decoder_batches == {1, 2}  # at both sizes (full and the fit path's pooled latent)
    assert len({signature[0][0][0][2:] for signature in steps.model.decoder.call.shapes}) == 2
    assert steps.counts.unet_frame_passes == 0 and steps.noise is None  # the stream starts as if nothing ran


SLOW = os.environ.get("RDSTREAM_SLOW_TESTS") == "1"


@pytest.mark.slow
@pytest.mark.skipif(not SLOW, reason="slow (~15 s, a minute on a loaded machine): set RDSTREAM_SLOW_TESTS=1")
def test_warm_up_compiles_every_snippet_length_then_a_switch_runs_without_a_compile(tiny_model, dynamo_eager):
    from pipeline.compiled import compile_failed

    lines: list[str] = []
    steps = RollingDepthSteps(tiny_model, 64, seed=0, fit_stride=4, decode_batch=1, fit_path="full", compile=True,
                              snippets_per_call=(1,), snippet_length=3, snippet_lengths=(2,), report=lines.append)
    _, latent = steps.encode(moving_pattern(1, 48, 80)[0])  # the first frame: the warm-up
    assert lines[0].startswith("--compile: compiling the model for 64x40")
    assert lines[-1].startswith("--compile: ready in") and lines[-1].endswith("the first frame follows")
    unet_batches = {signature[0][0][0][0] for signature in steps.model.unet.call.shapes}
    assert unet_batches == {2, 3}  # one snippet of 2 frames (pair) and of 3 (this run's plan, its tail)
    warm = len(lines)
    for length in (3, 2, 3):  # a switch of rung and back: no compile, no line
        out = steps.predict([[latent] * length], [(True,) * length])
        assert out[0].full.shape[0] == length
    assert len(lines) == warm and not compile_failed(steps.model)
    steps.predict([[latent]], [(True,)])  # a stream shorter than a snippet: a shape nobody warmed up
    assert len(lines) == warm + 1 and "the UNet gets an input of shape 1x8x" in lines[-1]


def test_with_cuda_graphs_each_call_is_a_new_step_and_its_output_copied_out(monkeypatch):
    # CUDA graphs reuse output memory between replays; the branch CUDA takes, forced on the CPU
    from pipeline.compiled import CompiledCall

    monkeypatch.setenv("RDSTREAM_COMPILE_BACKEND", "eager")
    steps = []
    monkeypatch.setattr(torch.compiler, "cudagraph_mark_step_begin", lambda: steps.append(1))
    held = torch.zeros(3)
    call = CompiledCall(lambda x: held.add_(x), "decoder", torch.device("cpu"), print)
    assert not call.graphs
    call.graphs = True
    first = call(torch.ones(3))
    second = call(torch.ones(3))
    assert steps == [1, 1]
    assert first.tolist() == [1.0] * 3 and second.tolist() == [2.0] * 3  # the first output was not overwritten
