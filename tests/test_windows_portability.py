"""Windows and macOS correctness by construction, checked on Linux: no POSIX-only call outside a
guarded branch, Ctrl-C / SIGTERM / Ctrl-Break handled where the event loop has no signal
handlers (Windows), drive letters and backslashes in URIs."""

from __future__ import annotations

import ast
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from io_adapters.registry import parse_uri
from tests.conftest import count_frames, stop_after_output

ROOT = Path(__file__).resolve().parents[1]
SCANNED = ["stream", "io_adapters", "pipeline", "bench", "tests", "tasks.py"]

# Calls and names that exist on POSIX only (or, SIGBREAK, on Windows only): AttributeError or
# ImportError on the other OS. Each use must sit in a guarded branch (see _guarded).
PLATFORM_ONLY_ATTRIBUTES = {
    "os": {"fork", "forkpty", "setsid", "setpgrp", "killpg", "getpgid", "getuid", "geteuid", "getgid", "chown",
           "mkfifo", "uname", "getloadavg", "sched_getaffinity", "WNOHANG", "pipe2"},
    "signal": {"SIGHUP", "SIGKILL", "SIGUSR1", "SIGUSR2", "SIGQUIT", "SIGALRM", "SIGPIPE", "SIGCHLD", "SIGSTOP",
               "SIGCONT", "SIGBREAK", "alarm", "pause", "setitimer", "siginterrupt", "pthread_kill"},
}
PLATFORM_ONLY_MODULES = {"fcntl", "termios", "resource", "pwd", "grp", "pty", "tty", "posix", "msvcrt", "winreg"}
_GUARD_WORDS = ("sys.platform", "os.name", "hasattr(", "platform.system")
_GUARD_EXCEPTIONS = {"ImportError", "ModuleNotFoundError", "AttributeError"}


def _guarded(chain: list[ast.AST], source: str) -> bool:
    """True when an enclosing node makes the use safe on every OS: an ``if`` on the platform or
    on hasattr, a ``try`` catching ImportError/AttributeError, or a test skipped by platform/privilege."""
    for node in chain:
        if isinstance(node, (ast.If, ast.IfExp, ast.While)):
            if any(word in ast.get_source_segment(source, node.test) for word in _GUARD_WORDS):
                return True
        if isinstance(node, ast.Try):
            caught = {ast.get_source_segment(source, h.type) or "" for h in node.handlers if h.type is not None}
            if any(name in text for text in caught for name in _GUARD_EXCEPTIONS):
                return True
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            for decorator in node.decorator_list:
                text = ast.get_source_segment(source, decorator)
                if "skipif" in text and any(word in text for word in ("platform", "os.name", "geteuid", "can_unshare")):
                    return True
    return False


def unguarded_platform_calls(source: str, filename: str = "<source>") -> list[str]:
    """'file:line name' of every POSIX-only (or Windows-only) use outside a guarded branch."""
    tree = ast.parse(source, filename)
    found: list[str] = []

    def visit(node: ast.AST, chain: list[ast.AST]) -> None:
        name = None
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            if node.attr in PLATFORM_ONLY_ATTRIBUTES.get(node.value.id, ()):
                name = f"{node.value.id}.{node.attr}"
        elif isinstance(node, ast.Import):
            name = next((a.name for a in node.names if a.name.split(".")[0] in PLATFORM_ONLY_MODULES), None)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in PLATFORM_ONLY_MODULES:
            name = node.module
        if name and not _guarded(chain, source):
            found.append(f"{filename}:{node.lineno} {name}")
        for child in ast.iter_child_nodes(node):
            visit(child, chain + [node])

    visit(tree, [])
    return found


def _python_files():
    for entry in SCANNED:
        path = ROOT / entry
        files = [path] if path.is_file() else sorted(path.rglob("*.py"))
        yield from (f for f in files if "fakes" not in f.parts)


def test_the_scan_finds_an_unguarded_call_and_accepts_the_guards():
    bad = "import os, signal\nimport fcntl\nos.kill(1, signal.SIGKILL)\nos.getloadavg()\n"
    assert unguarded_platform_calls(bad) == ["<source>:2 fcntl", "<source>:3 signal.SIGKILL", "<source>:4 os.getloadavg"]
    good = ("import os, signal, sys\n"
            "if hasattr(signal, 'SIGBREAK'):\n    signal.signal(signal.SIGBREAK, print)\n"
            "if sys.platform != 'win32':\n    os.setsid()\n"
            "try:\n    import fcntl\nexcept ImportError:\n    fcntl = None\n"
            "def f():\n    if not hasattr(os, 'geteuid') or os.geteuid() != 0:\n        return\n")
    assert unguarded_platform_calls(good) == []


def test_no_posix_only_call_outside_a_guarded_branch():
    found = [hit for path in _python_files()
             for hit in unguarded_platform_calls(path.read_text(encoding="utf-8"), str(path.relative_to(ROOT)))]
    assert found == [], "unguarded platform-only calls (guard them or use a portable call):\n" + "\n".join(found)


