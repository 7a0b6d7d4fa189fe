"""The project's set-up on every OS, standard library only: `python3 tasks.py demo|test|bench|run`
(on Windows `py tasks.py demo|test|bench|run`). The Makefile calls it, so `make demo` / `make test`
on Linux and macOS are the same thing.

It creates .venv when it is missing, installs the torch build that suits this machine and then
the project (editable, with its dev extras), and runs the demo, the tests, the benchmarks or
`rdstream` itself (`run ARGS`: the rdstream of .venv, without activating it).
The install is skipped while .venv/.installed is newer than pyproject.toml and the venv's
Python (as make's rule did) and was made for the same torch choice.

Which torch (printed, with the reason):
  * Windows or Linux with an NVIDIA GPU (nvidia-smi answers): the CUDA build from the PyTorch
    wheel index matching the driver's CUDA version (the registry's default wheel is CPU-only on
    Windows);
  * macOS: the registry's default wheel (it includes Apple's MPS backend);
  * otherwise: the pinned CPU wheel, as before.
  RDSTREAM_TORCH overrides: "cpu", "cuda", "default", one torch requirement ("torch==2.5.1",
  "torch>=2.4,<2.14": no spaces, no pip options, no URLs) or "installed" (keep the torch already
  in .venv); RDSTREAM_TORCH_INDEX (an https URL) overrides the CUDA index. Anything else is one
  line and exit 2: these values reach pip, so they are checked, not passed through.

`--dry-run` prints what it would run (venv and pip lines only when an install is due, then the
command) and runs nothing. Text read from the environment or from nvidia-smi is printed with its
control characters escaped (a terminal must not act on them).
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
from urllib.parse import urlsplit

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
TASKS = ("setup", "demo", "test", "bench", "run")
TORCH_KEYWORDS = ("cpu", "cuda", "default", "installed")
# One torch requirement as pip reads it, strictly: the name and optional version clauses
# (PEP 440 operators; versions of digits, letters, . + ! * - _), no spaces, options or URLs.
_VERSION_CLAUSE = r"(?:===|==|!=|~=|<=|>=|<|>)[0-9][0-9A-Za-z.+!*_-]*"
TORCH_REQUIREMENT = re.compile(rf"torch(?:{_VERSION_CLAUSE}(?:,{_VERSION_CLAUSE})*)?", re.IGNORECASE)
# An https URL of printable ASCII without spaces (pip's --index-url).
INDEX_URL = re.compile(r"https://[!-~]+")
# A GPU in `nvidia-smi -L`: "GPU 0: NVIDIA GeForce RTX 4090 (UUID: GPU-...)"; older product lines
# were named without the NVIDIA prefix. Printable ASCII only.
GPU_LINE = re.compile(r"GPU \d+: (?P<name>(?:NVIDIA|Tesla|Quadro|GeForce|TITAN)\b[ -~]{0,80}?)(?: \(UUID:[ -~]*\))?")
USAGE = "usage: python3 tasks.py [--dry-run] setup|demo|test|bench|run [arguments]  (Windows: py tasks.py ...)"
HELP = f"""{USAGE}

  setup   create .venv (when missing) and install torch and the project into it
  demo    set up, then run the demo (what `make demo` does)
  test    set up, then run the tests; the arguments go to pytest, e.g. test -k osc
  bench   set up, then run the benchmarks
  run     set up, then run rdstream from .venv with the arguments, e.g. run sources
          (the same as .venv/bin/rdstream, or .venv\\Scripts\\rdstream on Windows)

  --dry-run  print what would run (nothing to install when .venv is up to date), run nothing

The install runs only when .venv is missing or older than pyproject.toml. Environment:
  RDSTREAM_TORCH=cpu|cuda|default|installed|torch==VERSION  which torch to install
  RDSTREAM_TORCH_INDEX=https://...                          the CUDA wheel index to use"""
BENCH_MODULES = ("bench.offline", "bench.coalign", "bench.io", "bench.stream", "bench.live_cost", "bench.monitor")


class SetupError(Exception):
    """A problem the user can fix; main() prints it as one line (exit 1)."""


class BadSettingError(SetupError):
    """An environment variable holds a value tasks.py does not accept (exit 2)."""


def printable(text: str) -> str:
    """``text`` with every control or other non-printable character escaped (\\x1b, \\u202e):
    what comes from the environment or a subprocess never reaches the terminal raw."""
    return "".join(ch if ch.isprintable() else (f"\\x{ord(ch):02x}" if ord(ch) < 256 else f"\\u{ord(ch):04x}")
                   for ch in text)


def torch_override(env) -> str | None:
    """RDSTREAM_TORCH, checked: a keyword (lower case), one torch requirement, or None when unset."""
    value = env.get("RDSTREAM_TORCH", "").strip()
    if not value:
        return None
    if value.lower() in TORCH_KEYWORDS:
        return value.lower()
    if TORCH_REQUIREMENT.fullmatch(value):
        return value
    raise BadSettingError(f"RDSTREAM_TORCH='{printable(value)}' is not one of {', '.join(TORCH_KEYWORDS)} or one torch "
                          f"requirement such as torch==2.5.1 or torch>=2.4,<2.14 (no spaces, pip options or URLs)")


