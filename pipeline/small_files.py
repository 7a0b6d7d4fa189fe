"""Reading the small files a user names (a rig file, a list of inputs, a checkpoint's JSON
configs) with a size bound.

Such a file is a few KiB. Read whole without a bound, a mistaken path (``/dev/zero``, a video
given as a rig file, a multi-GB file) would read for seconds and end in a MemoryError; with
the bound it is one line naming the file and the limit, after reading at most that much.
"""

from __future__ import annotations

import json
import os

from pipeline.errors import BadInputError

#: Largest small file read: far above any real rig file, input list or model config.
MAX_SMALL_FILE_BYTES = 1 << 20


def _size_text(size: int) -> str:
    return f"{size >> 20} MiB" if size % (1 << 20) == 0 else f"{size} bytes"


def read_small_file(path: str | os.PathLike, label: str, kind: str, limit: int = MAX_SMALL_FILE_BYTES) -> bytes:
    """The bytes of ``path``, at most ``limit`` of them.

    label: how messages begin, naming the file (e.g. the path, or "checkpoint DIR: unet/config.json").
    kind: what the file should be, with its article ("a rig file"), for the message on a file
        that is too large.
    Raises:
        BadInputError: the file cannot be read (missing, a folder, no permission) or holds more
            than ``limit`` bytes.
    """
    try:
        with open(path, "rb") as handle:
            data = handle.read(limit + 1)  # one byte more tells "exactly the limit" from "larger"
    except OSError as err:
        raise BadInputError(f"{label}: cannot read it ({err.strerror or err})") from None
    if len(data) > limit:
        raise BadInputError(f"{label}: larger than {_size_text(limit)}, too large for {kind}; "
                            "is this the right file?")
    return data


def read_small_text(path: str | os.PathLike, label: str, kind: str, limit: int = MAX_SMALL_FILE_BYTES) -> str:
    """``read_small_file`` as UTF-8 text; BadInputError when it is not UTF-8."""
    try:
        return read_small_file(path, label, kind, limit).decode("utf-8")
    except UnicodeDecodeError:
        raise BadInputError(f"{label}: not {kind} (not UTF-8 text)") from None


def read_json_object(path: str | os.PathLike, label: str, kind: str, limit: int = MAX_SMALL_FILE_BYTES) -> dict:
    """``read_small_file`` parsed as one JSON object (every config file is one); BadInputError
    when it is not valid JSON or holds something else (a list, a number)."""
    try:
        data = json.loads(read_small_file(path, label, kind, limit))
    except ValueError as err:  # json.JSONDecodeError and UnicodeDecodeError both derive from it
        raise BadInputError(f"{label} is not valid JSON ({err})") from None
    if not isinstance(data, dict):
        raise BadInputError(f"{label} is not {kind} (it holds a JSON {type(data).__name__}, not an object)")
    return data
