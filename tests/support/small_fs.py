"""Small tmpfs mounts for tests of full and read-only file systems (root only; skipped otherwise)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


@contextmanager
def small_tmpfs(folder: Path, size_kb: int = 1024, read_only: bool = False, fill: bool = False) -> Iterator[Path]:
    """Mount a ``size_kb`` tmpfs on ``folder`` (created) for the block; always unmounted after.

    read_only: remount it read-only. fill: leave no free block (an empty file can still be
    created, as on a real full disk, but no data fits).
    """
    if not hasattr(os, "geteuid") or os.geteuid() != 0:  # no geteuid on Windows
        pytest.skip("mounting a small tmpfs (full or read-only file system) needs root")
    folder.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(folder)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        if fill:
            with open(folder / "filler", "wb", buffering=0) as filler:
                try:
                    while filler.write(b"\0" * 4096):
                        pass
                except OSError:
                    pass
        if read_only:
            subprocess.run(["mount", "-o", "remount,ro", str(folder)], check=True, capture_output=True)
        yield folder
    finally:
        if subprocess.run(["umount", str(folder)], capture_output=True).returncode != 0:
            # Something still holds a file there (a failing test): detach it anyway, never leak a mount.
            subprocess.run(["umount", "-l", str(folder)], capture_output=True)
