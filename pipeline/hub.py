"""Hugging Face hub folders: telling a hub id from a path, and fetching a snapshot (cache first).

Shared by the checkpoint and the tiny autoencoder (``--decoder`` / ``--encoder``); imports no other
pipeline module but the errors, so every loader can use it without importing the others.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.errors import BadInputError


def is_hub_id(text: str) -> bool:
    """``owner/name`` that is not an existing path: a Hugging Face hub id (checkpoints, autoencoders)."""
    return not Path(text).exists() and text.count("/") == 1 and not text.startswith((".", "/", "~"))


def fetch_snapshot(hub_id: str, allow_download: bool, not_cached: str, failed: str,
                   patterns: list[str] | None = None) -> Path:
    """The local snapshot of ``hub_id``: the Hugging Face cache first, else a download (a tqdm
    progress bar per file) when ``allow_download``. Failures are BadInputError: ``not_cached``
    when downloading is not allowed, ``failed`` (with ``{reason}``, the first line of the
    library's error) when the download fails."""
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(hub_id, local_files_only=True, allow_patterns=patterns))
    except Exception:
        if not allow_download:
            raise BadInputError(not_cached) from None
    try:
        return Path(snapshot_download(hub_id, allow_patterns=patterns))
    except Exception as err:
        reason = str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
        raise BadInputError(failed.format(reason=reason)) from None
