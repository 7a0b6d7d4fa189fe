"""ndi-python: whether it is installed (without importing it) and loading it once per process."""

from __future__ import annotations

import importlib.util

from pipeline.errors import RuntimeFailure

def _ndi_missing() -> RuntimeFailure:
    return RuntimeFailure(
        "ndi: URIs need the ndi-python package: pip install 'rollingdepth-stream[ndi]' (Linux x86_64, macOS arm64)"
    )


def check_ndi_installed() -> None:
    """RuntimeFailure when ndi-python is not installed; looks for it without importing it."""
    if importlib.util.find_spec("NDIlib") is None:
        raise _ndi_missing()


def load_ndi():
    """Import ndi-python and initialise the SDK; RuntimeFailure with the fix when it cannot."""
    try:
        import NDIlib as ndi
    except ImportError:
        raise _ndi_missing() from None
    if not ndi.initialize():
        raise RuntimeFailure("the NDI library failed to initialise (unsupported CPU?); ndi: URIs are unavailable")
    return ndi
