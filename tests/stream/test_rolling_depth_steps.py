"""The live model steps (stream/model/rolling_depth_steps.py) on the GPU execution paths, tested on the
CPU by forcing the branch a GPU or MPS takes.

- host/device traffic: one packed copy back per frame, no scalar read, no tensor built from
  Python numbers per frame, for one stream and for batches of N (the same test runs on CUDA under
  sync debug "error");
- MPS: the frame resized on the host before upload is the frame the model saw;
- ``--compile``: compiled and eager steps agree; a backend that cannot compile gives one line, then eager;
- CUDA: the backend flags and inference mode.

The pieces below the steps have their own files: tests/pipeline/test_inference.py (pooling, odd
latents, the resize probe), tests/pipeline/test_attention.py, tests/pipeline/test_compiled.py.
"""

from __future__ import annotations

import collections

import numpy as np
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from pipeline.coalign.snippet_depth import still_merged
from pipeline.snippets import SnippetPlan
from stream.model.rolling_depth_steps import RollingDepthSteps

from tests.conftest import moving_pattern

CUDA = torch.cuda.is_available()
gpu = pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU (bench/gpu_check.sh runs it)")


class TrafficCounter(TorchDispatchMode):
    """Counts what makes a GPU wait or copy: scalar reads, tensors built from Python data
    (``torch.tensor`` / ``torch.as_tensor``: a copy to the device each), copies between devices
    (to the host / to the device) and advanced indexing (``aten.index``: what indexing with a
    Python list or a mask runs; on a GPU the index is copied to the device first); ``ops`` counts
    every operator."""

    def __init__(self) -> None:
        super().__init__()
        self.scalar_reads = self.python_tensors = self.to_host = self.to_device = self.list_indexing = 0
        self.ops: collections.Counter = collections.Counter()
        self._patched: list[tuple[str, object]] = []

    def __enter__(self):
        for name in ("tensor", "as_tensor"):
            real = getattr(torch, name)

            def counted(*args, _real=real, **kwargs):
                self.python_tensors += 1
                return _real(*args, **kwargs)

            self._patched.append((name, real))
            setattr(torch, name, counted)
        return super().__enter__()

    def __exit__(self, *exc):
        for name, real in self._patched:
            setattr(torch, name, real)
        self._patched = []
        return super().__exit__(*exc)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        self.ops[func] += 1
        if func is torch.ops.aten._local_scalar_dense.default:
            self.scalar_reads += 1
        elif func is torch.ops.aten.index.Tensor:
            self.list_indexing += 1
        elif func in (torch.ops.aten._to_copy.default, torch.ops.aten.copy_.default):
            src = args[1] if func is torch.ops.aten.copy_.default else args[0]
            dst = args[0] if func is torch.ops.aten.copy_.default else out
            if isinstance(src, torch.Tensor) and src.device != dst.device:
                if dst.device.type == "cpu":
                    self.to_host += 1
                else:
                    self.to_device += 1
        return out


def _stream_frames(steps: RollingDepthSteps, frames: np.ndarray, plan: SnippetPlan, lookahead: int,
                   counter_from: int, counter: TrafficCounter, latents: dict | None = None) -> list[list]:
    """Feed frames as the node does (encode, then the snippets ending at each); frames from
    ``counter_from`` on run inside ``counter``. ``latents`` (frame index -> latent) carries a stream
    on from an earlier call. Returns each frame's SnippetDepths."""
    latents = {} if latents is None else latents
    outputs = []
    for i, frame in enumerate(frames, start=len(latents)):
        mode = counter if i >= counter_from else None
        if mode is not None:
            mode.__enter__()
        try:
            _, latents[i] = steps.encode(frame)
            snippets = plan.snippets_ending_at(i)
            merged = [still_merged(s, lookahead, plan.snip_len) for s in snippets]
            outputs.append(steps.predict([[latents[f] for f in s] for s in snippets], merged) if snippets else [])
        finally:
            if mode is not None:
                mode.__exit__(None, None, None)
    return outputs


def _steps(model, **kwargs) -> RollingDepthSteps:
    return RollingDepthSteps(model, 64, seed=0, fit_stride=4, **kwargs)


PLAN = SnippetPlan(3, (1, 3))
STEADY = 7  # both dilations active and both merge patterns seen from here on


def test_steady_state_frame_has_one_copy_back_and_no_waits(tiny_model):
    # the GPU's path on the CPU: packed copy back, frame resized on the host
    steps = _steps(tiny_model, host_copy=True, resize_on_host=True)
    frames = moving_pattern(STEADY + 5, 48, 80)
    counter, latents = TrafficCounter(), {}
    _stream_frames(steps, frames[:STEADY], PLAN, 2, len(frames), counter, latents)  # warm: patterns cached
    before = steps.transfers_to_host
    _stream_frames(steps, frames[STEADY:], PLAN, 2, 0, counter, latents)
    measured = len(frames) - STEADY
    assert steps.transfers_to_host - before == measured  # exactly one packed copy back per frame
    assert counter.scalar_reads == 0
    assert counter.python_tensors == 0
    assert counter.list_indexing == 0
    assert counter.to_host == 0 and counter.to_device == 0  # the CPU: nothing crosses


