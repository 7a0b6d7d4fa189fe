"""``rdstream sources``: list what this machine can open as a source."""

from __future__ import annotations

from typing import Optional

import typer

# Sources that answer at all answer within a second or two; a longer wait is a typo (1e9).
MAX_NDI_WAIT_S = 60.0


def sources_command(
    as_json: bool = typer.Option(False, "--json", help="print JSON instead of text"),
    ndi_wait: float = typer.Option(1.5, "--ndi-wait", metavar="SECONDS", help="seconds to listen for NDI sources"),
    ndi_ips: Optional[str] = typer.Option(None, "--ndi-ips", metavar="IPS", help="extra IPs to ask for NDI sources, comma-separated"),
) -> int:
    """List the cameras, NDI sources, Syphon servers and Spout senders this machine can open as sources."""
    import math

    from pipeline.errors import BadInputError

    if not (math.isfinite(ndi_wait) and 0 <= ndi_wait <= MAX_NDI_WAIT_S):
        raise BadInputError(f"--ndi-wait {ndi_wait:g}: must be 0 to {MAX_NDI_WAIT_S:g} seconds")
    from io_adapters.listing import print_sources

    print_sources(as_json=as_json, ndi_wait_s=ndi_wait, ndi_ips=ndi_ips)
    return 0
