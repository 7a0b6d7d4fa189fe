"""What ``--fill`` and the keyframe caps add to the stats: the model's rate next to the output's, the
keyframe depth age, and why frames were held back from the model.

Read from the counters the stages already keep (capture's keyframe rate and gate, the fill stage's
depth ages), never counted a second time.
"""

from __future__ import annotations


class FillStats:
    """capture: the ``CaptureStage``; fill: the ``FillStage`` or None (``--fill drop``)."""

    def __init__(self, capture, fill) -> None:
        self.capture = capture
        self.fill = fill

    @property
    def active(self) -> bool:
        return self.fill is not None or self.capture.gate is not None

    def sample(self) -> dict | None:
        """One second's view (``NodeStats.fill``), or None when neither --fill nor a cap is in force:
        model_fps: frames the model took per second (keyframes); depth_age_p50_ms / _p95_ms: how much
        older the depth of recent output frames is than their colour (0 for keyframes); skipped:
        frames held back from the model by reason (``stream.stages.keyframe_gate.SKIP_REASONS``);
        skip_reason: why the newest one was held back (None when the last decision was a keyframe)."""
        if not self.active:
            return None
        out: dict = {"model_fps": round(self.capture.kept_rate.per_second(), 2)}
        if self.fill is not None:
            p50, p95 = self.fill.depth_age.percentiles_ms()
            out.update(depth_age_p50_ms=p50, depth_age_p95_ms=p95, keyframes=self.fill.keyframes_in,
                       flow_failures=self.fill.flow_failures)
        gate = self.capture.gate
        out["skipped"] = dict(gate.skips) if gate is not None else {}
        out["skip_reason"] = gate.last_reason if gate is not None else None
        return out

    def summary(self) -> dict:
        """The whole run: keyframes, depth age p50/p95 (ms), frames out before the first depth, flow failures, skips."""
        p50, p95 = self.fill.depth_age.run_percentiles_ms()
        gate = self.capture.gate
        return {"keyframes": self.fill.keyframes_in, "depth_age_p50_ms": p50, "depth_age_p95_ms": p95,
                "before_first_depth": self.fill.before_first_depth, "flow_failures": self.fill.flow_failures,
                "skipped": dict(gate.skips) if gate is not None else {}}
