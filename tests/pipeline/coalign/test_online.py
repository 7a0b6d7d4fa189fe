"""OnlineAligner: readiness, flush, accuracy against offline exact, determinism, bounded memory, bad input;
snippets that bring full depth only for frames still to be merged (fit samples for the others)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bench.support.synthetic_depth import SnippetNoise, align_stream, make_clip, scene_frames, stream_frames, synthetic_snippet
from pipeline.depth_metrics import abs_rel, temporal_error
from pipeline.coalign import align_snippets
from pipeline.errors import BadInputError, RuntimeFailure
from pipeline.coalign import OnlineAligner
from pipeline.snippets import SnippetPlan
from pipeline.coalign.robust_fit import robust_affine_fit
from pipeline.coalign.fit_grid import fit_grid
from pipeline.coalign.snippet_depth import SnippetDepth, still_merged


@pytest.fixture(scope="module")
def clip():
    return make_clip(num_frames=60, height=32, width=40, dilations=(1, 8), seed=11)


def test_online_with_lookahead_is_close_to_offline_exact(clip):
    depths = dict(zip(clip.frame_indices, clip.depths))
    offline = align_snippets(clip.depths, clip.frame_indices, 60, method="exact")
    online2 = align_stream(depths, 60, (1, 8), lookahead=2)
    online0 = align_stream(depths, 60, (1, 8), lookahead=0)
    ref_abs, ref_temp = abs_rel(offline.depth, clip.truth), temporal_error(offline.depth, clip.truth)
    assert abs_rel(online2, clip.truth) < ref_abs + 0.01
    assert temporal_error(online2, clip.truth) < 1.2 * ref_temp
    assert abs_rel(online0, clip.truth) < 2 * ref_abs
    assert temporal_error(online0, clip.truth) < 2 * ref_temp


def test_noise_free_stream_is_exact_up_to_one_affine():
    clip = make_clip(num_frames=30, height=16, width=20, dilations=(1, 4), noise=0.0, outlier_fraction=0.0, seed=2)
    out = align_stream(dict(zip(clip.frame_indices, clip.depths)), 30, (1, 4), lookahead=1)
    assert abs_rel(out, clip.truth) < 1e-4


def test_readiness_emit_and_flush():
    clip = make_clip(num_frames=8, height=12, width=12, dilations=(1,), seed=1)
    depths = dict(zip(clip.frame_indices, clip.depths))
    aligner = OnlineAligner(lookahead=2, window=6)
    assert aligner.ready_frames() == [] and aligner.emit(0) is None
    aligner.push(depths[(0, 1, 2)], (0, 1, 2))
    assert aligner.ready_frames() == [0]  # newest is 2, lookahead 2
    assert aligner.emit(1) is None  # not ready yet
    first = aligner.emit(0)
    assert first.dtype == np.float32 and first.shape == (12, 12)
    with pytest.raises(BadInputError, match="already emitted"):
        aligner.emit(0)
    for t in range(3, 6):
        aligner.push(depths[(t - 2, t - 1, t)], (t - 2, t - 1, t))
    assert aligner.ready_frames() == [1, 2, 3]
    assert aligner.emit(2) is not None  # frame 1 is skipped
    assert aligner.ready_frames() == [3]
    rest = aligner.flush()
    assert [f for f, _ in rest] == [3, 4, 5]
    assert all(d.shape == (12, 12) and np.isfinite(d).all() for _, d in rest)
    with pytest.raises(BadInputError, match="after flush"):
        aligner.push(depths[(5, 6, 7)], (5, 6, 7))


def _long_stream(lookahead, frames=400, size=(12, 16), dilations=(1, 10)):
    aligner = OnlineAligner(lookahead=lookahead, window=2 * max(dilations) + 1 + lookahead)
    spec = SnippetNoise(noise=0.01, outlier_fraction=0.2)
    emitted, held = {}, []
    for t in range(frames):
        for idx in stream_frames(t, dilations):
            depth, _, _ = synthetic_snippet(scene_frames(idx, *size, seed=5, period=150), idx, spec, seed=5)
            aligner.push(depth, idx)
        for f in aligner.ready_frames():
            emitted[f] = aligner.emit(f)
        held.append((aligner.frames_held, aligner.open_snippets))
    return emitted, held


def test_long_stream_is_deterministic_with_bounded_memory():
    a, held = _long_stream(lookahead=2)
    b, _ = _long_stream(lookahead=2)
    assert sorted(a) == list(range(398))
    assert all(np.array_equal(a[f], b[f]) for f in a)
    # after the window has filled, what is held never grows
    assert max(h[0] for h in held[50:]) <= 23 and max(h[1] for h in held[50:]) <= 6
    assert max(held[300:]) <= max(held[50:300])


def test_gauge_is_stable_over_a_long_stream():
    frames = 300
    out, _ = _long_stream(lookahead=0, frames=frames)
    truth = scene_frames(range(frames), 12, 16, seed=5, period=150).numpy()
    # per-frame robust gain of the output against the truth: the gauge, up to noise and blobs
    gains = np.array([robust_affine_fit(truth[f], out[f])[0] for f in range(frames)])
    assert gains.max() / gains.min() < 1.3  # no drift
    assert np.abs(np.diff(gains) / gains[1:]).max() < 0.1  # no jump


def test_bad_input():
    aligner = OnlineAligner(lookahead=0, window=5)
    with pytest.raises(BadInputError, match=r"\[L, H, W\]"):
        aligner.push(torch.rand(12, 12), (0,))
    with pytest.raises(BadInputError, match="3 frames but 2"):
        aligner.push(torch.rand(3, 12, 12), (0, 1))
    with pytest.raises(BadInputError, match="strictly increase"):
        aligner.push(torch.rand(3, 12, 12), (0, 2, 1))
    bad = torch.rand(3, 12, 12)
    bad[1, 2, 3] = float("nan")
    with pytest.raises(BadInputError, match="NaN or Inf"):
        aligner.push(bad, (0, 1, 2))
    aligner.push(torch.rand(3, 12, 12), (0, 1, 2))
    with pytest.raises(BadInputError, match="12x13 px but earlier ones are 12x12"):
        aligner.push(torch.rand(3, 12, 13), (1, 2, 3))
    assert aligner.emit(2) is not None
    with pytest.raises(BadInputError, match="already emitted"):
        aligner.push(torch.rand(3, 12, 12), (0, 1, 2))
    with pytest.raises(BadInputError, match="lookahead"):
        OnlineAligner(lookahead=-1)
    with pytest.raises(BadInputError, match="window"):
        OnlineAligner(lookahead=3, window=3)
    with pytest.raises(BadInputError, match="quality"):
        OnlineAligner(quality="best")
    assert OnlineAligner.for_plan(SnippetPlan(3, (1, 25)), 2).window == 53
    assert OnlineAligner.for_plan(SnippetPlan(4, (1, 10)), 0).window == 31


def test_constant_snippet_is_placed_and_held():
    scene = torch.rand(6, 12, 12, generator=torch.Generator().manual_seed(0)) + 1.0
    aligner = OnlineAligner(lookahead=0, window=8)
    aligner.push(scene[0:3], (0, 1, 2))
    aligner.emit(2)
    aligner.push(torch.full((3, 12, 12), 5.0), (1, 2, 3))  # constant: scale 1, shifted to the estimates
    out = aligner.emit(3)
    assert np.isfinite(out).all()
    # The robust (L1) fit puts a constant near the median of the estimates it overlaps (frames 1, 2,
    # after the global minimum is subtracted): inside their interquartile range (held for 300 seeds).
    overlap = scene[1:3].flatten() - scene[0:3].min()
    q1, q3 = (float(q) for q in torch.quantile(overlap, torch.tensor([0.25, 0.75])))
    assert q1 <= float(out.mean()) <= q3


def test_frames_no_snippet_covers_are_never_ready():
    """Documented result: an uncovered frame is never ready (emit gives None); the frames after it
    wait, as a later (strided) snippet may still cover it, and at the end of the stream it is skipped."""
    scene = torch.rand(7, 12, 12) + 1.0
    aligner = OnlineAligner(lookahead=0, window=8)
    aligner.push(scene[[0, 2, 4]], (0, 2, 4))
    assert aligner.ready_frames() == [0]
    assert aligner.emit(1) is None and aligner.emit(3) is None and aligner.emit(4) is None
    assert aligner.emit(0) is not None
    assert [f for f, _ in aligner.flush()] == [2, 4]


def test_advance_counts_the_lookahead_from_frames_without_snippets():
    """A strided plan runs no snippet at some frames: advance() still moves the lookahead on."""
    scene = torch.rand(8, 12, 12) + 1.0
    aligner = OnlineAligner(lookahead=2, window=8)
    aligner.push(scene[0:3], (0, 1, 2))
    assert aligner.ready_frames() == [0]
    aligner.advance(3)
    assert aligner.ready_frames() == [0, 1]
    aligner.advance(5)
    assert aligner.ready_frames() == [0, 1, 2]  # frame 3 is not covered yet: it and later frames wait


def test_pushed_buffers_may_be_reused_by_the_caller():
    scene = np.random.default_rng(0).random((4, 12, 12)).astype(np.float32) + 1.0
    buffer = scene[0:3].copy()
    aligner = OnlineAligner(lookahead=1, window=6)
    aligner.push(buffer, (0, 1, 2))
    buffer[:] = 0.0  # the caller refills its buffer
    out = aligner.emit(0)
    np.testing.assert_allclose(out, scene[0] - scene[0:3].min(), rtol=1e-6)


def test_every_frame_still_merged_is_one_the_aligner_has_not_emitted():
    """Replaying a stream through the real aligner: a frame flagged fit-only was emitted already,
    a frame flagged merged was not (so the aligner never lacks full depth, nor is sent any in vain)."""
    for lookahead in (0, 2, 5):
        aligner = OnlineAligner.for_plan(SnippetPlan(3, (1, 4)), lookahead)
        emitted = set()
        for t in range(30):
            for frames in SnippetPlan(3, (1, 4)).snippets_ending_at(t):
                flags = still_merged(frames, lookahead, 3)
                assert all(flag == (f not in emitted) for f, flag in zip(frames, flags)), (lookahead, t, frames)
                aligner.push(torch.rand(3, 8, 8) + 1, frames)
            for frame in aligner.ready_frames():
                aligner.emit(frame)
                emitted.add(frame)


def _partial(depth: torch.Tensor, frames, lookahead: int, stride: int) -> SnippetDepth:
    flags = still_merged(frames, lookahead, 3)
    keep = torch.tensor(flags)
    return SnippetDepth(depth[keep], flags, fit_grid(*depth.shape[1:], stride).take(depth))


def test_fit_samples_for_emitted_frames_give_the_same_output_and_hold_less():
    gen = torch.Generator().manual_seed(0)
    depths = {}
    for t in range(40):
        for frames in SnippetPlan(3, (1, 5)).snippets_ending_at(t):
            depths[frames] = torch.rand(3, 24, 32, generator=gen) + 0.5
    outputs = []
    for partial in (False, True):
        aligner = OnlineAligner.for_plan(SnippetPlan(3, (1, 5)), 2)
        out, held = [], []
        for t in range(40):
            for frames in SnippetPlan(3, (1, 5)).snippets_ending_at(t):
                depth = depths[frames]
                aligner.push(_partial(depth, frames, 2, aligner.fit_stride) if partial else depth, frames)
            out += [aligner.emit(f) for f in aligner.ready_frames()]
            held.append(aligner.full_frames_held)
        out += [d for _, d in aligner.flush()]
        outputs.append(np.stack(out))
        if partial:  # only frames still to be merged: at most lookahead + 1 frames' worth per dilation
            assert max(held[20:]) <= 2 * (2 + 1)
    assert outputs[0].shape == (40, 24, 32)
    np.testing.assert_allclose(outputs[0], outputs[1], rtol=1e-5, atol=1e-5)


def test_node_arrays_are_taken_without_a_copy_and_merged_in_float32():
    aligner = OnlineAligner(lookahead=0, window=6)
    full = (torch.rand(3, 16, 16) + 1).half()
    aligner.push(SnippetDepth(full, (True, True, True), None), (0, 1, 2))
    held = next(iter(aligner._snippets.values())).full
    assert all(held[slot].data_ptr() == full[slot].data_ptr() for slot in range(3))
    out = aligner.emit(0)
    assert out.dtype == np.float32


def test_a_due_frame_without_full_depth_is_a_clear_failure_not_garbage():
    aligner = OnlineAligner(lookahead=0, window=6)
    depth = torch.rand(3, 16, 16) + 1
    grid = fit_grid(16, 16, aligner.fit_stride)
    aligner.push(SnippetDepth(depth[2:], (False, False, True), grid.take(depth)), (0, 1, 2))
    with pytest.raises(RuntimeFailure, match="only fit samples"):
        aligner.emit(0)


def test_bad_fit_samples_are_rejected():
    aligner = OnlineAligner(lookahead=0, window=6)
    depth = torch.rand(3, 16, 16)
    with pytest.raises(BadInputError, match="fit samples must be"):
        aligner.push(SnippetDepth(depth[2:], (False, False, True), torch.zeros(3, 5)), (0, 1, 2))
    with pytest.raises(BadInputError, match="brings 3 full-resolution"):
        aligner.push(SnippetDepth(depth, (False, False, True), None), (0, 1, 2))
    with pytest.raises(BadInputError, match="without fit samples"):
        aligner.push(SnippetDepth(depth[2:], (False, False, True), None), (0, 1, 2))
