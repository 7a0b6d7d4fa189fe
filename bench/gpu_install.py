"""What ``bench/gpu_check.sh`` installs on a GPU machine without network, and where.

    python -m bench.gpu_install carried                   # NAME==VERSION per line: what bench/gpu_wheels.sh collects
    python -m bench.gpu_install plan WHEELS TARGET        # what would be installed (nothing is)
    python -m bench.gpu_install install WHEELS TARGET     # install it: pip --no-deps --no-index --target TARGET

The GPU image has torch, transformers, huggingface_hub, safetensors, accelerate, numpy, scipy,
matplotlib, rich, typer, anyio and pytest (``IMAGE_PACKAGES``), but not diffusers or python-osc.
Only what this interpreter lacks is installed, each distribution from its own wheel, without
resolving (``--no-deps``: none of the image's packages is replaced) into TARGET, a separate
folder the caller puts on ``PYTHONPATH``; never into the interpreter's own site-packages. What is
needed is read from the wheels: diffusers, python-osc and, recursively, the requirements of each
wheel installed that this interpreter lacks. diffusers lists importlib_metadata, but imports it
only on Python < 3.8 (``NOT_IMPORTED``), so it is not carried.

A problem with the wheel folder or the target is one line on stderr and exit code 2, before anything
is installed.
"""

from __future__ import annotations

import importlib.metadata as metadata
import os
import platform
import re
import site
import subprocess
import sys
import sysconfig
import zipfile
from email.parser import Parser
from pathlib import Path

#: What the GPU image has installed (its python3), by distribution name.
IMAGE_PACKAGES = ("torch", "transformers", "huggingface_hub", "safetensors", "accelerate", "numpy", "scipy",
                  "matplotlib", "rich", "typer", "anyio", "pytest")
#: What the check needs that the image lacks (their requirements follow from their wheels).
NEEDED = ("diffusers", "python-osc")
#: Requirements listed in a wheel's metadata that no import on Python >= 3.8 reaches.
NOT_IMPORTED = {"importlib-metadata": "diffusers imports it only on Python < 3.8", "zipp": "importlib_metadata's"}


class WheelError(Exception):
    """A wheel folder or target that cannot work: the message is the one line to print."""


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _installed(name: str) -> bool:
    try:
        metadata.distribution(name)
        return True
    except metadata.PackageNotFoundError:
        return False


def _requirements(texts, installed=_installed) -> list[str]:
    """Names among requirement lines (markers evaluated here, no extras) that ``installed`` lacks."""
    from packaging.requirements import Requirement

    out = []
    for text in texts or []:
        requirement = Requirement(text)
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
            continue
        name = canonical(requirement.name)
        if name not in NOT_IMPORTED and not installed(name):
            out.append(name)
    return out


def requirement_closure(names) -> dict[str, metadata.Distribution]:
    """The installed distributions ``names`` and everything they require (markers evaluated here,
    no extras), by canonical name; requirements not installed here are left out."""
    found: dict[str, metadata.Distribution] = {}
    todo = [canonical(n) for n in names]
    while todo:
        name = todo.pop()
        if name in found:
            continue
        try:
            found[name] = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        todo.extend(_requirements(found[name].requires, installed=lambda n: n in found))
    return found


def carried() -> list[str]:
    """NAME==VERSION of what a GPU machine with only ``IMAGE_PACKAGES`` lacks for the check: ``NEEDED``
    and their requirements, minus what the image's packages bring (versions as installed here)."""
    image = requirement_closure(IMAGE_PACKAGES)
    ours = requirement_closure(NEEDED)
    return sorted(f"{dist.metadata['Name']}=={dist.version}" for name, dist in ours.items()
                  if name not in image and name not in NOT_IMPORTED)


class Wheel:
    """One wheel file: its distribution, whether this interpreter can install it, its requirements."""

    def __init__(self, path: Path) -> None:
        from packaging.tags import sys_tags
        from packaging.utils import parse_wheel_filename

        self.path = path
        name, self.version, _, tags = parse_wheel_filename(path.name)
        self.name = canonical(name)
        with zipfile.ZipFile(path) as archive:
            info = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
            meta = Parser().parsestr(archive.read(info).decode("utf-8"))
        self.requires = meta.get_all("Requires-Dist") or []
        self.requires_python = meta.get("Requires-Python") or ""
        supported = set(sys_tags())
        self.tags_fit = any(tag in supported for tag in tags)

    def python_fits(self) -> bool:
        from packaging.specifiers import SpecifierSet

        return not self.requires_python or SpecifierSet(self.requires_python).contains(platform.python_version())

    def why_not(self) -> str:
        if not self.python_fits():
            return f"{self.path.name} needs Python {self.requires_python}"
        return f"{self.path.name} is built for another Python or platform"


