"""Start-up checks of the files a run will write, before anything slow (the model load) happens.

* every file a sink writes (``file:``, ``npy:`` and its timestamps file) and the ``--stats-json``
  log must be creatable: no name in its path too long for the file system (``names.check_path_fits``,
  its lock file's name included), the folder exists and a file can be created in it (a read-only file
  system or a folder without write permission is found now, not when the first frame arrives);
  the path is not a folder;
* no two outputs may write one file, however its path is spelt (``./x.mp4`` and ``x.mp4``, a
  path through a symlinked folder, ``file:x.mkv`` and ``npy:x.mkv``): one of them would be lost.

``claim_outputs`` then holds a lock on each of those files for the whole run, so a second process
started on an output another live process is writing is refused (its frames would be lost and the
file left unreadable).

``remove_if_left_empty`` is the other half of leaving no trace of a failed run: a folder created
for outputs is removed again when nothing was written into it.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from pathlib import Path

import filelock

from io_adapters.file_sink import npy_target
from io_adapters.names import check_path_fits
from io_adapters.npy_stream import timestamps_path

from io_adapters.uri import parse_uri
from pipeline.errors import BadInputError

# The value of a path option that means the standard output (``--stats-json -``): no file.
STANDARD_STREAM = "-"
# An output's lock file is ".NAME" + LOCK_SUFFIX beside it: LOCK_NAME_EXTRA bytes longer than NAME.
LOCK_SUFFIX = ".rdstream-lock"
LOCK_NAME_EXTRA = len("." + LOCK_SUFFIX)


def sink_files(uri: str) -> list[Path]:
    """The files the sink ``uri`` writes (none for ``ndi:``, ``syphon:``, ``null:``)."""
    parsed = parse_uri(uri)
    if parsed.scheme == "file" and parsed.target:
        return [Path(parsed.target)]
    if parsed.scheme == "npy":
        target = npy_target(parsed)
        return [Path(target), timestamps_path(target)]
    return []


def check_writable_file(path: str | os.PathLike, what: str) -> None:
    """Raise BadInputError unless ``path`` can be created (or overwritten) as a file.

    ``what`` names the output in the message (a sink URI, an option). A probe file is created
    and removed in the folder, because only trying tells a read-only file system, a full inode
    table or a missing permission apart from a writable folder (root passes every access check).
    """
    path = Path(path)  # taken as written, like the sinks do (no ~ expansion inside a URI)
    folder = path.parent
    if path.is_dir():
        raise BadInputError(f"{what}: {path} is a folder; give a file name inside it")
    if not folder.is_dir():
        reason = "is not a folder" if folder.exists() else "does not exist"
        raise BadInputError(f"{what}: output folder {folder} {reason}")
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".rdstream-write-test-"):
            pass
        if path.exists() and not os.access(path, os.W_OK):
            raise PermissionError(13, "the file is read-only")
    except OSError as err:
        raise BadInputError(f"{what}: cannot write {path} ({err.strerror or err})") from None


def _same_file_key(path: Path) -> tuple:
    """One key per file, however it is spelt: an existing file's device and inode (so a symlink
    to it or a hard link is the same file); else the real folder (symlinks and '..' resolved, its
    device and inode, so bind mounts too) and the name (case-folded where file names ignore case)."""
    try:
        info = path.stat()
        return ("file", info.st_dev, info.st_ino)
    except OSError:
        pass
    folder = path.parent.resolve()
    name = path.name.casefold() if sys.platform in ("darwin", "win32") else path.name
    try:
        info = folder.stat()
        return (info.st_dev, info.st_ino, name)
    except OSError:
        return (str(folder), name)


def check_outputs(sink_uris: list[str], others: dict[str, str | None] | None = None) -> None:
    """Check every file output of a run before it starts (see the module docstring).

    Args:
        sink_uris: the ``--sink`` URIs.
        others: more files the run writes, option name -> path (None = not given), e.g.
            ``{"--stats-json": "stats.jsonl"}``.
    Raises:
        BadInputError: a path that cannot be written, or two outputs writing one file.
    """
    outputs: list[tuple[str, Path]] = [(uri, path) for uri in sink_uris for path in sink_files(uri)]
    outputs += _other_files(others)
    writers: dict[tuple, str] = {}
    for what, path in outputs:
        check_path_fits(path, what, extra=LOCK_NAME_EXTRA)  # the file and the lock file beside it
        check_writable_file(path, what)
        key = _same_file_key(path)
        if key in writers:
            raise BadInputError(f"{writers[key]} and {what} both write {path.resolve()}; "
                                "give each output its own file")
        writers[key] = what


def _other_files(others: dict[str, str | None] | None) -> list[tuple[str, Path]]:
    """(option, path) of the files named by other options; "-" is a standard stream (``--stats-json
    -``), not a file to check or to share."""
    return [(name, Path(path)) for name, path in (others or {}).items() if path not in (None, STANDARD_STREAM)]


def lock_path(path: str | os.PathLike) -> Path:
    """The advisory lock file of an output: hidden beside the real file (symlinks resolved), so
    every spelling of one output, and every process, meets the same lock."""
    real = Path(path).resolve()
    return real.with_name(f".{real.name}{LOCK_SUFFIX}")


@contextmanager
def _held_lock(path: Path, what: str) -> Iterator[None]:
    # filelock: flock on POSIX, LockFileEx on Windows. The operating system drops the lock when
    # its process dies, so the lock of a crashed or killed run never blocks the next one.
    lock = filelock.FileLock(str(lock_path(path)), timeout=0, thread_local=False)
    try:
        lock.acquire()
    except filelock.Timeout:
        holder = _holder_pid(lock.lock_file)
        raise BadInputError(f"{what}: {path} is being written by another running rdstream"
                            f"{f' (process {holder})' if holder else ''}; stop it or choose another file") from None
    except OSError as err:
        raise BadInputError(f"{what}: cannot lock {path} ({err.strerror or err})") from None
    try:
        with suppress(OSError):  # Windows refuses writes into a locked range: no pid there
            Path(lock.lock_file).write_text(str(os.getpid()))  # named in the refusal of a second run
        yield
    finally:
        if sys.platform != "win32":  # Windows cannot remove an open file; filelock removes it on release
            # Removed while still held, then released: a process that opens the file from now on
            # creates a new one. (One that opened the old file in the same microsecond could still
            # take it; the run is over by then.)
            with suppress(OSError):
                Path(lock.lock_file).unlink()
        lock.release()


def _holder_pid(lock_file: str) -> str:
    try:
        text = Path(lock_file).read_text().strip()
    except OSError:
        return ""
    return text if text.isdigit() else ""


@contextmanager
def claim_outputs(sink_uris: list[str], others: dict[str, str | None] | None = None) -> Iterator[None]:
    """Hold a lock on every file output of a run (the same arguments as ``check_outputs``, which
    ran first) until the run ends. Raises BadInputError, before anything is written, when another
    live process holds one of them."""
    outputs = [(uri, path) for uri in sink_uris for path in sink_files(uri)] + _other_files(others)
    with ExitStack() as stack:
        for what, path in outputs:
            stack.enter_context(_held_lock(path, what))
        yield


@contextmanager
def remove_if_left_empty(folder: str | os.PathLike) -> Iterator[None]:
    """Remove ``folder`` (and the parents created with it) on leaving when it did not exist
    before and is still empty: a run that failed or wrote nothing leaves no empty folder behind."""
    folder = Path(folder).expanduser().absolute()
    missing = []
    probe = folder
    while not probe.exists() and probe != probe.parent:
        missing.append(probe)
        probe = probe.parent
    try:
        yield
    finally:
        for created in missing:  # innermost first
            try:
                created.rmdir()  # only ever removes an empty folder
            except OSError:
                break