def _rig_frames(shared, frames: list[np.ndarray], plan: SnippetPlan, lookahead: int, latents: list[dict],
                counter: TrafficCounter | None = None) -> list[list]:
    """Feed each stream's next frames (``frames[k]`` for stream k) as a rig's batcher does when every
    stream is ready: one encode batch and one predict batch per frame, inside ``counter`` if given.
    ``latents`` (per stream, frame index -> latent) carries the streams on from an earlier call.
    Returns per frame each stream's SnippetDepths."""
    outputs = []
    for j, i in enumerate(range(len(latents[0]), len(latents[0]) + len(frames[0]))):
        if counter is not None:
            counter.__enter__()
        try:
            size = [s.fix_size(*f[j].shape[:2]) for s, f in zip(shared.streams, frames)][0]
            encoded = shared.run_batch(("encode", size), [(k, f[j]) for k, f in enumerate(frames)])
            for k, (_, latent) in enumerate(encoded):
                latents[k][i] = latent
            snippets = plan.snippets_ending_at(i)
            merged = [still_merged(s, lookahead, plan.snip_len) for s in snippets]
            finishers = shared.run_batch(("predict",), [(k, [[latents[k][f] for f in s] for s in snippets], merged)
                                                         for k in range(len(frames))]) if snippets else []
            outputs.append([finish() for finish in finishers])
        finally:
            if counter is not None:
                counter.__exit__(None, None, None)
    return outputs


@pytest.mark.parametrize("count", [1, 2, 4])
def test_a_batch_of_n_streams_uploads_each_frame_once_copies_back_once_and_never_waits(tiny_model, count,
                                                                                      monkeypatch):
    """A rig's batched calls on the GPU's path (forced on the CPU), every second stream on the full
    fit path (two fit decodes in one batch): per batch one packed copy back, per frame one upload,
    no scalar read, no tensor built from Python data, no indexing with a Python list; and each
    stream's snippets are its single run's."""
    import stream.model.rolling_depth_steps as steps_module
    from stream.model.batched_steps import SharedModelSteps

    uploads = []
    real_upload = steps_module.upload
    monkeypatch.setattr(steps_module, "upload", lambda frames, device: uploads.append(len(frames)) or
                        real_upload(frames, device))
    paths = dict(host_copy=True, resize_on_host=True)
    make = lambda k: RollingDepthSteps(tiny_model, 64, seed=k, fit_stride=4, fit_path=("half", "full")[k % 2], **paths)
    clips = [np.ascontiguousarray(np.roll(moving_pattern(STEADY + 3, 48, 80), 9 * k, axis=2)) for k in range(count)]
    shared = SharedModelSteps([make(k) for k in range(count)])
    counter, latents = TrafficCounter(), [{} for _ in range(count)]
    warm = _rig_frames(shared, [c[:STEADY] for c in clips], PLAN, 2, latents)  # compositions cached
    copies, uploads[:] = shared.transfers_to_host, []
    measured = _rig_frames(shared, [c[STEADY:] for c in clips], PLAN, 2, latents, counter)
    assert shared.transfers_to_host - copies == len(measured)  # one packed copy per predict batch
    assert uploads == [1] * (count * len(measured))  # one upload per frame
    assert counter.scalar_reads == 0 and counter.python_tensors == 0 and counter.list_indexing == 0
    assert counter.to_host == 0 and counter.to_device == 0  # the CPU: nothing crosses
    # the fit samples of the half path: one bilinear sampling per batch, not one per row (inference
    # mode dispatches the composite operator, elsewhere its 2-D kernel shows)
    aten = torch.ops.aten
    assert (counter.ops[aten.grid_sampler.default] or counter.ops[aten.grid_sampler_2d.default]) == len(measured)
    for k in range(count):
        single = _stream_frames(make(k), clips[k], PLAN, 2, len(clips[k]), counter)
        batched = [frame[k] if frame else [] for frame in warm + measured]
        assert sum(len(o) for o in single) > 0 and [len(o) for o in batched] == [len(o) for o in single]
        for ours, theirs in zip(batched, single):
            for a, b in zip(ours, theirs):
                assert a.merged == b.merged
                # a batch's convolutions differ from one stream's in the last float32 bits (9e-6 seen)
                torch.testing.assert_close(a.full, b.full, rtol=0, atol=2e-5)
                torch.testing.assert_close(a.fit, b.fit, rtol=0, atol=2e-5)


def test_packed_copy_back_gives_the_same_snippets_as_the_cpu_path(tiny_model):
    frames = moving_pattern(STEADY + 2, 48, 80)
    counter = TrafficCounter()
    plain = _stream_frames(_steps(tiny_model), frames, PLAN, 2, len(frames), counter)
    packed = _stream_frames(_steps(tiny_model, host_copy=True), frames, PLAN, 2, len(frames), counter)
    assert sum(len(o) for o in plain) > 0
    for ours, theirs in zip(packed, plain):
        for a, b in zip(ours, theirs):
            assert a.merged == b.merged
            torch.testing.assert_close(a.full, b.full, rtol=0, atol=0)
            torch.testing.assert_close(a.fit, b.fit, rtol=0, atol=0)


