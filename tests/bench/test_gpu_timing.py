"""bench.gpu_timing: the GPU benchmark's measurement, run on the CPU with the tiny random model."""

from __future__ import annotations

from pipeline.snippets import SnippetPlan


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
