"""On a CUDA GPU only (bench/gpu_check.sh's "tests" step; skipped elsewhere): compiled equals eager
with CUDA graphs and inductor, no host/device sync in the steady state for one stream and for four
batched streams, and the CUDA-graph rule that every output is copied out of graph memory.

Ordered cheapest first: the step has a time limit, and inductor's compile comes last.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pipeline.coalign.snippet_depth import still_merged
from pipeline.snippets import SnippetPlan
from stream.model.rolling_depth_steps import RollingDepthSteps

from tests.conftest import moving_pattern

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (bench/gpu_check.sh runs it)")

PLAN = SnippetPlan(3, (1, 3))
STEADY = 7  # both dilations active and both merge patterns seen from here on


@pytest.fixture()
def cuda_model(tiny_checkpoint):
    from bench.models import load_tiny_model

    return load_tiny_model(tiny_checkpoint, "cuda", torch.float32)


@pytest.fixture()
def backend(monkeypatch):
    def use(name: str) -> None:
        if name == "inductor":
            monkeypatch.delenv("RDSTREAM_COMPILE_BACKEND", raising=False)
        else:
            monkeypatch.setenv("RDSTREAM_COMPILE_BACKEND", name)
        torch._dynamo.reset()

    yield use
    torch._dynamo.reset()


def _window(steps: RollingDepthSteps, frames: np.ndarray, plan: SnippetPlan) -> dict:
    latents = {}
    for i, frame in enumerate(frames):
        _, latents[i] = steps.encode(frame)
        snippets = plan.snippets_ending_at(i)
        if snippets:
            steps.predict([[latents[f] for f in s] for s in snippets], [still_merged(s, 2, plan.snip_len) for s in snippets])
    return latents


def test_cuda_graph_outputs_are_copied_out_of_graph_memory(backend):
    from pipeline.compiled import CompiledCall

    backend("cudagraphs")
    call = CompiledCall(lambda x: x * 2.0, "decoder", torch.device("cuda"), print)
    assert call.graphs
    outputs = [call(torch.full((4,), float(i), device="cuda")) for i in range(4)]  # replays reuse memory
    assert not call.failed
    assert [o.tolist() for o in outputs] == [[2.0 * i] * 4 for i in range(4)]


def test_four_batched_cuda_streams_sync_nowhere_in_the_steady_state(cuda_model):
    # the rig's path: one encode call and one predict call for four streams, queued without a wait
    from stream.model.batched_steps import SharedModelSteps

    frames = [moving_pattern(STEADY + 3, 48, 80)[::-1].copy() if k % 2 else moving_pattern(STEADY + 3, 48, 80)
              for k in range(4)]
    states = [RollingDepthSteps(cuda_model, 64, seed=k, fit_stride=4) for k in range(4)]
    shared = SharedModelSteps(states)
    latents = [{} for _ in states]
    for i in range(STEADY + 3):
        steady = i >= STEADY
        if steady:
            torch.cuda.synchronize()
            torch.cuda.set_sync_debug_mode("error")
        try:
            for k, state in enumerate(states):
                if state._size is None:
                    state.encode(frames[k][i])  # the first frame fixes each stream's size, as StreamSteps does
            encoded = shared.encode_batch([(k, frames[k][i]) for k in range(4)])
            for k, (_, latent) in enumerate(encoded):
                latents[k][i] = latent
            snippets = PLAN.snippets_ending_at(i)
            waits = []
            if snippets:
                merged = [still_merged(s, 2, PLAN.snip_len) for s in snippets]
                waits = shared.predict_batch([(k, [[latents[k][f] for f in s] for s in snippets], merged)
                                              for k in range(4)])
        finally:
            torch.cuda.set_sync_debug_mode(0)
        for wait in waits:
            assert all(d.fit.device.type == "cpu" for d in wait())


@pytest.mark.parametrize("name", ["cudagraphs", "inductor"])
def test_cuda_compiled_steps_equal_eager(cuda_model, backend, name):
    # one shape each for the UNet (2 snippets) and the decoder (every frame merged, one decode call),
    # so inductor compiles two graphs, not a stream's every shape
    from pipeline.compiled import compile_failed, compile_model

    backend(name)
    tolerance = 1e-2 if name == "inductor" else 1e-4
    frames = moving_pattern(STEADY + 3, 48, 80)
    plan = SnippetPlan(3, (1, 3))
    merged = [(True, True, True)] * 2
    eager = RollingDepthSteps(cuda_model, 64, seed=0, fit_stride=4, decode_batch=6)
    lines: list[str] = []
    compiled = RollingDepthSteps(compile_model(cuda_model, lines.append), 64, seed=0, fit_stride=4, decode_batch=6)
    latents = {}
    for i, frame in enumerate(frames):
        _, latents[i] = eager.encode(frame)
        compiled.encode(frame)
    window = [[latents[f] for f in s] for s in plan.snippets_ending_at(STEADY + 2)]
    want = eager.predict(window, merged)
    for _ in range(3):  # the compile, the graph recording, a replay
        got = compiled.predict(window, merged)
        assert not compile_failed(compiled.model), lines
        for a, b in zip(got, want):  # inductor's own kernels round differently (TF32 convolutions)
            torch.testing.assert_close(a.full.float(), b.full.float(), rtol=tolerance, atol=tolerance)
            torch.testing.assert_close(a.fit, b.fit, rtol=tolerance, atol=tolerance)
