"""The GPU execution paths, tested on the CPU by forcing the branch a GPU or MPS takes.

- host/device traffic of the live model steps: one packed copy back per frame, no scalar read, no
  tensor built from Python numbers per frame (the same test runs on CUDA under sync debug "error");
- odd latent sizes: pooling without ceil_mode, fit samples read from the right rows;
- MPS: resize on the host before upload, the resize probe, fp32 attention over long sequences;
- ``--compile``: compiled and eager agree; a backend that cannot compile gives one line, then eager.
"""

from __future__ import annotations

import collections
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

from pipeline.coalign.fit_grid import fit_grid
from pipeline.coalign.snippet_depth import still_merged
from pipeline.snippets import SnippetPlan
from stream.rolling_depth_steps import RollingDepthSteps

from tests.conftest import ROOT, moving_pattern

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
    import stream.rolling_depth_steps as steps_module
    from stream.batched_steps import SharedModelSteps

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


# --- odd latent sizes ------------------------------------------------------------------------

def test_pooling_odd_latents_by_padding_equals_ceil_mode_pooling():
    from pipeline.inference import pool_latents

    latents = torch.randn(2, 4, 27, 15)
    expected = F.avg_pool2d(latents, 2, ceil_mode=True)  # right on the CPU, wrong on MPS in torch 2.4-2.8
    torch.testing.assert_close(pool_latents(latents, 2), expected)
    assert pool_latents(latents, 2).shape[-2:] == (14, 8)


def test_fit_samples_of_an_odd_latent_read_the_right_rows():
    # 216 x 104 px (latent 27 x 13): a decode of the pooled latent shows whole windows at half
    # resolution and the unpaired last latent (8 px) at full resolution, 8 coarse px for 8 px.
    height, width = 216, 104
    y, x = torch.meshgrid(torch.arange(height, dtype=torch.float32), torch.arange(width, dtype=torch.float32),
                          indexing="ij")
    full = (0.5 * y + 0.25 * x)[None]  # a ramp: any misplaced row shows as an error
    paired = F.avg_pool2d(full[:, None, :208, :96], 2)[:, 0]  # rows 0-207, cols 0-95 at half resolution
    coarse = torch.zeros(1, 112, 56)
    coarse[:, :104, :48] = paired
    coarse[:, 104:, :48] = F.avg_pool2d(full[:, None, 208:, :96], (1, 2))[:, 0]  # last latent row, 1:1 in y
    coarse[:, :104, 48:] = F.avg_pool2d(full[:, None, :208, 96:], (2, 1))[:, 0]  # last latent column, 1:1 in x
    coarse[:, 104:, 48:] = full[:, 208:, 96:]
    grid = fit_grid(height, width, 3)
    expected = grid.take(full)
    np.testing.assert_allclose(grid.sample(coarse, 2).numpy(), expected.numpy(), atol=0.05)
    # the old mapping (factor 2 everywhere) reads the last rows about 2 px off: well outside that
    ys = torch.arange(grid.crop, height - grid.crop, grid.stride)
    assert ys.max() >= 208  # the grid does reach the unpaired rows


def test_decode_at_an_odd_latent_has_the_pooled_shape(tiny_model):
    from pipeline.inference import decode_depth

    latents = torch.randn(2, 4, 9, 5)
    coarse = decode_depth(tiny_model, latents, pool=2)
    scale = tiny_model.vae_scale
    assert coarse.shape == (2, 5 * scale, 3 * scale)


# --- MPS code paths on the CPU ---------------------------------------------------------------

def test_resize_on_host_before_upload_matches_the_device_resize():
    from pipeline.inference import prepare_frames_on

    frames = moving_pattern(2, 120, 200)
    on_device = prepare_frames_on(torch.device("cpu"), frames, (48, 80), resize_on_device=True)
    on_host = prepare_frames_on(torch.device("cpu"), frames, (48, 80), resize_on_device=False)
    assert on_host.shape == on_device.shape == (2, 3, 48, 80)
    assert on_host.is_contiguous() and on_device.is_contiguous()
    assert (on_host - on_device).abs().max() <= 2.0 / 255 * 2  # uint8 rounding of the resized pixels


def test_steps_resizing_on_host_show_the_frame_the_model_saw(tiny_model):
    steps = _steps(tiny_model, resize_on_host=True)
    display, latent = steps.encode(moving_pattern(1, 120, 200)[0])
    assert display.shape == (40, 64, 3) and display.dtype == np.uint8
    assert latent.is_contiguous()


