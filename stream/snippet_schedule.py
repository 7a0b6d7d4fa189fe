"""Which snippets a streaming node runs when a new frame arrives (SPEC.md section 8)."""

from __future__ import annotations


def snippets_ending_at(newest: int, dilations: tuple[int, ...], snip_len: int) -> list[tuple[int, ...]]:
    """Frame indices of one snippet per dilation that ends at ``newest``.

    For dilation d the snippet is (newest - (L-1)d, ..., newest - d, newest). Early in the stream
    only the dilations that fit (first index >= 0) are used. Indices count processed frames.
    Returns the snippets in the order of ``dilations``, each a tuple of L increasing indices.
    """
    if snip_len < 1 or any(d < 1 for d in dilations):
        raise ValueError(f"need snippet length >= 1 and dilations >= 1, got {snip_len}, {dilations}")
    out = []
    for d in dilations:
        first = newest - (snip_len - 1) * d
        if first >= 0:
            out.append(tuple(range(first, newest + 1, d)))
    return out


def first_snippet_for_short_stream(count: int) -> tuple[int, ...]:
    """When a stream ends before any full snippet fit, one snippet of all its ``count`` frames."""
    return tuple(range(count))
