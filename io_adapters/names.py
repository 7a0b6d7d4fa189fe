"""The one rule for names a user gives that become a file name or a name other programs see
(an NDI, Syphon or Spout sender, a rig stream's name): not empty, not only spaces, and within
the byte limit of where the name goes.

``check_name`` is that rule; every such check calls it. ``check_path_fits`` applies it to each
part of a path a run will create, with the file system's limits: NAME_MAX bytes per part (255 on
almost every file system) and PATH_MAX bytes for the whole (4096 on Linux), so a name that is too
long is one line before the model loads, not "File name too long" at the first frame.
(Path parts are never empty; the emptiness rule is for sender and stream names.)
"""

from __future__ import annotations

import os
from pathlib import Path

from pipeline.errors import BadInputError

# Where the file system cannot be asked (Windows has no pathconf): the limits of
# NTFS, APFS and ext4 (255 per name) and Linux's PATH_MAX.
DEFAULT_NAME_MAX = 255
DEFAULT_PATH_MAX = 4096
SHOWN_CHARS = 40  # a long name is shown by its start


def shown(name: str) -> str:
    """``name`` quoted, cut to its first SHOWN_CHARS characters."""
    return repr(name) if len(name) <= SHOWN_CHARS else f"{name[:SHOWN_CHARS]!r}..."


def name_bytes(name: str) -> int:
    """The length of ``name`` in UTF-8 bytes, as senders store names and as POSIX file systems count
    file names (on Windows, which counts UTF-16 units, a non-ASCII name is held to a little less)."""
    return len(os.fsencode(name))


def check_name(name: str, what: str, example: str, max_bytes: int | None = None, why: str = "") -> None:
    """BadInputError when ``name`` is empty or only spaces, or longer than ``max_bytes`` bytes.

    what: how the message names the name, e.g. "ndi: sink name". example: a good value, for the
        message on an empty one. why: where the limit comes from, said after it (e.g. " (NTFS)").
    """
    if not name.strip():
        raise BadInputError(f"{what} is empty; give one, e.g. {example}")
    size = name_bytes(name)
    if max_bytes is not None and size > max_bytes:
        raise BadInputError(f"{what} {shown(name)} is {size} bytes long; at most {max_bytes} bytes{why}; "
                            "choose a shorter one")


def _nearest_folder(path: Path) -> Path:
    folder = path.parent
    while not os.path.isdir(folder) and folder != folder.parent:  # os.path: False, not an error, for a too-long name
        folder = folder.parent
    return folder


def path_limits(path: str | os.PathLike) -> tuple[int, int]:
    """(NAME_MAX, PATH_MAX) in bytes for a file created at ``path``, asked of the file system of
    its nearest existing folder; the common values where it cannot say."""
    folder = _nearest_folder(Path(os.path.abspath(path)))
    try:
        return os.pathconf(folder, "PC_NAME_MAX"), os.pathconf(folder, "PC_PATH_MAX")
    except (AttributeError, OSError, ValueError):  # no pathconf on Windows
        return DEFAULT_NAME_MAX, DEFAULT_PATH_MAX


def check_path_fits(path: str | os.PathLike, what: str, extra: int = 0) -> None:
    """BadInputError (one line starting with ``what``, e.g. the sink) when the file ``path``, or a
    file named after it, cannot be created because a name or the whole path is too long.

    extra: the bytes the run adds to the file's name for a file beside it (the lock file
        ".NAME.rdstream-lock" adds 15): the name is held to NAME_MAX less that, and the message says so.
    """
    absolute = os.path.abspath(path)
    name_max, path_max = path_limits(absolute)
    parts = Path(absolute).parts[1:]  # the root is no name
    if not parts:
        return
    limit = " (the file system's limit)"
    for folder in parts[:-1]:
        check_name(folder, f"{what}: folder name", "depth", name_max, limit)
    if extra:
        limit = f" (the file system's limit of {name_max}, less {extra} for the lock file beside it)"
    check_name(parts[-1], f"{what}: file name", "depth.mp4", name_max - extra, limit)
    size = name_bytes(absolute)
    room = path_max - 1 - extra  # PATH_MAX counts the closing NUL
    if size > room:
        lock = f", less {extra} for the lock file beside it" if extra else ""
        raise BadInputError(f"{what}: the path {shown(absolute)} is {size} bytes long; at most {room} bytes "
                            f"(the system's limit of {path_max - 1} for a path{lock}); choose a shorter folder or name")