def test_resize_probe_treats_only_not_implemented_as_missing(monkeypatch):
    import pipeline.inference as inference

    probe = inference.device_resizes_antialiased.__wrapped__
    cpu = torch.device("cpu")
    assert probe(cpu)

    def not_implemented(*args, **kwargs):
        raise NotImplementedError("upsample_bilinear2d_aa not implemented for mps")

    monkeypatch.setattr(inference.F, "interpolate", not_implemented)
    assert not probe(cpu)

    def out_of_memory(*args, **kwargs):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory")

    monkeypatch.setattr(inference.F, "interpolate", out_of_memory)
    with pytest.raises(torch.cuda.OutOfMemoryError):
        probe(cpu)


def test_long_half_precision_attention_runs_in_fp32_where_asked(monkeypatch):
    from diffusers.models.attention_processor import Attention

    import pipeline.attention as attention

    seen = []
    real = attention.F.scaled_dot_product_attention

    def spy(q, k, v, **kwargs):
        seen.append(q.dtype)
        return real(q, k, v, **kwargs)

    monkeypatch.setattr(attention.F, "scaled_dot_product_attention", spy)
    torch.manual_seed(0)
    attn = Attention(query_dim=16, heads=2, dim_head=8).eval().half()
    x = torch.randn(6, 20, 16, dtype=torch.float16)  # 2 snippets x 3 frames x 20 tokens = 60 keys
    with torch.no_grad():
        attn.set_processor(attention.CrossFrameAttnProcessor(fp32_above=50))  # the MPS branch, forced
        upcast = attn(x, num_frames=3)
        attn.set_processor(attention.CrossFrameAttnProcessor())  # the CPU: model dtype
        plain = attn(x, num_frames=3)
        attn.float().set_processor(attention.CrossFrameAttnProcessor())
        reference = attn(x.float(), num_frames=3)
    assert seen == [torch.float32, torch.float16, torch.float32]
    assert upcast.dtype == plain.dtype == torch.float16
    assert (upcast.float() - reference).abs().max() <= (plain.float() - reference).abs().max() + 1e-3
    assert not attention.CrossFrameAttnProcessor().upcasts(x, torch.empty(1, 2, 5000, 8, dtype=torch.float16))


def test_startup_notes_name_the_torch_version_and_what_the_node_does():
    from pipeline.device import startup_notes

    assert startup_notes(torch.device("cuda"), version="2.11.0+cu130") == []
    old = startup_notes(torch.device("cpu"), version="2.3.1")
    assert len(old) == 1 and "torch 2.3" in old[0]
    mps = startup_notes(torch.device("mps"), resize_antialias=False, version="2.5.0")
    assert len(mps) == 1 and "resized on the CPU before upload" in mps[0]


def test_adam_reading_the_loss_every_16_steps_stops_where_every_step_would():
    from pipeline.coalign.adam import solve_adam
    from pipeline.coalign.quality import EarlyStop
    from pipeline.coalign.snippet_set import fit_samples, validate_snippets

    torch.manual_seed(0)
    base = torch.rand(8, 24, 24)
    depths = [base[i : i + 3] * (1 + 0.1 * i) + 0.05 * i for i in range(6)]
    snippets = validate_snippets(depths, [tuple(range(i, i + 3)) for i in range(6)], 8)
    samples = fit_samples(snippets, stride=4)
    stop = EarlyStop(patience=3, min_iter=5, threshold=1e-4, max_iter=300)
    every = solve_adam(samples, stop, read_every=1)
    batched = solve_adam(samples, stop, read_every=16)
    assert every.iterations == batched.iterations < 300
    torch.testing.assert_close(every.scales, batched.scales, rtol=0, atol=0)
    torch.testing.assert_close(every.shifts, batched.shifts, rtol=0, atol=0)


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


