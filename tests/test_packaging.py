"""pyproject.toml installs without setuptools deprecation warnings (the license is an SPDX string)."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_project_metadata_raises_no_setuptools_deprecation(monkeypatch):
    from setuptools.config.pyprojecttoml import apply_configuration
    from setuptools.dist import Distribution

    monkeypatch.chdir(ROOT)  # the readme and packages are found relative to the project
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dist = apply_configuration(Distribution(), os.fspath(ROOT / "pyproject.toml"))
    messages = [str(w.message).splitlines()[0] for w in caught if "deprecat" in str(w.message).lower()]
    assert not messages, messages
    assert dist.metadata.license_expression == "Apache-2.0"
