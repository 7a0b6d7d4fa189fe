"""The project's set-up on every OS, standard library only: `python3 tasks.py demo|test|bench`
(on Windows `py tasks.py demo|test|bench`). The Makefile calls it, so `make demo` / `make test`
on Linux and macOS are the same thing.

It creates .venv when it is missing, installs the torch build that suits this machine and then
the project (editable, with its dev extras), and runs the demo, the tests or the benchmarks.
The install is skipped while .venv/.installed is newer than pyproject.toml and the venv's
Python (as make's rule did) and was made for the same torch choice.

Which torch (printed, with the reason):
  * Windows or Linux with an NVIDIA GPU (nvidia-smi answers): the CUDA build from the PyTorch
    wheel index matching the driver's CUDA version (the registry's default wheel is CPU-only on
    Windows);
  * macOS: the registry's default wheel (it includes Apple's MPS backend);
  * otherwise: the pinned CPU wheel, as before.
  RDSTREAM_TORCH overrides: "cpu", "cuda", "default", a pip requirement ("torch==2.5.1") or
  "installed" (keep the torch already in .venv); RDSTREAM_TORCH_INDEX overrides the CUDA index.

`--dry-run` prints what it would run (venv, pip lines, command) and runs nothing.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
STAMP = VENV / ".installed"
# Pinned: the CPU wheel of this version is available offline on our build machines.
TORCH_VERSION = "2.13.0"
TORCH_PIN = f"torch=={TORCH_VERSION}"
CUDA_INDEX_ROOT = "https://download.pytorch.org/whl/"
# PyTorch's CUDA wheel indexes, newest first, with the lowest driver CUDA version each needs.
CUDA_INDEXES = (("cu130", (13, 0)), ("cu128", (12, 8)), ("cu126", (12, 6)))
KNOWN_PLATFORMS = ("linux", "win32", "darwin")
BENCH_MODULES = ("bench.offline", "bench.coalign", "bench.io", "bench.stream", "bench.live_cost", "bench.monitor")


class SetupError(Exception):
    """A problem the user can fix; main() prints it as one line."""


@dataclass(frozen=True)
class TorchChoice:
    """What to install for torch: a pip requirement (None = keep what is there), an extra
    index URL (None = the default registry) and the reason, said to the user."""

    requirement: str | None
    index_url: str | None
    reason: str

    def describe(self) -> str:
        what = "keep the torch already in .venv" if self.requirement is None else self.requirement
        where = f" from {self.index_url}" if self.index_url else ""
        return f"{what}{where}"


def venv_python(venv: Path = VENV, platform: str = sys.platform) -> Path:
    return venv / ("Scripts/python.exe" if platform == "win32" else "bin/python")


def nvidia_gpu(run=subprocess.run, which=shutil.which) -> tuple[str, tuple[int, int] | None] | None:
    """(GPU name, driver CUDA version) when nvidia-smi finds an NVIDIA GPU, else None."""
    smi = which("nvidia-smi")
    if smi is None:
        return None
    try:
        result = run([smi], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return None
    if result.returncode != 0:
        return None  # installed but no GPU or no driver
    version = re.search(r"CUDA Version:\s*(\d+)\.(\d+)", result.stdout)
    names = _gpu_names(run, smi)
    return (names or "an NVIDIA GPU"), ((int(version.group(1)), int(version.group(2))) if version else None)


def _gpu_names(run, smi: str) -> str | None:
    try:
        result = run([smi, "--query-gpu=name", "--format=csv,noheader"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return None
    names = [line.strip() for line in result.stdout.splitlines() if line.strip()] if result.returncode == 0 else []
    return ", ".join(names) or None


def cuda_index(driver_cuda: tuple[int, int] | None, env: dict) -> str:
    """The CUDA wheel index for a driver's CUDA version (newest the driver can run)."""
    if env.get("RDSTREAM_TORCH_INDEX"):
        return env["RDSTREAM_TORCH_INDEX"]
    if driver_cuda is None:  # nvidia-smi did not say: the oldest index asks the least of the driver
        return CUDA_INDEX_ROOT + CUDA_INDEXES[-1][0]
    for tag, needs in CUDA_INDEXES:
        if driver_cuda >= needs:
            return CUDA_INDEX_ROOT + tag
    oldest = CUDA_INDEXES[-1][1]
    raise SetupError(f"the NVIDIA driver supports CUDA {driver_cuda[0]}.{driver_cuda[1]}, and torch {TORCH_VERSION} needs "
                     f"CUDA {oldest[0]}.{oldest[1]} or later: update the NVIDIA driver, or set RDSTREAM_TORCH=cpu")


def choose_torch(platform: str = sys.platform, env: dict | None = None, gpu=nvidia_gpu) -> TorchChoice:
    """The torch build for this machine (see the module docstring). ``gpu()`` is nvidia_gpu."""
    env = os.environ if env is None else env
    override = env.get("RDSTREAM_TORCH", "").strip()
    if override:
        key = override.lower()
        if key == "installed":
            return TorchChoice(None, None, "RDSTREAM_TORCH=installed")
        if key in ("cpu", "default"):
            return TorchChoice(TORCH_PIN, None, f"RDSTREAM_TORCH={override}")
        if key == "cuda":
            found = gpu()
            return TorchChoice(TORCH_PIN, cuda_index(found[1] if found else None, env), "RDSTREAM_TORCH=cuda")
        return TorchChoice(override, env.get("RDSTREAM_TORCH_INDEX") or None, f"RDSTREAM_TORCH={override}")
    if platform not in KNOWN_PLATFORMS:
        raise SetupError(f"unknown platform {platform!r}: install torch into .venv yourself "
                         f"(https://pytorch.org/get-started/locally/), then run again with RDSTREAM_TORCH=installed")
    if platform == "darwin":
        return TorchChoice(TORCH_PIN, None, "macOS: the default wheel includes the MPS (Apple GPU) backend")
    found = gpu()
    if found is not None:
        name, driver_cuda = found
        cuda = f"driver CUDA {driver_cuda[0]}.{driver_cuda[1]}" if driver_cuda else "driver CUDA version unknown"
        return TorchChoice(TORCH_PIN, cuda_index(driver_cuda, env), f"nvidia-smi found {name} ({cuda})")
    return TorchChoice(TORCH_PIN, None, "no NVIDIA GPU found by nvidia-smi: the pinned CPU wheel")


