"""``rdstream sources``: what can be opened as a source here, as text or JSON."""

from __future__ import annotations

import json

from io_adapters.registry import LISTED, list_sources


def format_sources(listing: dict) -> str:
    """Human-readable listing: one URI per line under each kind, then notes."""
    lines: list[str] = []
    for key, title in LISTED:
        lines.append(f"{title}:")
        entries = listing.get(key) or ["(none)"]
        lines.extend(f"  {entry}" for entry in entries)
    for note in listing.get("notes", []):
        lines.append(f"note: {note}")
    return "\n".join(lines)


def print_sources(as_json: bool = False, ndi_wait_s: float = 1.5, ndi_ips: str | None = None) -> dict:
    """Discover sources, print them (text or JSON) and return the listing dict."""
    listing = list_sources(ndi_wait_s=ndi_wait_s, ndi_ips=ndi_ips)
    print(json.dumps(listing, indent=2) if as_json else format_sources(listing))
    return listing