@gpu
def test_steady_state_frame_on_cuda_syncs_nowhere(tiny_checkpoint):
    from bench.models import load_tiny_model

    model = load_tiny_model(tiny_checkpoint, "cuda", torch.float16)
    steps = _steps(model)
    frames = moving_pattern(STEADY + 5, 48, 80)
    counter, latents = TrafficCounter(), {}
    _stream_frames(steps, frames[:STEADY], PLAN, 2, len(frames), counter, latents)
    torch.cuda.synchronize()
    for i, frame in enumerate(frames[STEADY:], start=STEADY):
        # queuing a frame (upload, encode, snippets, the copy back) must never wait for the GPU
        torch.cuda.set_sync_debug_mode("error")
        try:
            with counter:
                _, latents[i] = steps.encode(frame)
                snippets = PLAN.snippets_ending_at(i)
                finish = steps.start_predict([[latents[f] for f in s] for s in snippets],
                                             [still_merged(s, 2, PLAN.snip_len) for s in snippets])
        finally:
            torch.cuda.set_sync_debug_mode(0)
        assert all(d.fit.device.type == "cpu" for d in finish())  # the one wait: the copy's event
    measured = len(frames) - STEADY
    assert counter.scalar_reads == 0 and counter.python_tensors == 0
    assert counter.to_host == measured  # the packed copy, one per frame
    assert counter.to_device == measured  # the frame upload, one per frame


# --- MPS code paths on the CPU ---------------------------------------------------------------

def test_steps_resizing_on_host_show_the_frame_the_model_saw(tiny_model):
    steps = _steps(tiny_model, resize_on_host=True)
    display, latent = steps.encode(moving_pattern(1, 120, 200)[0])
    assert display.shape == (40, 64, 3) and display.dtype == np.uint8
    assert latent.is_contiguous()


# --- --compile -------------------------------------------------------------------------------

def test_compiled_steps_agree_with_eager(tiny_model, dynamo_eager):
    # one dilation and decode batches of 1-2 frames keep the shapes (and compile time) few
    lines = []
    frames = moving_pattern(5, 48, 80)
    plan = SnippetPlan(3, (1,))
    counter = TrafficCounter()
    eager_steps = _steps(tiny_model, decode_batch=2)
    eager = _stream_frames(eager_steps, frames, plan, 0, len(frames), counter)
    compiled_steps = _steps(tiny_model, decode_batch=2, compile=True, report=lines.append, snippets_per_call=(1,))
    compiled = _stream_frames(compiled_steps, frames, plan, 0, len(frames), counter)
    assert lines[0].startswith("--compile: compiling the model for 64x40 before the first frame")
    assert lines[-1].startswith("--compile: ready") and not any("cannot compile" in line for line in lines)
    assert compiled_steps.counts == eager_steps.counts  # the warm-up is not counted
    assert sum(len(o) for o in compiled) == 3
    for ours, theirs in zip(compiled, eager):
        for a, b in zip(ours, theirs):
            torch.testing.assert_close(a.full, b.full, rtol=1e-4, atol=1e-5)
            torch.testing.assert_close(a.fit, b.fit, rtol=1e-4, atol=1e-5)


def test_compile_that_cannot_compile_says_one_line_and_runs_eager(tiny_model, monkeypatch):
    from pipeline.compiled import compile_model

    monkeypatch.setenv("RDSTREAM_COMPILE_BACKEND", "no_such_backend")
    lines = []
    model = compile_model(tiny_model, lines.append)
    steps = _steps(model)
    display, latent = steps.encode(moving_pattern(1, 48, 80)[0])
    out = steps.predict([[latent] * 3], [(True, True, True)])
    assert len(out) == 1 and out[0].full.shape[0] == 3
    assert len(lines) == 2 and all(line.startswith("--compile: cannot compile the") and "running it eager" in line
                                   for line in lines)


# --- CUDA settings, set on the CPU --------------------------------------------------------------

def test_cuda_settings_and_inference_mode(tiny_model, monkeypatch):
    from pipeline.device import configure_backends

    for flag in ("benchmark", "allow_tf32"):
        monkeypatch.setattr(torch.backends.cudnn, flag, False)
    precision = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("highest")
    try:
        configure_backends(torch.device("cuda"), torch.float16)  # the flags only; no GPU needed to set them
        assert torch.backends.cudnn.benchmark and torch.get_float32_matmul_precision() == "highest"
        configure_backends(torch.device("cuda"), torch.float32)  # fp32 presets: TF32
        assert torch.get_float32_matmul_precision() == "high" and torch.backends.cudnn.allow_tf32
    finally:
        torch.set_float32_matmul_precision(precision)
    _, latent = _steps(tiny_model).encode(moving_pattern(1, 48, 80)[0])
    assert latent.is_inference()  # the model steps run under torch.inference_mode
