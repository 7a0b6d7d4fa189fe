"""bench.fill --quick: the real node with the oracle on a rendered scene prints its JSON and every target."""

from __future__ import annotations

from bench.fill import main


def test_bench_fill_quick_measures_flow_hold_and_drop_and_prints_each_target(capsys):
    document = main(["--quick"])
    runs = document["runs"]["slow"]
    assert set(runs) == {"flow@1", "hold@1", "drop@1", "flow@4", "hold@4"}
    for name, run in runs.items():
        assert run["frames_out"] > 0 and run["abs_rel"] >= 0 and run["capture_to_send_p50_ms"] is not None, name
    assert runs["drop@1"]["abs_rel"] < 1e-3  # the oracle through the node's path is the truth
    assert runs["flow@4"]["depth_age_p50_ms"] is not None and runs["drop@1"]["depth_age_p50_ms"] is None
    assert all(isinstance(met, bool) for met in document["targets_met"].values()) and len(document["targets_met"]) == 5
    assert '"targets_met"' in capsys.readouterr().out
