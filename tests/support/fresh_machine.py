"""A simulated fresh GPU machine for ``bench/gpu_check.sh``'s install: a new virtual environment that
sees only the packages the GPU image has (no diffusers, no python-osc, no network).

The GPU image (docs/streaming.md, "GPU") carries torch, transformers, huggingface_hub, safetensors,
accelerate, numpy, scipy, matplotlib, rich, typer, anyio and pytest. Installing them into a venv
would take minutes, so the venv sees this interpreter's copies instead: a folder holding symbolic
links to exactly those distributions and their own requirements (``requirement_closure``), put on
the venv's path by a ``.pth`` file. Everything else this interpreter has stays invisible.

``wheel_from_installed`` packs an installed pure-Python distribution back into a wheel file, so the
install can be tested without a network (the test's stand-in for ``bench/gpu_wheels.sh``'s download).
"""

from __future__ import annotations

import importlib.metadata as metadata
import os
import subprocess
import sys
import zipfile
from pathlib import Path

from bench.gpu_install import IMAGE_PACKAGES, requirement_closure


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


def make_fresh_machine(folder: Path, packages=(*IMAGE_PACKAGES, "pip")) -> Path:
    """A venv under ``folder`` that sees only ``packages`` and their requirements (the image's python3
    has pip, which does the install); returns its python."""
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


def wheel_from_installed(name: str, folder: Path) -> Path:
    """An installed pure-Python distribution as ``NAME-VERSION-py3-none-any.whl`` in ``folder``: the
    files its RECORD lists (its .dist-info included), without byte code or scripts outside it."""
    dist = metadata.distribution(name)
    root = Path(dist.locate_file(""))
    wheel_name = f"{dist.metadata['Name'].replace('-', '_')}-{dist.version}-py3-none-any.whl"
    path = Path(folder) / wheel_name
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for file in dist.files or []:
            parts = Path(file).parts
            if parts[0] == ".." or "__pycache__" in parts or not (root / file).is_file():
                continue
            archive.write(root / file, Path(file).as_posix())
    return path
