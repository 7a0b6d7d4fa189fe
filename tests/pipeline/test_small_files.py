"""Files a user names that must be small (rig files, input lists, a checkpoint's configs) are read
with a bound: one line naming the file and the limit, never a MemoryError after seconds of reading."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.errors import BadInputError
from pipeline.small_files import MAX_SMALL_FILE_BYTES, read_json_object, read_small_file
from stream.cli import main


def test_a_file_of_exactly_the_limit_is_read_and_one_byte_more_is_refused(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"x" * MAX_SMALL_FILE_BYTES)
    assert len(read_small_file(path, str(path), "a rig file")) == MAX_SMALL_FILE_BYTES
    path.write_bytes(b"x" * (MAX_SMALL_FILE_BYTES + 1))
    with pytest.raises(BadInputError, match=f"^{path}: larger than 1 MiB, too large for a rig file"):
        read_small_file(path, str(path), "a rig file")


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="needs /dev/zero")
def test_an_endless_device_is_refused_after_reading_only_the_limit():
    with pytest.raises(BadInputError, match="larger than 1 MiB"):
        read_small_file("/dev/zero", "/dev/zero", "a rig file")


def test_a_config_that_is_json_but_no_object_is_refused(tmp_path):
    path = tmp_path / "config.json"
    path.write_text("[1, 2]")
    with pytest.raises(BadInputError, match="is not a model config .it holds a JSON list"):
        read_json_object(path, str(path), "a model config")


def test_an_input_list_larger_than_the_limit_is_one_line_and_exit_2(capsys, tmp_path):
    listing = tmp_path / "videos.txt"
    listing.write_text("clip.mp4\n" * (MAX_SMALL_FILE_BYTES // 9 + 1))
    with pytest.raises(SystemExit) as info:
        main(["file", str(listing), "-o", str(tmp_path / "out"), "-c", str(tmp_path / "no-checkpoint-needed")])
    err = capsys.readouterr().err
    assert info.value.code == 2 and err.count("\n") == 1, err
    assert f"input list {listing}: larger than 1 MiB" in err