def test_run_with_compile_on_the_cpu_where_it_cannot_compile(tiny_checkpoint, tmp_path):
    # --compile with --device cpu is allowed; a compile failure is one line each, then eager, exit 0
    env = dict(os.environ, RDSTREAM_COMPILE_BACKEND="no_such_backend")
    result = subprocess.run([sys.executable, "-m", "stream.cli", "run", "--source", "test:?frames=5&size=80x48",
                             "--sink", f"npy:{tmp_path / 'd.npy'}", "-c", str(tiny_checkpoint), "--device", "cpu",
                             "--compile", "-d", "1", "--lookahead", "0", "--no-status"],
                            cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    failures = [line for line in result.stderr.splitlines() if line.startswith("--compile: cannot compile")]
    assert len(failures) == 2 and all("running it eager" in line for line in failures)
    assert "--compile: ready" in result.stderr
    assert np.load(tmp_path / "d.npy").shape[0] == 5


# --- the GPU benchmark's measurement, run on the CPU -----------------------------------------

def test_gpu_timing_measures_latency_throughput_and_stages(tiny_model, monkeypatch):
    import bench.gpu_timing as gpu_timing

    # small inputs keep the CPU's float resize quick; the measurement is the same code as on a GPU
    monkeypatch.setattr(gpu_timing, "INPUTS", {"16:9": (90, 160), "4:3": (96, 128)})
    configs = [gpu_timing.Config(64, "16:9", "full", 2, False), gpu_timing.Config(64, "4:3", "full", 0, False)]
    lines = []
    results = gpu_timing.measure_all(tiny_model, tiny_model.decoder, configs, SnippetPlan(3, (1, 3)), lines.append,
                                     latency_frames=2, throughput_frames=3)
    wide, square = results["64px/16:9/full/lookahead_2/eager"], results["64px/4:3/full/lookahead_0/eager"]
    assert wide["processing_size"] == [32, 64] and square["processing_size"] == [48, 64]
    assert wide["counts_per_frame"] == {"encodes": 1, "unet_frame_passes": 6, "decodes_full": 4, "decodes_fit": 2}
    assert square["counts_per_frame"]["decodes_full"] == 2
    for entry in (wide, square):
        assert entry["latency_ms"] > 0 and entry["throughput_fps"] > 0
        assert {"upload", "encode", "unet", "decode_full", "decode_fit", "to_host"} <= set(entry["gpu_ms_per_stage"])
    assert len(lines) == 2


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


def test_gpu_benchmark_configs_put_the_telling_ones_first():
    import argparse

    from bench.live_cost import gpu_configs

    args = argparse.Namespace(gpu_res=[384, 512], compile=True, channels_last=True)
    names = [c.name for c in gpu_configs(args)]
    assert len(names) == len(set(names)) == 8 + 4 + 8 + 2
    assert names[0] == "384px/16:9/full/lookahead_0/eager"
    assert names[8:12] == [f"384px/16:9/{d}/lookahead_{k}/compile" for d in ("full", "tiny") for k in (0, 2)]
    assert names[-1] == "384px/16:9/tiny/lookahead_2/eager/channels_last"


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


def test_compare_decoders_makes_float64_only_on_the_host(tiny_model, monkeypatch):
    # MPS has no float64: every .double() of fit_path_error must take a tensor already moved by .cpu()
    from stream.cli.compare_decoders import fit_path_error

    real_cpu, real_double = torch.Tensor.cpu, torch.Tensor.double
    doubled = []

    def cpu(self, *args, **kwargs):
        moved = real_cpu(self, *args, **kwargs).clone()  # a new tensor, so it can carry the mark
        moved.moved_to_host = True
        return moved

    def double(self, *args, **kwargs):
        doubled.append(getattr(self, "moved_to_host", False))
        return real_double(self, *args, **kwargs)

    monkeypatch.setattr(torch.Tensor, "cpu", cpu)
    monkeypatch.setattr(torch.Tensor, "double", double)
    error = fit_path_error(tiny_model, torch.randn(3, 4, 5, 8))
    assert doubled and all(doubled)
    assert 0 < error < math.inf  # the pooled decode's samples differ from the full decode's


def test_snippet_stage_waits_for_results_off_the_model_thread():
    # while a frame's result is awaited, the model thread is free to queue the next frame's encode
    import threading

    import anyio

    from stream.messages import EncodedFrame, FrameTiming, StreamEnd
    from stream.model_thread import ModelThread
    from stream.snippet_stage import SnippetStage
    from stream.stage import make_link

    release, encode_ran = threading.Event(), threading.Event()

    class QueuingSteps:
        def start_predict(self, latents, merged):
            def finish():
                assert release.wait(10), "the result was awaited on the model thread"
                return [object() for _ in latents]
            return finish

        def predict(self, latents, merged):  # what a stage without the split would call, blocking
            return self.start_predict(latents, merged)()

    model_thread = ModelThread()
    stage = SnippetStage(QueuingSteps(), SnippetPlan(3, (1,)), model_thread)
    received = []

    async def main():
        for i in range(2):
            stage.window.add(i, f"latent {i}")
        (send_in, receive_in), (send_out, receive_out) = make_link(), make_link()
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(stage.run, receive_in, send_out)
            await send_in.send(EncodedFrame(timing=FrameTiming(2, 2, 0.0, 0.0), rgb=None, latent="latent 2"))
            await anyio.sleep(0.2)
            await model_thread.run(encode_ran.set)  # the next frame's encode gets the model thread
            assert encode_ran.is_set() and not release.is_set()
            release.set()
            await send_in.send(StreamEnd("source ended"))
            async with receive_out:
                received.extend([item async for item in receive_out])

    try:
        anyio.run(main)
    finally:
        model_thread.close()
    assert [len(item.snippets) for item in received[:-1]] == [1] and isinstance(received[-1], StreamEnd)


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
