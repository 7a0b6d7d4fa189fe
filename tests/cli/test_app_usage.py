"""Usage errors, bounds, progress without a terminal and stops during start-up: one line, a clear exit."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest
from rich.console import Console

from stream.cli.progress import PlainProgress
from tests.conftest import ROOT, rdstream_in_process


def run_main(capsys, *args) -> tuple[int, str]:
    """The CLI in-process; returns (exit code, stderr)."""
    return rdstream_in_process(*args), capsys.readouterr().err


@pytest.mark.parametrize("args, expected", [
    (["run", "--source", "test:", "--sink", "null:", "--res", "abc"], "'--res' ('abc')"),
    (["run", "--source", "test:", "--sink", "null:", "-d", "-25"], "--dilations -25"),
    (["run", "--source", "test:", "--sink", "null:", "--lookahead", "x"], "'--lookahead' ('x')"),
    (["file", "clip.mp4", "--fps", "fast"], "'--fps' ('fast')"),
    (["file", "clip.mp4", "--bogus"], "No such option: --bogus"),
    (["run", "--sink", "null:"], "Missing option '--source'"),
])
def test_every_usage_error_is_one_line_naming_the_option_and_value(capsys, args, expected):
    code, err = run_main(capsys, *args)
    assert code == 2
    assert err.startswith("rdstream: error: ") and err.count("\n") == 1, err
    assert expected in err and "No such option: -2" not in err


@pytest.mark.parametrize("args, expected", [
    (["run", "--source", "test:", "--sink", "null:", "--res", "100000"], "--res 100000"),
    (["run", "--source", "test:", "--sink", "null:", "--res", "3"], "--res 3"),
    (["file", "clip.mp4", "--res", "100000"], "--res 100000"),
    (["file", "clip.mp4", "--fps", "nan"], "--fps nan"),
    (["file", "clip.mp4", "--fps", "inf"], "--fps inf"),
    (["file", "clip.mp4", "--seed", "18446744073709551616"], "--seed 18446744073709551616: must be a whole number from 0"),
    (["run", "--source", "test:", "--sink", "null:", "--seed", "-1"], "--seed -1: must be a whole number from 0 to"),
    (["run", "--source", "test:", "--sink", "null:", "--lookahead", "1001"], "--lookahead 1001: must be 0 (lowest"),
    (["run", "--source", "test:", "--sink", "null:", "-d", "1", str(10**30)], "--dilations 10000"),
    (["run", "--source", "test:", "--sink", "null:", "--normalize", "window:3601"], "window:3601: N must be 1 to 3600"),
    (["file", "clip.mp4", "--refine-step", str(10**30)], "--refine-step 10000"),
])
def test_out_of_range_values_are_bad_input_before_any_work(capsys, tmp_path, args, expected):
    code, err = run_main(capsys, *args, "-c", tmp_path / "no-checkpoint-needed")
    assert code == 2 and expected in err and err.count("\n") == 1, err


@pytest.mark.parametrize("wait", ["1e30", "nan", "-1"])
def test_sources_refuses_an_ndi_wait_that_would_never_end_or_means_nothing(capsys, wait):
    code, err = run_main(capsys, "sources", "--ndi-wait", wait)
    assert code == 2 and err.startswith("rdstream: error: --ndi-wait ") and "must be 0 to 60 seconds" in err, err


@pytest.mark.parametrize("sink, expected", [
    ("ndi:X?format=bogus", "option format='bogus' in 'ndi:X?format=bogus'"),
    ("ndi:X?format=p216&cmap=turbo", "cmap='turbo' with format=p216"),
    ("syphon:X?format=bogus", "option format='bogus'"),
    ("spout:X?format=rgba16", "option format='rgba16'"),
])
def test_a_bad_live_sink_option_stops_run_before_the_model_loads(capsys, monkeypatch, sink, expected):
    import pipeline.checkpoint

    def load_must_not_happen(*args, **kwargs):
        raise AssertionError("the checkpoint was loaded before the sink options were checked")

    monkeypatch.setattr(pipeline.checkpoint, "load_rolling_depth", load_must_not_happen)
    code, err = run_main(capsys, "run", "--source", "test:", "--sink", sink, "-c", "/nonexistent")
    assert code == 2 and err.startswith("rdstream: error: ") and err.count("\n") == 1, err
    assert expected in err, err


def test_help_reads_cleanly_at_80_columns():
    env = {"COLUMNS": "80", "PATH": "/usr/bin:/bin"}
    for command in ("file", "run"):
        out = subprocess.run([sys.executable, "-m", "stream.cli", command, "--help"], cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=120).stdout
        lines = out.splitlines()
        assert lines[0].startswith(f"Usage: rdstream {command} [OPTIONS]") and "[[" not in lines[0]
        assert max(len(line) for line in lines) <= 80
        assert "…" not in out and "<list[str]>" not in "\n".join(lines[1:])  # options under their headings
        assert "--refine-snippet-len" in out or command == "run"


def test_plain_progress_lines_when_not_on_a_terminal():
    clock = iter([0.0, 5.0, 12.0, 30.0, 31.0]).__next__
    console = Console(file=__import__("io").StringIO(), force_terminal=False, width=200)
    progress = PlainProgress(console, "clip", interval_s=10.0, clock=clock)
    for _ in range(4):
        progress("encode", 25, 100)  # at 0, 5 (quiet: under the interval), 12 s, then done at 30 s
    progress("write", 0, 0)
    lines = console.file.getvalue().splitlines()
    assert lines[0] == "clip encode: 25/100, 0 s elapsed"
    assert lines[1] == "clip encode: 75/100, 12 s elapsed, about 4 s left"
    assert lines[2] == "clip encode: 100/100, 30 s elapsed"
    assert len(lines) == 4


@pytest.mark.skipif(sys.platform == "win32", reason="sends POSIX signals to a child process, which Windows cannot")
@pytest.mark.parametrize("sig, delay", [(signal.SIGINT, 0.3), (signal.SIGTERM, 0.3), (signal.SIGTERM, 2.5)])
def test_a_stop_during_start_up_is_one_line_and_exit_0(tiny_checkpoint, sig, delay):
    proc = subprocess.Popen(
        [sys.executable, "-m", "stream.cli", "run", "--source", "test:?size=64x48&rate=30", "--sink", "null:",
         "-c", str(tiny_checkpoint), "--res", "64", "-d", "1", "--no-status"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(delay)
        proc.send_signal(sig)
        _, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stderr
    assert "Traceback" not in stderr
    # stopped before the node ran ("stopped"), or by the running node ("interrupted:"), never silently
    assert "rdstream: stopped" in stderr or "interrupted:" in stderr, stderr


def _no_model_load(monkeypatch):
    import pipeline.checkpoint
    import stream.cli.file_job

    def load_must_not_happen(*args, **kwargs):
        raise AssertionError("the checkpoint was loaded before the input was checked")

    monkeypatch.setattr(pipeline.checkpoint, "load_rolling_depth", load_must_not_happen)
    monkeypatch.setattr(stream.cli.file_job, "load_rolling_depth", load_must_not_happen)


@pytest.mark.parametrize("make, expected", [
    (lambda d: d / "missing.mp4", "missing.mp4"),
    (lambda d: (d / "bad.mp4").write_text("not a video") and d / "bad.mp4", "cannot read"),
])
def test_a_missing_or_damaged_video_is_one_line_before_the_model_loads(capsys, monkeypatch, tmp_path, make, expected):
    _no_model_load(monkeypatch)
    path = make(tmp_path)
    for args in (["run", "--source", f"file:{path}", "--sink", "null:"], ["run", "--source", str(path), "--sink", "null:"],
                 ["file", str(path), "-o", str(tmp_path / "out")]):
        code, err = run_main(capsys, *args, "-c", "/nonexistent")
        assert code == 2 and err.startswith("rdstream: error: ") and err.count("\n") == 1, err
        assert expected in err, err
    assert not (tmp_path / "out").exists()


def test_output_names_too_long_or_a_start_past_the_end_is_one_line_before_the_model_loads(capsys, monkeypatch, tmp_path):
    from tests.conftest import write_clip

    _no_model_load(monkeypatch)
    clip = write_clip(tmp_path / ("c" * 240 + ".mp4"), 3, 32, 32)  # fits; "{stem}_Spectral_r.partial.mp4" does not
    code, err = run_main(capsys, "file", clip, "-o", tmp_path / "out", "-c", "/nonexistent")
    assert code == 2 and err.count("\n") == 1, err
    assert err.startswith(f"rdstream: error: input {clip.name} (its outputs are named after it): file name") and \
        "at most 255 bytes" in err, err
    assert not (tmp_path / "out").exists()
    code, err = run_main(capsys, "file", clip.rename(tmp_path / "clip.mp4"), "--start-frame", 10**30, "-o", tmp_path / "out",
                         "-c", "/nonexistent")
    assert code == 2 and err.count("\n") == 1 and f"start frame {10**30}, video has 3 frames" in err, err


def test_a_damaged_video_in_a_batch_is_skipped_and_the_others_go_on(capsys, tmp_path, tiny_checkpoint):
    from tests.conftest import write_clip

    good = write_clip(tmp_path / "good.mp4", 8, 64, 48)
    (tmp_path / "bad.mp4").write_text("not a video")
    code, err = run_main(capsys, "file", tmp_path / "bad.mp4", good, "-o", tmp_path / "out", "-c", tiny_checkpoint,
                         "--res", "64", "-d", "1", "--no-save-sbs", "--cmap", "turbo")
    assert code == 2  # the worst problem of the batch
    assert err.index("bad.mp4") < err.index("NOT depth")  # said before the model loaded
    assert (tmp_path / "out" / "good_pred.npy").exists()


def test_help_and_usage_errors_do_not_wait_for_torch():
    code = ("import sys; from stream.cli.app import app; "
            "print(sorted(m for m in ('torch', 'diffusers', 'transformers') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_run_and_its_job_import_one_way():
    """stream.cli.run (options, help) imports run_job when a run starts; run_job never imports run."""
    import ast

    def imports(name: str) -> set[str]:
        tree = ast.parse((ROOT / "stream" / "cli" / f"{name}.py").read_text())
        found = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
        return found | {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}

    assert "stream.cli.run" not in imports("run_job")
    assert not {"stream.cli.run", "stream.cli.run_job"} & imports("run_checks")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="camera numbers are /dev/videoN on Linux")
def test_a_missing_camera_is_said_before_the_model_loads(capsys, monkeypatch):
    _no_model_load(monkeypatch)
    code, err = run_main(capsys, "run", "--source", "camera:63", "--sink", "null:", "-c", "/nonexistent")
    assert code == 2 and err.startswith("rdstream: error: cannot open camera '63'") and err.count("\n") == 1, err


@pytest.mark.parametrize("command, option", [
    (["run", "--source", "test:", "--sink", "null:"], ["--preset", "nope"]),
    (["run", "--source", "test:", "--sink", "null:"], ["--res", "5"]),
    (["run", "--source", "test:", "--sink", "null:"], ["--quality", "best"]),
    (["run", "--source", "test:", "--sink", "null:"], ["--lookahead", "-1"]),
    (["run", "--source", "test:", "--sink", "null:"], ["--seed", "18446744073709551621"]),
    (["file", "clip.mp4"], ["--preset", "nope"]),
    (["file", "clip.mp4"], ["--res", "5"]),
])
def test_usage_errors_answer_before_torch_loads(command, option):
    code = ("import sys\nfrom stream.cli import main\ntry:\n    main(sys.argv[1:])\nexcept SystemExit as done:\n"
            "    print(done.code, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code, *command, *option],
                         cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.stdout.split() == ["2", "False"], out.stdout + out.stderr
    assert out.stderr.startswith(f"rdstream: error: {option[0]} {option[1]}"), out.stderr


@pytest.mark.parametrize("command", ["make-tiny-checkpoint", "make-tiny-decoder"])
def test_a_dev_folder_name_too_long_is_one_line_naming_the_limit(capsys, tmp_path, command):
    code, err = run_main(capsys, "dev", command, tmp_path / ("m" * 300))
    assert code == 2 and err.startswith("rdstream: error: FOLDER: folder name") and err.count("\n") == 1, err
    assert "300 bytes long; at most 255 bytes" in err
