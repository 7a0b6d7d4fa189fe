"""Display ranges: one rule where they enter (``--normalize fixed:`` and OSC alike), depth that
reaches the sinks is always finite and in [0, 1]; the running, fixed and window normalisers."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.errors import BadInputError
from stream.cli import main
from stream.stages.display_normalizer import (MAX_RANGE_MAGNITUDE, DisplayRange, FixedRangeNormalizer,
                                         RunningRangeNormalizer, WindowRangeNormalizer, apply_range,
                                         check_fixed_range, parse_normalize)
from stream.control.osc_commands import parse_command


@pytest.mark.parametrize("near, far, reason", [
    (1e308, -1e308, "within"), (1e7, 0.0, "within"), (float("inf"), 0.0, "finite"), (float("nan"), 0.0, "finite"),
    (-1.0, 1.0, "larger than FAR"), (0.5, 0.5, "larger than FAR"),
    (1.0 + 1e-9, 1.0, "larger than FAR"),  # different as doubles, equal in float32: a zero span
])
def test_the_cli_and_osc_refuse_the_same_ranges_for_the_same_reason(near, far, reason):
    assert reason in check_fixed_range(near, far)
    with pytest.raises(BadInputError, match=reason):
        parse_normalize(f"fixed:{near!r},{far!r}")
    with pytest.raises(ValueError, match=reason):
        parse_command("/rdstream/normalize/fixed", [near, far])


def test_the_bounds_themselves_are_accepted_in_both_places():
    bound = MAX_RANGE_MAGNITUDE
    assert check_fixed_range(bound, -bound) is None and check_fixed_range(1.0, -1.0) is None
    assert parse_normalize(f"fixed:{bound},{-bound}").current_range == DisplayRange(far=-bound, near=bound)
    assert parse_command("/rdstream/normalize/fixed", [bound, -bound]).args == (bound, -bound)


def test_an_overflowing_range_on_the_command_line_is_exit_2_before_the_model_loads(capsys, tmp_path):
    for spec in ("fixed:1e308,-1e308", "fixed:-1,1"):
        with pytest.raises(SystemExit) as info:
            main(["run", "--source", "test:?frames=3", "--sink", "null:", "--normalize", spec,
                  "-c", str(tmp_path / "no-checkpoint-needed")])
        err = capsys.readouterr().err
        assert info.value.code == 2 and err.startswith("rdstream: error: --normalize") and err.count("\n") == 1, err


def test_sinks_never_receive_non_finite_depth():
    hostile = np.array([[np.nan, np.inf, -np.inf, 3e38], [-3e38, 0.0, 0.5, -0.5]], dtype=np.float32)
    normalizers = [FixedRangeNormalizer(MAX_RANGE_MAGNITUDE, -MAX_RANGE_MAGNITUDE), FixedRangeNormalizer(1.0, -1.0),
                   RunningRangeNormalizer(), WindowRangeNormalizer(3)]
    for normalizer in normalizers:
        for _ in range(3):
            out = normalizer(hostile)
            assert out.dtype == np.float32 and np.isfinite(out).all() and out.min() >= 0 and out.max() <= 1
    # a degenerate range (as a runaway running range could become) maps to finite values too
    for degenerate in (DisplayRange(far=-np.inf, near=np.inf), DisplayRange(far=np.nan, near=1.0)):
        out = apply_range(hostile, degenerate)
        assert np.isfinite(out).all() and out.min() >= 0 and out.max() <= 1


def test_running_range_ignores_outlier_pixels_and_moves_slowly():
    rng = np.random.default_rng(0)
    norm = RunningRangeNormalizer(momentum=0.9)
    base = rng.uniform(-0.5, 0.5, size=(64, 64)).astype(np.float32)
    first = norm(base)
    assert first.dtype == np.float32 and first.min() >= 0 and first.max() <= 1
    spiky = base.copy()
    spiky[0, 0] = 100.0  # one hot pixel must not rescale the frame (per-frame min/max would)
    out = norm(spiky)
    assert np.abs(out[1:, 1:] - first[1:, 1:]).max() < 0.02
    # a whole-frame change of range is followed gradually, not in one jump
    before = norm.current_range
    norm(base * 4)
    after = norm.current_range
    assert before.near < after.near < 4 * before.near


def test_fixed_and_window_normalisers():
    depth = np.linspace(-1, 1, 100, dtype=np.float32).reshape(10, 10)
    fixed = FixedRangeNormalizer(near=1.0, far=-1.0)(depth)
    np.testing.assert_allclose(fixed, (depth + 1) / 2, atol=1e-6)
    window = WindowRangeNormalizer(frames=3)
    for _ in range(3):
        out = window(depth)
    assert out.min() == 0.0 and out.max() == 1.0


@pytest.mark.parametrize("spec", ["minmax", "fixed:1", "fixed:a,b", "fixed:1,1", "window:x", "window:0"])
def test_bad_normalize_spec_is_one_clear_error(spec):
    with pytest.raises(BadInputError, match="normalize"):
        parse_normalize(spec)
