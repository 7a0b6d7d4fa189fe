"""The one name rule (io_adapters.names): empty and over-long names, and output paths too long
for the file system, refused as one line before anything is written or loaded."""

from __future__ import annotations

import subprocess
import sys

import pytest

from io_adapters.names import check_name, check_path_fits, path_limits
from io_adapters.output_paths import LOCK_NAME_EXTRA, check_outputs, claim_outputs
from pipeline.errors import BadInputError
from tests.conftest import ROOT


@pytest.mark.parametrize("name", ["", "   ", "\t"])
def test_an_empty_or_blank_name_is_refused_with_an_example(name):
    with pytest.raises(BadInputError, match="stream name is empty; give one, e.g. left"):
        check_name(name, "stream name", "left", 255)


def test_a_name_is_measured_in_utf8_bytes():
    check_name("é" * 127, "name", "x", 254)
    with pytest.raises(BadInputError, match="is 256 bytes long; at most 254 bytes"):
        check_name("é" * 128, "name", "x", 254)


def test_the_longest_file_name_that_fits_with_its_lock_file_is_written_and_one_byte_more_is_not(tmp_path):
    name_max, _ = path_limits(tmp_path / "x")
    longest = "d" * (name_max - LOCK_NAME_EXTRA - len(".npy")) + ".npy"
    uri = f"npy:{tmp_path / ('x' + longest)}"
    with pytest.raises(BadInputError) as info:
        check_outputs([uri])
    message = str(info.value)
    assert message.startswith(f"npy:{tmp_path}") and f"at most {name_max - LOCK_NAME_EXTRA} bytes" in message
    assert f"limit of {name_max}" in message and "\n" not in message
    # the timestamps file beside an npy output is longer still: the longest that fits is what it allows
    stem = "d" * (name_max - LOCK_NAME_EXTRA - len(".timestamps.npy"))
    check_outputs([f"npy:{tmp_path / stem}.npy"])
    with claim_outputs([f"npy:{tmp_path / stem}.npy"]):  # the lock files can be made: the limit is the true one
        pass


def test_a_folder_name_or_a_whole_path_too_long_is_refused(tmp_path):
    _, path_max = path_limits(tmp_path / "x")
    with pytest.raises(BadInputError, match=r"--stats-json: folder name 'fff.*is 300 bytes long"):
        check_outputs([], {"--stats-json": str(tmp_path / ("f" * 300) / "stats.jsonl")})
    deep = tmp_path.joinpath(*["p" * 200] * (path_max // 200 + 1), "stats.jsonl")
    with pytest.raises(BadInputError, match=f"--stats-json: the path .* at most {path_max - 1 - LOCK_NAME_EXTRA} bytes"):
        check_path_fits(deep, "--stats-json", LOCK_NAME_EXTRA)


def test_run_with_a_sink_name_too_long_is_one_line_and_exit_2_before_torch_loads(tmp_path):
    sink = f"file:{tmp_path / ('n' * 300)}.mp4"
    code = ("import sys\nfrom stream.cli import main\ntry:\n    main(sys.argv[1:])\nexcept SystemExit as done:\n"
            "    print(done.code, 'torch' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code, "run", "--source", "test:", "--sink", sink, "-c", "/nonexistent"],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.stdout.split() == ["2", "False"], done.stdout + done.stderr
    assert done.stderr.startswith(f"rdstream: error: {sink}: file name") and done.stderr.count("\n") == 1, done.stderr
    assert "304 bytes long; at most" in done.stderr and "file system's limit" in done.stderr