def index_override(env) -> str | None:
    """RDSTREAM_TORCH_INDEX, checked: an https URL without spaces or control characters, or None when unset."""
    value = env.get("RDSTREAM_TORCH_INDEX", "")
    if not value.strip():
        return None
    if not INDEX_URL.fullmatch(value) or not urlsplit(value).hostname:
        raise BadSettingError(f"RDSTREAM_TORCH_INDEX='{printable(value)}' is not an https URL without spaces, "
                              f"e.g. {CUDA_INDEX_ROOT}cu128")
    return value


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
    """(GPU names, driver CUDA version) when ``nvidia-smi -L`` names an NVIDIA GPU, else None: an
    nvidia-smi that answers without naming one (no driver, no GPU, something else) is no GPU."""
    smi = which("nvidia-smi")
    if smi is None:
        return None
    names = gpu_names(_output_of(run, [smi, "-L"]))
    if not names:
        return None
    version = re.search(r"CUDA Version:\s*(\d+)\.(\d+)", _output_of(run, [smi]))
    return ", ".join(names), ((int(version.group(1)), int(version.group(2))) if version else None)


def gpu_names(listing: str) -> list[str]:
    """The GPU names in ``nvidia-smi -L`` output (lines that do not name one are ignored)."""
    found = (GPU_LINE.fullmatch(line.strip()) for line in listing.splitlines())
    return [match.group("name") for match in found if match]


def _output_of(run, command: list[str]) -> str:
    """A command's stdout, or "" when it cannot run or fails."""
    try:
        result = run(command, capture_output=True, text=True, timeout=20, errors="replace")
    except (OSError, subprocess.SubprocessError):
        return ""
    return result.stdout if result.returncode == 0 else ""


def cuda_index(driver_cuda: tuple[int, int] | None, env: dict) -> str:
    """The CUDA wheel index for a driver's CUDA version (newest the driver can run)."""
    given = index_override(env)
    if given:
        return given
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
    override = torch_override(env)  # both checked first: a bad value is refused whatever the machine
    index = index_override(env)
    if override is not None:
        if override == "installed":
            return TorchChoice(None, None, "RDSTREAM_TORCH=installed")
        if override in ("cpu", "default"):
            return TorchChoice(TORCH_PIN, None, f"RDSTREAM_TORCH={override}")
        if override == "cuda":
            found = gpu()
            return TorchChoice(TORCH_PIN, cuda_index(found[1] if found else None, env), "RDSTREAM_TORCH=cuda")
        return TorchChoice(override, index, f"RDSTREAM_TORCH={override}")
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


#: Test processes (pytest-xdist), one file each at a time. Alone, the suite keeps about one core of two
#: busy (paced test sources, processes starting, sockets): two workers on two cores take about 60 % of
#: its time. More than two would crowd the heavier tests' torch threads.
TEST_WORKERS = 2


def test_workers(extra: list[str]) -> list[str]:
    """pytest-xdist's options for ``test``, unless the arguments choose (``-n 0``: one process)."""
    if any(a.startswith(("-n", "--numprocesses", "--dist")) for a in extra):
        return []
    workers = min(TEST_WORKERS, os.cpu_count() or 1)
    return ["-n", str(workers), "--dist", "loadfile"] if workers > 1 else []


def task_command(task: str, python: Path, extra: list[str]) -> list[list[str]]:
    if task == "demo":
        return [[str(python), "-m", "stream.cli.demo", *extra]]
    if task == "test":
        return [[str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider", *test_workers(extra), *extra]]
    if task == "bench":
        return [[str(python), "-m", module, *extra] for module in BENCH_MODULES]
    if task == "run":  # the console script pip made next to the venv's python
        return [[str(python.parent / ("rdstream.exe" if python.suffix == ".exe" else "rdstream")), *extra]]
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


def say(text: str, file=None) -> None:
    print(printable(text), file=file or sys.stdout, flush=True)


def main(argv: list[str]) -> int:
    dry_run = "--dry-run" in argv[:1] or "--dry-run" in argv[1:2]
    args = [a for i, a in enumerate(argv) if not (a == "--dry-run" and i < 2)]
    if args[:1] in (["-h"], ["--help"], ["help"]):
        print(HELP)
        return 0
    if not args or args[0] not in TASKS:
        print(USAGE, file=sys.stderr)
        return 2
    task, extra = args[0], args[1:]
    python = venv_python()
    try:
        choice = choose_torch()
        needed = install_needed(choice)
        if needed:
            say(f"torch: {choice.describe()} ({choice.reason})")
        if dry_run:
            if needed and not python.exists():
                say(" ".join([sys.executable, "-m", "venv", str(VENV)]))
            for command in (install_commands(python, choice) if needed else []):
                say(" ".join(command))
            if not needed:
                say(f"nothing to install: {VENV} is up to date")
            for command in task_command(task, python, extra):
                say(" ".join(command))
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
        say(f"tasks.py: error: {err}", sys.stderr)
        return 2 if isinstance(err, BadSettingError) else 1
    for command in task_command(task, python, extra):
        code = run(command)
        if code != 0:
            return code
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
