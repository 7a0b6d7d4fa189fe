"""A live node must not depend on its console: when the reader of stdout or stderr goes away
(``rdstream run ... | head -1``, a closed terminal, a log collector that died), what went there is
dropped and the stream and its files go on.

Python ignores SIGPIPE, so a write to a closed pipe raises BrokenPipeError (EPIPE). ``guard_console``
wraps sys.stdout and sys.stderr so that such a write is swallowed; the file descriptor is then
pointed at the null device, so later writes (ours, a library's, Python's own flush at exit) cost
nothing and fail nowhere.
"""

from __future__ import annotations

import errno
import os
import sys
from collections.abc import Callable

# Errors that mean "nobody reads this any more", not a bug of ours.
_GONE = (errno.EPIPE, errno.ECONNRESET, errno.EIO, errno.EBADF)


def is_reader_gone(err: BaseException) -> bool:
    return isinstance(err, BrokenPipeError) or (isinstance(err, OSError) and err.errno in _GONE)


def drop_further_writes(stream) -> None:
    """Point ``stream``'s file descriptor at the null device (its unflushed bytes go there too)."""
    try:
        fd = stream.fileno()
        null = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(null, fd)
        finally:
            os.close(null)
    except (OSError, ValueError, AttributeError):
        pass


class PipeSafeStream:
    """A text stream whose writes never raise because the reader went away.

    on_gone(name) is called once, when the first write finds the reader gone.
    """

    def __init__(self, stream, name: str, on_gone: Callable[[str], None] | None = None) -> None:
        self._stream = stream
        self.name_for_messages = name
        self.on_gone = on_gone
        self.gone = False

    def write(self, text: str) -> int:
        if not self.gone:
            try:
                return self._stream.write(text)
            except OSError as err:
                if not is_reader_gone(err):
                    raise
                self._lost()
        return len(text)

    def flush(self) -> None:
        if not self.gone:
            try:
                self._stream.flush()
            except OSError as err:
                if not is_reader_gone(err):
                    raise
                self._lost()

    def _lost(self) -> None:
        self.gone = True
        drop_further_writes(self._stream)
        if self.on_gone is not None:
            self.on_gone(self.name_for_messages)

    def __getattr__(self, name: str):  # isatty, fileno, encoding, ... of the real stream
        return getattr(self._stream, name)


def guard_console() -> None:
    """Make sys.stdout and sys.stderr pipe-safe (idempotent). A closed stdout is said once on
    stderr; a closed stderr cannot be said anywhere without spoiling stdout, so it is dropped."""
    if isinstance(sys.stdout, PipeSafeStream) or sys.stdout is None or sys.stderr is None:
        return

    def tell_stderr(name: str) -> None:
        sys.stderr.write(f"rdstream: {name} was closed by its reader; what goes there is dropped, the run goes on\n")

    sys.stderr = PipeSafeStream(sys.stderr, "stderr")
    sys.stdout = PipeSafeStream(sys.stdout, "stdout", on_gone=tell_stderr)