def plan(wheels_dir: str | os.PathLike, explicit: bool = True) -> list[Wheel]:
    """The wheels to install for what this interpreter lacks (empty: nothing is missing).

    ``explicit`` False: the folder was not named, so a missing folder is an error only when
    something is missing. Raises ``WheelError`` with the one line to print."""
    folder = Path(wheels_dir)
    missing = [canonical(n) for n in NEEDED if not _installed(n)]
    if not missing and not explicit:
        return []
    lacks = f"this python lacks {', '.join(missing)}" if missing else "nothing is missing here"
    remedy = f"fill it with `bench/gpu_wheels.sh {folder}` on a machine with network and carry it"
    if not folder.is_dir():
        raise WheelError(f"the wheel folder {folder} does not exist ({lacks}): {remedy}")
    files = sorted(folder.glob("*.whl"))
    if not files:
        raise WheelError(f"the wheel folder {folder} holds no wheels (.whl) ({lacks}): {remedy}")
    by_name: dict[str, list[Wheel]] = {}
    for path in files:
        try:
            wheel = Wheel(path)
        except Exception as err:  # a broken or foreign file: name it
            raise WheelError(f"{path} is not a readable wheel ({type(err).__name__}): {remedy}") from None
        by_name.setdefault(wheel.name, []).append(wheel)

    def fitting(name: str, why: str) -> Wheel:
        candidates = by_name.get(name, [])
        fit = [w for w in candidates if w.tags_fit and w.python_fits()]
        if not fit and candidates:
            raise WheelError(f"{folder} has no wheel of {name} for this Python {platform.python_version()} "
                             f"({candidates[0].why_not()}; {why}): run bench/gpu_wheels.sh with this Python "
                             f"(PYTHON=...)")
        if not fit:
            raise WheelError(f"{folder} has no wheel of {name} ({why}; {lacks}): {remedy}")
        return fit[-1]

    for name in NEEDED:  # a named folder must serve a machine that lacks them, whatever this one has
        fitting(canonical(name), "needed by the GPU check")
    chosen: dict[str, Wheel] = {}
    todo, why = list(missing), {name: "needed by the GPU check" for name in missing}
    while todo:
        name = todo.pop(0)
        if name in chosen:
            continue
        chosen[name] = fitting(name, why[name])
        for requirement in _requirements(chosen[name].requires):
            if requirement not in chosen:
                why.setdefault(requirement, f"{name} needs it")
                todo.append(requirement)
    return list(chosen.values())


def own_site_packages() -> list[Path]:
    """This interpreter's own install folders (where ``--target`` must never point)."""
    paths = {sysconfig.get_paths()[key] for key in ("purelib", "platlib")}
    paths.update(getattr(site, "getsitepackages", lambda: [])())
    user = getattr(site, "getusersitepackages", lambda: None)()
    if user:
        paths.add(user)
    return [Path(p).resolve() for p in paths]


def check_target(target: str | os.PathLike) -> Path:
    """``target`` resolved; ``WheelError`` when it is (or lies inside) the interpreter's site-packages."""
    resolved = Path(target).resolve()
    for own in own_site_packages():
        if resolved == own or own in resolved.parents:
            raise WheelError(f"refusing to install into {target}: it is this python's own site-packages ({own}); "
                             "use a separate folder on PYTHONPATH")
    return resolved


def pip_command(wheels: list[Wheel], target: Path) -> list[str]:
    return [sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "--no-compile",
            "--disable-pip-version-check", "--target", str(target), *(str(w.path) for w in wheels)]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["carried"]:
        print("\n".join(carried()))
        return 0
    if len(argv) not in (3, 4) or argv[0] not in ("plan", "install"):
        print("usage: python -m bench.gpu_install carried | plan|install WHEELS TARGET [--implicit]", file=sys.stderr)
        return 2
    action, wheels_dir, target = argv[:3]
    try:
        resolved = check_target(target)
        wheels = plan(wheels_dir, explicit="--implicit" not in argv)
    except WheelError as err:
        print(f"gpu_check: {err}", file=sys.stderr)
        return 2
    if not wheels:
        print(f"installs nothing: {', '.join(NEEDED)} are already importable")
        return 0
    print(f"installs into {target} (on PYTHONPATH; --no-deps, never over this python's packages): "
          + ", ".join(f"{w.name} {w.version}" for w in wheels))
    if action == "plan":
        return 0
    resolved.mkdir(parents=True, exist_ok=True)
    return subprocess.run(pip_command(wheels, resolved)).returncode


if __name__ == "__main__":
    raise SystemExit(main())
