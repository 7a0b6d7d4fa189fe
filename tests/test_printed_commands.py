"""Every command the project prints (README, docs, banners, error messages) exists in the
environment it installs: each is run with ``--help``.

A command is found as ``hf``, ``huggingface-cli``, ``pip`` or ``rdstream`` followed by its
subcommand words, in the docs and in the string literals of the code that prints messages.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
COMMAND = re.compile(r"(?<![\w./:-])(hf|huggingface-cli|pip|rdstream)[ \t]+([a-z][a-z0-9-]*)(?:[ \t]+([a-z][a-z0-9-]*))?")
# rdstream's groups: their next word is a subcommand too (``rdstream dev compare-decoders``).
GROUPS = {("rdstream", "dev")}
# Phrases that read like a command but name something else.
NOT_COMMANDS = {("rdstream", "demo"): "the demo's NDI sender name", ("rdstream", "frame"): "'rdstream frame metadata'"}


def _printed_texts() -> list[tuple[str, str]]:
    """(where, text) for the docs and every string literal of the code that prints."""
    texts = [(str(path.relative_to(ROOT)), path.read_text()) for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]]
    for package in ("pipeline", "stream", "io_adapters", "bench"):
        for path in sorted((ROOT / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Constant) and isinstance(node.value, str):
                    texts.append((f"{path.relative_to(ROOT)}:{node.lineno}", node.value))
    return texts


def printed_commands() -> dict[tuple[str, ...], str]:
    """(program, subcommand words...) -> where it was first seen."""
    found: dict[tuple[str, ...], str] = {}
    for where, text in _printed_texts():
        for program, first, second in COMMAND.findall(text):
            words = (program, first, second) if second and (program, first) in GROUPS else (program, first)
            if words[:2] not in NOT_COMMANDS:
                found.setdefault(words, where)
    return found


def test_every_printed_command_exists_here():
    commands = printed_commands()
    assert ("hf", "download") in commands and ("rdstream", "run") in commands  # the finder itself works
    failures = []
    for words, where in sorted(commands.items()):
        program, *sub = words
        argv = [sys.executable, "-m", "stream.cli", *sub] if program == "rdstream" else [str(BIN / program), *sub]
        if program != "rdstream" and not (BIN / program).exists():
            failures.append(f"{' '.join(words)} ({where}): {program} is not installed")
            continue
        done = subprocess.run([*argv, "--help"], cwd=ROOT, capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            failures.append(f"{' '.join(words)} ({where}): exit {done.returncode}: {done.stderr.strip()[-200:]}")
    assert not failures, "\n".join(failures)
