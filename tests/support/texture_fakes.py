"""Fixtures that stand the fakes in tests/fakes/ (SpoutGL, syphon-python) in for the real
libraries on the platforms that lack them; on Windows / macOS the real library is used instead."""

from __future__ import annotations

import importlib
import sys

import pytest

from tests.conftest import ROOT

FAKES = ROOT / "tests" / "fakes"


def forget_spout_modules():
    """Drop an imported SpoutGL, so that the next import finds the fake or the real one anew."""
    for name in [n for n in sys.modules if n == "SpoutGL" or n.startswith("SpoutGL.")]:
        del sys.modules[name]


@pytest.fixture
def fake_spout(monkeypatch):
    if sys.platform == "win32":
        pytest.skip("Windows has the real SpoutGL; the fake is for other platforms")
    forget_spout_modules()
    monkeypatch.syspath_prepend(str(FAKES))
    fake = importlib.import_module("SpoutGL")
    fake.reset()
    yield fake
    forget_spout_modules()


def forget_syphon_modules():
    """Drop an imported syphon, so that the next import finds the fake or the real one anew."""
    for name in [n for n in sys.modules if n == "syphon" or n.startswith("syphon.")]:
        del sys.modules[name]


@pytest.fixture
def fake_syphon(monkeypatch):
    if sys.platform == "darwin":
        pytest.skip("macOS has the real syphon-python; the fake is for other platforms")
    forget_syphon_modules()
    monkeypatch.syspath_prepend(str(FAKES))
    fake = importlib.import_module("syphon")
    fake.reset()
    yield fake
    forget_syphon_modules()
