"""Messages that say the true reason: options on a bare path, a flag given a non-boolean, a
lookahead warning only for a value the user chose, the demo's weights said only once checked."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import ROOT, rdstream_in_process


def run_main(capsys, *args) -> tuple[int, str]:
    return rdstream_in_process(*args), capsys.readouterr().err


def test_options_on_a_bare_path_say_they_need_file(capsys, tmp_path):
    code, err = run_main(capsys, "run", "--source", tmp_path / "clip2.mp4?frames=8", "--sink", "null:", "-c", "/nonexistent")
    assert code == 2 and err.count("\n") == 1, err
    assert "options need the file: scheme, e.g. file:" in err and "clip2.mp4?frames=8" in err, err
    assert "not found" not in err


def test_a_boolean_flag_given_a_word_says_it_is_not_a_boolean(capsys, tmp_path):
    code, err = run_main(capsys, "file", tmp_path / "clip.mp4", "--save-npy", "maybe")
    assert code == 2 and err == ("rdstream: error: --save-npy maybe: not a boolean; give --save-npy true|false "
                                 "(or yes|no, 1|0, on|off), or --save-npy / --no-save-npy alone\n"), err
    # an input after the flag is still an input
    code, err = run_main(capsys, "file", "--save-npy", tmp_path / "missing.mp4")
    assert code == 2 and "missing.mp4: no such file" in err and "not a boolean" not in err, err


def test_the_default_lookahead_is_not_warned_about_only_a_chosen_one(capsys, tmp_path):
    base = ["run", "--source", "test:?frames=3", "--sink", "null:", "-c", tmp_path / "none", "--snip-len", "2"]
    code, err = run_main(capsys, *base)  # default lookahead 2: 0, 1 and 25 are the useful values here
    assert code == 2 and "warning" not in err, err
    code, err = run_main(capsys, *base, "--lookahead", "2")
    assert code == 2 and err.startswith("rdstream: warning: --lookahead 2:"), err


def test_the_demo_says_a_missing_checkpoint_before_claiming_to_use_it(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, "-m", "stream.cli.demo", "--checkpoint", str(tmp_path / "nonexistent")],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    out = done.stdout + done.stderr
    assert done.returncode == 2, out
    assert "Using the RollingDepth weights" not in out and "no such folder" in out, out


def test_writing_the_tiny_checkpoint_draws_no_progress_bar(capfd, tmp_path):
    from pipeline.tiny_checkpoint import write_tiny_checkpoint

    write_tiny_checkpoint(tmp_path / "tiny")
    captured = capfd.readouterr()
    assert "Writing model shards" not in captured.err + captured.out


def test_help_shows_plain_argument_names_and_the_hub_id_whole():
    env = {"COLUMNS": "80", "PATH": "/usr/bin:/bin"}
    for command in (["file"], ["run"], ["dev", "make-tiny-checkpoint"], ["dev", "make-tiny-decoder"],
                    ["dev", "compare-decoders"]):
        out = subprocess.run([sys.executable, "-m", "stream.cli", *command, "--help"], cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=120).stdout
        for typer_mark in ("<list[str]>", "<str>", "{folder}", "{clip}"):
            assert typer_mark not in out, (command, out)
        if command != ["dev", "make-tiny-checkpoint"] and command != ["dev", "make-tiny-decoder"]:
            assert "prs-eth/rollingdepth-v1-0" in out, (command, out)
    assert "Usage: rdstream dev make-tiny-checkpoint [OPTIONS] FOLDER" in subprocess.run(
        [sys.executable, "-m", "stream.cli", "dev", "make-tiny-checkpoint", "--help"], cwd=ROOT, env=env,
        capture_output=True, text=True, timeout=120).stdout


def test_the_start_of_a_run_is_a_few_short_lines(tiny_checkpoint):
    done = subprocess.run([sys.executable, "-m", "stream.cli", "run", "--source", "test:?frames=3&size=64x48", "--sink",
                           "null:", "-c", str(tiny_checkpoint), "--res", "64", "-d", "1", "--no-status"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("rdstream run: "))
    block = lines[first:lines.index("  Ctrl-C stops cleanly", first) + 1]
    assert block[0] == "rdstream run: test:?frames=3&size=64x48 -> null:", block
    assert 4 <= len(block) <= 8 and all(len(line) <= 100 for line in block), block
    assert any("preset live: 64 px, dilations 1, lookahead 2" in line for line in block), block
