"""bench/gpu_check.sh on a machine without a GPU: its dry run, its one-line refusals, and the install
it makes on a GPU machine (only what is missing, never into the interpreter's site-packages)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import time
import zipfile
from pathlib import Path

import pytest

from bench.gpu_install import Wheel, WheelError, check_target, pip_command
from tests.conftest import ROOT

SCRIPT = ROOT / "bench" / "gpu_check.sh"


def _run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHON=sys.executable, PATH=os.environ.get("PATH", ""))
    return subprocess.run(["bash", str(SCRIPT), *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                          env=env)


def _fake_wheel(folder: Path, name: str, version: str, tag: str = "py3-none-any", requires_python: str = "") -> Path:
    path = folder / f"{name.replace('-', '_')}-{version}-{tag}.whl"
    info = f"{name.replace('-', '_')}-{version}.dist-info"
    meta = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
    if requires_python:
        meta += f"Requires-Python: {requires_python}\n"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(f"{info}/METADATA", meta)
        archive.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: true\n")
        archive.writestr(f"{info}/RECORD", "")
    return path


def test_without_a_gpu_the_check_stops_in_one_line_within_30_s(tmp_path):
    if Path("/proc/driver/nvidia/gpus").exists():
        pytest.skip("this machine has an NVIDIA GPU")
    started = time.perf_counter()
    result = _run(str(tmp_path / "out"))
    assert time.perf_counter() - started < 30
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "no NVIDIA GPU" in result.stderr, result.stderr
    assert not (tmp_path / "out").exists()  # no step ran


def test_dry_run_lists_each_step_its_limit_and_what_it_installs():
    result = _run("--dry-run")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    names = ["install", "machine", "tests", "eager", "compiled", "rig", "summary"]
    rows = [line.split() for line in lines[1:1 + len(names)]]
    assert [row[0] for row in rows] == names
    limits = [int(row[1].rstrip("s")) for row in rows]
    assert limits[names.index("tests")] < 90 and limits[names.index("eager")] < 120
    assert limits[names.index("compiled")] < 300
    assert sum(limits) + 3 * len(limits) < 9 * 60  # the whole, grace periods included, under 9 minutes
    assert lines[-1].startswith("install: installs nothing")  # this machine has diffusers and python-osc


@pytest.mark.parametrize("case", ["missing", "empty", "other_python"])
def test_a_bad_wheel_folder_is_one_line_and_exit_2_before_any_step(tmp_path, case):
    folder = tmp_path / "wheels"
    if case != "missing":
        folder.mkdir()
    if case == "other_python":
        _fake_wheel(folder, "diffusers", "0.42.1", "cp399-cp399-manylinux_2_17_x86_64")
        _fake_wheel(folder, "python-osc", "1.10.2", requires_python=">=3.99")
    result = _run("--dry-run", str(folder))
    assert result.returncode == 2
    assert result.stdout == "" and result.stderr.count("\n") == 1, result.stderr
    line = result.stderr
    assert line.startswith("gpu_check: ") and str(folder) in line
    expected = {"missing": "does not exist", "empty": "holds no wheels",
                "other_python": "has no wheel of diffusers for this Python"}[case]
    assert expected in line and "Traceback" not in line


def test_the_installer_never_targets_the_interpreters_site_packages(tmp_path):
    own = Path(sysconfig.get_paths()["purelib"])
    for target in (own, own / "rdstream-gpu"):
        with pytest.raises(WheelError, match="own site-packages"):
            check_target(target)
    result = subprocess.run([sys.executable, "-m", "bench.gpu_install", "install", str(tmp_path), str(own)],
                            cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "refusing to install" in result.stderr
    wheel = Wheel(_fake_wheel(tmp_path, "python-osc", "1.10.2"))
    command = pip_command([wheel], check_target(tmp_path / "site"))
    assert {"--no-deps", "--no-index"} <= set(command)
    assert command[command.index("--target") + 1] == str((tmp_path / "site").resolve())


FRESH = os.environ.get("RDSTREAM_FRESH_MACHINE_TEST") == "1"


@pytest.mark.slow
@pytest.mark.skipif(not FRESH, reason="slow (~1 min): set RDSTREAM_FRESH_MACHINE_TEST=1 to run it")
def test_a_fresh_machine_installs_and_imports_with_only_the_wheel_folder(tmp_path):
    # a venv that sees only the GPU image's packages (no diffusers, no python-osc, no network); the
    # wheels: bench/gpu_wheels.sh's folder when RDSTREAM_GPU_WHEELS names one, else this machine's
    # installed copies of exactly what gpu_wheels.sh collects, packed back into wheels
    from bench.gpu_install import carried
    from tests.support.fresh_machine import make_fresh_machine, wheel_from_installed

    python = make_fresh_machine(tmp_path / "machine")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    probe = subprocess.run([str(python), "-c", "import torch, transformers, pytest, anyio; import diffusers"],
                           cwd=tmp_path, capture_output=True, text=True, env=env, timeout=120)
    assert "No module named 'diffusers'" in probe.stderr  # the image lacks it, and sees the rest
    wheels = os.environ.get("RDSTREAM_GPU_WHEELS")
    if not wheels:
        wheels = tmp_path / "wheels"
        wheels.mkdir()
        for spec in carried():
            wheel_from_installed(spec.split("==")[0], wheels)
    site = tmp_path / "gpu-site"
    env["PYTHONPATH"] = f"{site}{os.pathsep}{ROOT}"
    install = subprocess.run([str(python), "-m", "bench.gpu_install", "install", str(wheels), str(site)],
                             cwd=ROOT, capture_output=True, text=True, env=env, timeout=300)
    assert install.returncode == 0, install.stdout + install.stderr
    assert "installs into" in install.stdout and "diffusers" in install.stdout
    check = subprocess.run([str(python), "-c", "import stream, pipeline, diffusers, pythonosc, json, sys; "
                            "import stream.model.rolling_depth_steps, bench.gpu_check; "
                            "print(json.dumps([diffusers.__file__, 'importlib_metadata' in sys.modules]))"],
                           cwd=ROOT, capture_output=True, text=True, env=env, timeout=300)
    assert check.returncode == 0, check.stderr[-3000:]
    location, imported_metadata = json.loads(check.stdout.strip().splitlines()[-1])
    assert location.startswith(str(site))  # from the separate folder, not the image's packages
    again = subprocess.run([str(python), "-m", "bench.gpu_install", "install", str(wheels), str(site)],
                           cwd=ROOT, capture_output=True, text=True, env=env, timeout=120)
    assert again.returncode == 0 and "installs nothing" in again.stdout  # a rerun installs nothing


def test_the_summary_reports_each_figure_that_did_not_finish_as_not_measured_with_why(tmp_path, monkeypatch):
    from bench.gpu_check import configs, summary, write_json

    (tmp_path / "steps.txt").write_text("install 0 1 15\nmachine 0 3 15\ntests 1 40 85\neager 124 105 105\n")
    write_json(tmp_path / "machine.json", {"gpu": "NVIDIA H200", "torch": "2.11.0+cu130", "cuda": "13.0",
                                           "matmul_tflops_measured": {"fp16": 700.0}})
    (tmp_path / "tests.log").write_text("tests/stream/test_rolling_depth_steps_cuda.py::test_cuda_x PASSED [ 50%]\n"
                                        "tests/stream/test_rolling_depth_steps_cuda.py::test_cuda_y FAILED [100%]\n")
    planned = [c.name for c in configs("eager")]
    entry = {"processing_size": [216, 384], "throughput_fps": 20.0, "node_order_fps": 19.5, "latency_p50_ms": 60.0,
             "latency_p95_ms": 70.0, "gpu_ms_sum": 48.0, "peak_gpu_mib": 4000.0,
             "counts_per_frame": {"encodes": 1, "unet_frame_passes": 6, "decodes_full": 4, "decodes_fit": 2},
             "plan": {"encoder": "full"}}
    write_json(tmp_path / "eager.json", {"planned": planned, "configs": {planned[0]: entry}})
    flops = {"vae_encode": 346.0, "vae_encode/tiny": 39.0, "unet_frame_pass": 258.0, "decode_full/full": 788.0,
             "decode_fit/full": 204.0, "decode_full/tiny": 45.0, "decode_fit/tiny": 12.0}
    import bench.flops

    monkeypatch.setattr(bench.flops, "flops_per_call", lambda size, height=None: flops)  # the meta count takes ~10 s
    report = summary(tmp_path)
    measured = report["configs"][planned[0]]
    tflop = (346 + 6 * 258 + 4 * 788 + 2 * 204) / 1000
    assert measured["tflop_per_frame"] == round(tflop, 3) and measured["tflops_achieved"] == round(20 * tflop, 1)
    assert measured["share_of_matmul_peak"] == round(20 * tflop / 700, 3)
    assert report["configs"][planned[1]] == "not measured: the step 'eager' reached its 105 s limit first"
    compiled = [c.name for c in configs("compiled")]
    assert all(report["configs"][n] == "not measured: the step 'compiled' did not run" for n in compiled)
    assert report["tests"]["passed"] == 1 and report["tests"]["failed"] == ["tests/stream/test_rolling_depth_steps_cuda.py::test_cuda_y"]
    assert not any(goal["met"] for goal in report["goals"].values())
    assert report["rig_4_streams"] == "not measured: the step 'rig' did not run"
    saved = json.loads((tmp_path / "gpu_check.json").read_text())
    assert saved["machine"]["gpu"] == "NVIDIA H200"
    assert "not measured" in (tmp_path / "table.md").read_text()


def test_a_strided_rung_is_measured_over_its_whole_stride_period(tiny_model, monkeypatch):
    import bench.gpu_timing as gpu_timing
    from pipeline.snippets import SnippetPlan

    monkeypatch.setattr(gpu_timing, "INPUTS", {"16:9": (36, 64)})
    schedule = gpu_timing.steady_schedule(SnippetPlan(3, (1, 3), (2, 2)), 2)
    assert [len(snippets) for snippets, _ in schedule] == [2, 0] or [len(s) for s, _ in schedule] == [0, 2]
    config = gpu_timing.Config(64, "16:9", "full", 2, False, rung="stride2")
    seen = []
    results = gpu_timing.measure_all(tiny_model, tiny_model.decoder, [config], SnippetPlan(3, (1, 3)), lambda m: None,
                                     on_entry=lambda name, entry: seen.append(name), latency_frames=2,
                                     throughput_frames=1)
    entry = results[config.name]
    assert seen == [config.name] == ["64px/16:9/stride2/full/lookahead_2/eager"]
    assert entry["plan"]["strides"] == [2, 2]
    assert entry["counts_per_frame"]["unet_frame_passes"] == 3.0  # 2 snippets of 3 frames every 2nd frame
    assert entry["latency_p95_ms"] >= entry["latency_p50_ms"] > 0 and entry["throughput_fps"] > 0


def test_the_rigs_measured_processes_keep_the_callers_python_path():
    # on the GPU machine diffusers lives in build/gpu-site, on PYTHONPATH: a child must see it too
    from bench.rig import ROOT as RIG_ROOT, _with_root

    assert _with_root("/x/gpu-site").split(os.pathsep) == [str(RIG_ROOT), "/x/gpu-site"]
    assert _with_root(None) == str(RIG_ROOT)