def project_extras(platform: str = sys.platform) -> str:
    return {"win32": "dev,spout", "darwin": "dev,syphon"}.get(platform, "dev")


def install_commands(python: Path, choice: TorchChoice, platform: str = sys.platform) -> list[list[str]]:
    """The pip command lines of an install into the venv whose interpreter is ``python``."""
    pip = [str(python), "-m", "pip", "install", "--quiet"]
    commands = [pip + ["--upgrade", "pip"]]
    if choice.requirement is not None:
        commands.append(pip + [choice.requirement] + (["--index-url", choice.index_url] if choice.index_url else []))
    commands.append(pip + ["-e", f".[{project_extras(platform)}]"])
    return commands


def task_command(task: str, python: Path, extra: list[str]) -> list[list[str]]:
    if task == "demo":
        return [[str(python), "-m", "stream.cli.demo", *extra]]
    if task == "test":
        return [[str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider", *extra]]
    if task == "bench":
        return [[str(python), "-m", module, *extra] for module in BENCH_MODULES]
    return []  # setup: nothing to run afterwards


def install_needed(choice: TorchChoice, platform: str = sys.platform) -> bool:
    """As make's rule: stamp missing or older than pyproject.toml or the venv's Python; also
    when the stamp records another torch choice (an empty stamp, as make wrote it, matches)."""
    python = venv_python(VENV, platform)
    if not STAMP.exists() or not python.exists():
        return True
    stamp_time = STAMP.stat().st_mtime
    if stamp_time < max((ROOT / "pyproject.toml").stat().st_mtime, python.stat().st_mtime):
        return True
    recorded = STAMP.read_text(encoding="utf-8").strip()
    return bool(recorded) and recorded != choice.describe()


def check_venv_module() -> None:
    if importlib.util.find_spec("venv") is None or importlib.util.find_spec("ensurepip") is None:
        raise SetupError("this Python cannot create virtual environments (no venv/ensurepip module): on Debian/Ubuntu "
                         "run `sudo apt install python3-venv`; on Windows or macOS install Python from python.org")


def check_index_reachable(index_url: str, timeout_s: float = 15.0) -> None:
    """Fail early, in one line, when the CUDA wheel index cannot be reached (pip would retry for minutes)."""
    import urllib.error  # here: its import costs a few hundred ms that a no-op `make test` should not pay
    import urllib.request

    try:
        with urllib.request.urlopen(index_url.rstrip("/") + "/torch/", timeout=timeout_s):
            pass
    except (urllib.error.URLError, OSError, ValueError) as err:
        reason = getattr(err, "reason", err)
        raise SetupError(f"cannot reach the CUDA torch index {index_url} ({reason}): connect to the internet and run "
                         f"again, or set RDSTREAM_TORCH=cpu for the CPU build") from None


def run(command: list[str]) -> int:
    """Run a command in the repository; a Ctrl-C reaches the child too, so wait for it to stop."""
    process = subprocess.Popen(command, cwd=ROOT)
    while True:
        try:
            return process.wait()
        except KeyboardInterrupt:
            continue


def main(argv: list[str]) -> int:
    dry_run = "--dry-run" in argv[:1] or "--dry-run" in argv[1:2]
    args = [a for i, a in enumerate(argv) if not (a == "--dry-run" and i < 2)]
    if not args or args[0] not in ("setup", "demo", "test", "bench"):
        print("usage: python3 tasks.py [--dry-run] setup|demo|test|bench [arguments for the demo or pytest]"
              "  (Windows: py tasks.py ...)", file=sys.stderr)
        return 2
    task, extra = args[0], args[1:]
    python = venv_python()
    try:
        choice = choose_torch()
        needed = dry_run or install_needed(choice)
        if needed:
            print(f"torch: {choice.describe()} ({choice.reason})", flush=True)
        if dry_run:
            print(" ".join([sys.executable, "-m", "venv", str(VENV)]))
            for command in install_commands(python, choice) + task_command(task, python, extra):
                print(" ".join(command))
            return 0
        if needed:
            check_venv_module()
            if choice.index_url:
                check_index_reachable(choice.index_url)
            if not python.exists():
                if run([sys.executable, "-m", "venv", str(VENV)]) != 0:
                    raise SetupError(f"could not create {VENV}: on Debian/Ubuntu run `sudo apt install python3-venv`")
            for command in install_commands(python, choice):
                if run(command) != 0:
                    raise SetupError(f"the install failed (pip said why above): {' '.join(command)}")
            STAMP.write_text(choice.describe() + "\n", encoding="utf-8")
    except SetupError as err:
        print(f"tasks.py: error: {err}", file=sys.stderr)
        return 1
    for command in task_command(task, python, extra):
        code = run(command)
        if code != 0:
            return code
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