@pytest.mark.parametrize("text, scheme, target, options", [
    (r"C:\clips\a.mp4", "file", r"C:\clips\a.mp4", {}),
    (r"file:C:\clips\a.mp4?start=2", "file", r"C:\clips\a.mp4", {"start": "2"}),
    ("c:/clips/a.mp4", "file", "c:/clips/a.mp4", {}),
    (r"C:clip.mp4", "file", "C:clip.mp4", {}),  # drive-relative
    (r"\\server\share\a.mp4", "file", r"\\server\share\a.mp4", {}),
    (r"file:\\server\share\depth.mkv", "file", r"\\server\share\depth.mkv", {}),
    (r"file:D:\depth out\x.mp4?cmap=turbo", "file", r"D:\depth out\x.mp4", {"cmap": "turbo"}),
    (r"npy:D:\out\depth.npy", "npy", r"D:\out\depth.npy", {}),
])
def test_windows_paths_are_never_taken_for_a_scheme(text, scheme, target, options):
    parsed = parse_uri(text)
    assert (parsed.scheme, parsed.target, parsed.options) == (scheme, target, options)


@pytest.mark.skipif(sys.platform == "win32", reason="sends SIGINT to a child, which Windows cannot do")
def test_plain_signal_handlers_drain_as_the_event_loop_handlers_do(tmp_path, tiny_checkpoint):
    """Windows event loops have no signal handlers (open_signal_receiver raises NotImplementedError):
    the node then installs plain ones. Forced here, a Ctrl-C must still drain and leave whole files."""
    mp4, npy, stats = tmp_path / "depth.mp4", tmp_path / "depth.npy", tmp_path / "stats.jsonl"
    as_on_windows = ("import anyio, sys\n"
                     "def no_loop_signals(*signals):\n    raise NotImplementedError\n"
                     "anyio.open_signal_receiver = no_loop_signals\n"
                     "from stream.cli import main\nmain(sys.argv[1:])\n")
    proc = subprocess.Popen(
        [sys.executable, "-c", as_on_windows, "run", "--source", "test:?size=96x64&rate=30", "--sink", f"file:{mp4}",
         "--sink", f"npy:{npy}", "-c", str(tiny_checkpoint), "--stats-json", str(stats),
         "--res", "64", "-d", "1", "-d", "5", "--no-status"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stderr = stop_after_output(proc, stats, 3, signal.SIGINT)
    assert proc.returncode == 0, stderr
    assert "interrupted:" in stderr and "Traceback" not in stderr, stderr
    frames = np.load(npy).shape[0]
    assert frames >= 3 and count_frames(mp4) == frames


def _refuse_replacing(monkeypatch, target: Path, times: int | None):
    """os.replace onto ``target`` fails as on Windows while another program has it open:
    ``times`` refusals (None = always); other renames work."""
    import stream.cli.file_outputs as file_outputs

    real_replace, refusals = file_outputs.os.replace, []

    def replace(src, dst):
        if Path(dst) == target and (times is None or len(refusals) < times):
            refusals.append(dst)
            raise PermissionError(13, "The process cannot access the file because it is being used by another process")
        return real_replace(src, dst)

    monkeypatch.setattr(file_outputs.os, "replace", replace)
    monkeypatch.setattr(file_outputs, "REPLACE_RETRY_DELAYS_S", (0.0, 0.0))
    return refusals


def test_a_briefly_held_output_is_replaced_after_a_retry(tmp_path, monkeypatch):
    from stream.cli.file_outputs import save_npy

    target = tmp_path / "depth.npy"
    np.save(target, np.zeros(2))  # last run's output, "open in a player"
    refusals = _refuse_replacing(monkeypatch, target, times=2)
    save_npy(target, np.ones(3))
    assert len(refusals) == 2 and np.array_equal(np.load(target), np.ones(3))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["depth.npy"]


def test_an_output_open_elsewhere_is_kept_complete_under_a_new_name(tmp_path, monkeypatch):
    from pipeline.errors import RuntimeFailure
    from stream.cli.file_outputs import save_npy

    target = tmp_path / "depth.npy"
    np.save(target, np.zeros(2))
    _refuse_replacing(monkeypatch, target, times=None)
    with pytest.raises(RuntimeFailure, match=r"open in another program.*complete as depth\.new\.npy") as raised:
        save_npy(target, np.ones(3))
    assert "\n" not in str(raised.value)
    assert np.array_equal(np.load(target), np.zeros(2))  # the old file untouched
    assert np.array_equal(np.load(tmp_path / "depth.new.npy"), np.ones(3))  # the new one whole, not lost
    assert sorted(p.name for p in tmp_path.iterdir()) == ["depth.new.npy", "depth.npy"]
