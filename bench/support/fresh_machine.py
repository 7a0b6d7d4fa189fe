"""A simulated fresh GPU machine for ``bench/gpu_check.sh``'s install: a new virtual environment that
sees only the packages the GPU image has (no diffusers, no python-osc, no network).

The GPU image (docs/streaming.md, "GPU") carries torch, transformers, huggingface_hub, safetensors,
accelerate, numpy, scipy, matplotlib, rich, typer, anyio and pytest. Installing them into a venv
would take minutes, so the venv sees this interpreter's copies instead: a folder holding symbolic
links to exactly those distributions and their own requirements (``requirement_closure``), put on
the venv's path by a ``.pth`` file. Everything else this interpreter has stays invisible.
"""

from __future__ import annotations

import importlib.metadata as metadata
import os
import re
import subprocess
import sys
from pathlib import Path

#: What the GPU image has installed (its python3), by distribution name.
IMAGE_PACKAGES = ("torch", "transformers", "huggingface_hub", "safetensors", "accelerate", "numpy", "scipy",
                  "matplotlib", "rich", "typer", "anyio", "pytest")


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_closure(names) -> dict[str, metadata.Distribution]:
    """The distributions ``names`` and everything they require (markers evaluated here, no extras),
    by canonical name; requirements not installed here are left out."""
    from packaging.requirements import Requirement

    found: dict[str, metadata.Distribution] = {}
    todo = list(names)
    while todo:
        name = _canonical(todo.pop())
        if name in found:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        found[name] = dist
        for text in dist.requires or []:
            requirement = Requirement(text)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(requirement.name)
    return found


def _top_level(dist: metadata.Distribution) -> set[Path]:
    """The paths a distribution puts directly into site-packages (its packages, modules, dist-info)."""
    root = Path(dist.locate_file(""))
    tops = set()
    for file in dist.files or []:
        parts = Path(file).parts
        if parts and parts[0] != ".." and not parts[0].endswith(".pth"):
            tops.add(root / parts[0])
    tops.add(Path(dist._path))  # its .dist-info folder
    return {path for path in tops if path.exists()}


def make_fresh_machine(folder: Path, packages=IMAGE_PACKAGES) -> Path:
    """A venv under ``folder`` that sees only ``packages`` and their requirements; returns its python."""
    folder = Path(folder)
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder / "venv")], check=True)
    image = folder / "image-site-packages"
    image.mkdir()
    for dist in requirement_closure(packages).values():
        for path in _top_level(dist):
            link = image / path.name
            if not link.exists():
                link.symlink_to(path)
    python = folder / "venv" / ("Scripts" if os.name == "nt" else "bin") / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    Path(site, "gpu-image.pth").write_text(f"{image}\n")
    return python
