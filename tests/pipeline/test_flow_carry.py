"""pipeline.flow_carry: keyframe depth carried along optical flow to every frame."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from pipeline.flow_carry import CarriedDepth, DepthCarrier

SIZE = (96, 128)  # H, W
SHIFT = 2  # px per frame, to the right


def _panning(frames: int, seed: int = 0):
    """A textured picture and a depth map with a sharp-edged square, both sliding right by SHIFT
    px per frame: colour uint8 [N, H, W, 3] and depth float32 [N, H, W] in [0.2, 1]."""
    rng = np.random.default_rng(seed)
    height, width = SIZE
    wide = width + SHIFT * frames
    texture = cv2.GaussianBlur(rng.uniform(0, 255, (height, wide)).astype(np.float32), (0, 0), 1.5)
    texture = cv2.normalize(texture, None, 0, 255, cv2.NORM_MINMAX)
    depth = np.full((height, wide), 0.2, np.float32)
    depth[30:70, wide - width // 2 - 25: wide - width // 2 + 15] = 1.0
    depth += np.linspace(0.0, 0.3, height, dtype=np.float32)[:, None] * 0.5
    colour, truth = [], []
    for t in range(frames):
        left = wide - width - SHIFT * t  # the window moves left over the scene: content moves right
        colour.append(np.repeat(texture[:, left:left + width, None], 3, axis=2).astype(np.uint8))
        truth.append(depth[:, left:left + width])
    return np.stack(colour), np.stack(truth)


def _error(depth: np.ndarray, truth: np.ndarray) -> float:
    inner = (slice(8, -8), slice(8 + SHIFT * 10, -8))  # away from the border new content enters at
    return float(np.abs(depth[inner] - truth[inner]).mean())


def test_carried_depth_follows_a_translation_much_better_than_hold():
    colour, truth = _panning(9)
    carrier = DepthCarrier()
    assert carrier.push_frame(0, colour[0]) is None  # no depth before the first keyframe
    first = carrier.set_keyframe(0, truth[0])
    assert (first.keyframe_index, first.steps) == (0, 0)
    for t in range(1, 9):
        carried = carrier.push_frame(t, colour[t])
    assert isinstance(carried, CarriedDepth)
    assert (carried.keyframe_index, carried.steps) == (0, 8)
    assert carried.depth.dtype == np.float32 and carried.depth.shape == SIZE
    assert _error(carried.depth, truth[8]) < 0.25 * _error(truth[0], truth[8])


def test_a_late_keyframe_is_recarried_to_the_newest_frame():
    colour, truth = _panning(9)
    live, late = DepthCarrier(), DepthCarrier()
    for t in range(9):
        live.push_frame(t, colour[t])
        if t == 2:
            live.set_keyframe(2, truth[2])
        assert late.push_frame(t, colour[t]) is None  # the model has not answered yet
    recarried = late.set_keyframe(2, truth[2])  # arrives 6 frames late
    assert (recarried.keyframe_index, recarried.steps) == (2, 6)
    np.testing.assert_allclose(recarried.depth, live.current.depth, atol=1e-6)  # as if it had been on time
    assert _error(recarried.depth, truth[8]) < 0.25 * _error(truth[2], truth[8])
    assert late.push_frame(9, colour[8]).steps == 7  # and it goes on from there


def test_a_keyframe_older_than_the_current_one_is_ignored():
    colour, truth = _panning(6)
    carrier = DepthCarrier()
    for t in range(6):
        carrier.push_frame(t, colour[t])
    newer = carrier.set_keyframe(4, truth[4])
    kept = carrier.set_keyframe(1, truth[1] * 0 + 5.0)
    assert kept.keyframe_index == 4
    np.testing.assert_array_equal(kept.depth, newer.depth)


def test_keyframes_older_than_the_history_carry_from_the_oldest_stored_frame():
    colour, truth = _panning(10)
    carrier = DepthCarrier(history=4)
    for t in range(10):
        carrier.push_frame(t, colour[t])
    carried = carrier.set_keyframe(1, truth[1])
    assert (carried.keyframe_index, carried.steps) == (1, 4)  # only the 4 stored steps
    assert np.isfinite(carried.depth).all()


def test_keyframes_of_frames_never_pushed_are_refused():
    colour, truth = _panning(4)
    carrier = DepthCarrier()
    with pytest.raises(ValueError, match="no frame has been pushed"):
        carrier.set_keyframe(0, truth[0])
    carrier.push_frame(0, colour[0])
    carrier.push_frame(2, colour[1])  # frame 1 was skipped by the capture: a gap is fine
    with pytest.raises(ValueError, match="never pushed"):
        carrier.set_keyframe(1, truth[1])
    with pytest.raises(ValueError, match="newer than the newest"):
        carrier.set_keyframe(3, truth[2])
    with pytest.raises(ValueError, match="shape"):
        carrier.set_keyframe(2, truth[2][:10])
    with pytest.raises(ValueError, match="not after"):
        carrier.push_frame(2, colour[2])
    assert carrier.set_keyframe(2, truth[2]).steps == 0


class _ScriptedFlow:
    """Stands in for DIS: the backward flow moves everything 3 px right; the forward flow agrees
    (-3 px) except in the rows ``bad``, where it does not (the check must fail there)."""

    def __init__(self, bad: slice, raise_error: bool = False, nan: bool = False):
        self.calls = 0
        self.bad, self.raise_error, self.nan = bad, raise_error, nan

    def calc(self, first, second, flow):
        self.calls += 1
        if self.raise_error:
            raise cv2.error("scripted failure")
        out = np.zeros(first.shape + (2,), np.float32)
        backward = self.calls % 2 == 1  # the carrier asks for b -> a first, then a -> b
        out[..., 0] = -3.0 if backward else 3.0
        if not backward:
            out[self.bad, :, 0] = -3.0  # inconsistent: |w_b + w_f|^2 = 36, far above the tolerance
        if self.nan:
            out[0, 0, 0] = np.nan
        return out


def test_the_occlusion_check_holds_pixels_where_the_flow_is_unreliable():
    frame = np.full((20, 30, 3), 100, np.uint8)
    depth = np.tile(np.arange(30, dtype=np.float32), (20, 1))
    results = {}
    for check in (True, False):
        carrier = DepthCarrier(occlusion_check=check)
        carrier._dis = _ScriptedFlow(bad=slice(5, 10))
        carrier.push_frame(0, frame)
        carrier.set_keyframe(0, depth)
        results[check] = carrier.push_frame(1, frame)
    shifted = np.tile(np.clip(np.arange(30) - 3, 0, None).astype(np.float32), (20, 1))
    checked = results[True]
    np.testing.assert_allclose(checked.depth[5:10], depth[5:10])  # held where unreliable
    np.testing.assert_allclose(checked.depth[10:], shifted[10:])  # carried elsewhere
    assert checked.reliable_fraction == pytest.approx(15 / 20)
    np.testing.assert_allclose(results[False].depth, shifted)  # without the check, all follow the flow
    assert results[False].reliable_fraction == 1.0


@pytest.mark.parametrize("failure", ["error", "nan"])
def test_a_flow_failure_holds_the_depth_and_is_counted(failure):
    frame = np.full((20, 30, 3), 100, np.uint8)
    depth = np.tile(np.arange(30, dtype=np.float32), (20, 1))
    carrier = DepthCarrier()
    carrier.push_frame(0, frame)
    carrier.set_keyframe(0, depth)
    carrier._dis = _ScriptedFlow(bad=slice(0, 0), raise_error=failure == "error", nan=failure == "nan")
    held = carrier.push_frame(1, frame)
    held = carrier.push_frame(2, frame)
    assert carrier.fallbacks == 2
    np.testing.assert_array_equal(held.depth, depth)
    assert (held.steps, held.reliable_fraction) == (2, 0.0)


@pytest.mark.parametrize("check", [False, True])
@pytest.mark.parametrize("shape", [(216, 384), (9, 7), (2, 3), (1, 1)])
def test_blank_constant_noisy_and_tiny_frames_never_give_nan(shape, check):
    rng = np.random.default_rng(1)
    frames = [np.zeros(shape + (3,), np.uint8), np.full(shape + (3,), 255, np.uint8),
              np.full(shape + (3,), 7, np.uint8), rng.integers(0, 256, shape + (3,), dtype=np.uint8),
              np.zeros(shape + (3,), np.uint8)]
    carrier = DepthCarrier(occlusion_check=check)
    depth = rng.uniform(0.1, 1.0, shape).astype(np.float32)
    depth.flat[0] = np.nan  # a bad model value must not spread
    for t, frame in enumerate(frames):
        carrier.push_frame(t, frame)
        if t == 1:
            carrier.set_keyframe(1, depth)
    carried = carrier.current
    assert carried.depth.shape == shape
    assert np.isfinite(carried.depth).all()
    assert carried.depth.max() <= 1.0


def test_a_change_of_frame_size_starts_afresh():
    carrier = DepthCarrier()
    carrier.push_frame(0, np.zeros((20, 30, 3), np.uint8))
    carrier.set_keyframe(0, np.ones((20, 30), np.float32))
    assert carrier.push_frame(1, np.zeros((10, 16, 3), np.uint8)) is None
    assert carrier.set_keyframe(1, np.ones((10, 16), np.float32)).depth.shape == (10, 16)


def test_bad_settings_and_frames_are_refused():
    with pytest.raises(ValueError, match="ultrafast, fine, fast, medium"):
        DepthCarrier(preset="slowest")
    with pytest.raises(ValueError, match="history"):
        DepthCarrier(history=0)
    with pytest.raises(ValueError, match="uint8 RGB"):
        DepthCarrier().push_frame(0, np.zeros((4, 4), np.uint8))
