"""``make demo``: the live node on the built-in test source, with the real weights when they are found.

It runs ``rdstream run`` from FFmpeg's test pattern to a colour video, a 16-bit video, a .npy
file and, when ndi-python is installed, an NDI source that TouchDesigner can receive, with its
monitor page (``--monitor``) on a free local port.

Weights are looked up in this order: ``--checkpoint``, $RDSTREAM_CHECKPOINT, the Hugging Face cache
(prs-eth/rollingdepth-v1-0). Without them the demo writes the tiny RANDOM test checkpoint and says
loudly that its output is not depth.
"""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path, PurePath, PurePosixPath, PureWindowsPath

import typer
from rich.console import Console
from rich.panel import Panel

from pipeline.checkpoint import DEFAULT_CHECKPOINT, resolve_device
from pipeline.errors import BadInputError

OUTPUT = Path("demo_output")
NAME = "stream"
NDI_NAME = "rdstream demo"
# The README's first TouchDesigner command (docs/touchdesigner/build_network.py receives it).
TOUCHDESIGNER_FIRST_LINE = 'rdstream run --source camera:0 --sink "ndi:Depth?format=p216" --osc 9000 --osc-status 9001'
MISSING_WEIGHTS = (
    "[bold]The RollingDepth weights were not found[/] (prs-eth/rollingdepth-v1-0, 3.4 GB).\n"
    "This demo runs the TINY RANDOM test checkpoint instead: [bold red]its output is NOT depth[/], "
    "only proof that every stage runs.\n"
    "To get real depth: `hf download prs-eth/rollingdepth-v1-0` (or any folder with "
    "that layout), then `make demo CHECKPOINT=/path/to/folder` or set RDSTREAM_CHECKPOINT."
)


def how_to_run_rdstream(scripts: PurePath, platform: str = sys.platform) -> str:
    """Where ``rdstream`` is after set-up, for this OS: the set-up made a venv that the user's
    terminal does not use until it is activated.

    Args:
        scripts: the venv's script folder (``.venv/bin``, ``.venv\\Scripts``), relative to the current
            folder where it lies below it.
    """
    if platform == "win32":
        scripts = PureWindowsPath(scripts)
        return (f"To run rdstream: {scripts / 'rdstream.exe'} ... (or first {scripts / 'activate'}, then just "
                "rdstream ...), or: py tasks.py run ...")
    scripts = PurePosixPath(scripts)
    return (f"To run rdstream: {scripts / 'rdstream'} ... (or first: source {scripts / 'activate'}, then just "
            "rdstream ...), or: python3 tasks.py run ...")


def venv_scripts() -> PurePath:
    """This interpreter's script folder, relative to the current folder when it lies below it."""
    scripts = Path(sys.executable).parent
    try:
        return scripts.relative_to(Path.cwd())
    except ValueError:
        return scripts


def find_real_checkpoint(explicit: str | None) -> str | None:
    """--checkpoint, then $RDSTREAM_CHECKPOINT, then the Hugging Face cache; None when absent."""
    if explicit:
        return explicit
    if os.environ.get("RDSTREAM_CHECKPOINT"):
        return os.environ["RDSTREAM_CHECKPOINT"]
    try:
        from huggingface_hub import snapshot_download

        return snapshot_download(DEFAULT_CHECKPOINT, local_files_only=True)
    except Exception:
        return None


def check_weights(checkpoint: str) -> str:
    """Where the weights are, said only once they are known to be there: a local folder is checked
    (layout, configs, weight files) now; a hub id is fetched when the model loads.

    Raises:
        BadInputError: no such folder, or not a complete RollingDepth checkpoint folder.
    """
    from pipeline.checkpoint import is_hub_id, resolve_checkpoint_folder, validate_checkpoint_folder

    if is_hub_id(checkpoint):
        return f"{checkpoint} (Hugging Face hub)"
    folder = resolve_checkpoint_folder(checkpoint, allow_download=False)
    validate_checkpoint_folder(folder)
    return str(folder)


def free_ndi_name(console: Console, base: str = NDI_NAME) -> str | None:
    """A sender name free on this machine (``base``, else ``base 2`` ...), or None with the reason
    said: ndi-python missing, or every name taken by other running senders.

    The demo renames where ``rdstream run`` refuses (docs/live_io.md, "NDI names"): it has no user-chosen
    name to keep, and its point is to show the node running."""
    try:
        from io_adapters.ndi.sender import sender_name_free
    except Exception:
        console.print("(install ndi-python to also publish over NDI)")
        return None
    candidates = [base] + [f"{base} {i}" for i in range(2, 6)]
    for name in candidates:
        try:
            if sender_name_free(name):
                if name != base:
                    console.print(f"The NDI name '{base}' is in use by another sender on this machine; "
                                  f"publishing as '{name}' instead.")
                return name
        except Exception as err:  # the NDI library itself failed to load or start
            console.print(f"NDI is not available here ({err}); the demo runs without it.")
            return None
    console.print(f"The NDI names '{candidates[0]}' to '{candidates[-1]}' are all in use on this machine; "
                  "the demo runs without NDI.")
    return None


def free_local_port() -> int:
    """A TCP port free on 127.0.0.1 now (the system picks it), for the demo's monitor page."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def demo(
    checkpoint: str | None = typer.Option(None, "--checkpoint", "-c", help="RollingDepth checkpoint folder or hub id"),
    frames: int = typer.Option(0, "--frames", help="length of the built-in test source (0 = a default that suits the device)"),
    ndi: bool = typer.Option(True, "--ndi/--no-ndi", help="also publish over NDI when ndi-python is installed"),
) -> None:
    """Run the live node on the built-in test source and say where to look."""
    from pipeline.tiny_checkpoint import write_tiny_checkpoint
    from stream.cli import main as rdstream
    from stream.cli import quiet_libraries

    quiet_libraries()
    console = Console(stderr=True)
    OUTPUT.mkdir(exist_ok=True)
    gpu = resolve_device("auto").type != "cpu"
    real = find_real_checkpoint(checkpoint)
    if real is None:
        console.print(Panel(MISSING_WEIGHTS, title="rollingdepth-stream demo", border_style="red"))
        real = str(write_tiny_checkpoint(OUTPUT / "tiny-checkpoint"))
        res, frames = "192", frames or 150
    else:
        try:
            where = check_weights(real)
        except BadInputError as err:
            console.print(f"rdstream: error: {err}", highlight=False, markup=False, soft_wrap=True)
            sys.exit(2)
        console.print(f"Using the RollingDepth weights at {where}", highlight=False)
        # The real model on a CPU takes seconds per frame: keep the CPU demo short.
        res, frames = ("384", frames or 150) if gpu else ("256", frames or 30)
    sinks = [f"file:{OUTPUT}/{NAME}_depth.mp4", f"file:{OUTPUT}/{NAME}_depth16.mkv", f"npy:{OUTPUT}/{NAME}_depth.npy"]
    ndi_name = free_ndi_name(console) if ndi else None
    if ndi_name is not None:
        sinks.append(f"ndi:{ndi_name}?format=bgra&cmap=turbo")
    source = f"test:?frames={frames}&size=640x360&rate=30"
    console.print(f"Running the live node: {source} -> " + ", ".join(sinks))
    port = free_local_port()
    console.print(f"Monitor page while it runs: http://127.0.0.1:{port}/ (the address with its control token "
                  "follows when the node starts)")
    args = ["run", "--source", source, "-c", real, "--res", res, "--no-drop", "--lookahead", "2", "--seed", "0",
            "--stats-json", str(OUTPUT / f"{NAME}_stats.jsonl"), "--monitor", str(port)]
    for sink in sinks:
        args += ["--sink", sink]
    try:
        rdstream(args)
    except SystemExit as done:
        if done.code:
            sys.exit(done.code)
    ndi_line = (f"  NDI source '{ndi_name}' was live while it ran (TouchDesigner: NDI In TOP)\n"
                if ndi_name is not None else "  (no NDI output this time: see above)\n")
    console.print(Panel(
        f"Outputs in {OUTPUT.resolve()}:\n"
        f"  {NAME}_depth.mp4      colour-mapped depth (1 = near)\n"
        f"  {NAME}_depth16.mkv    lossless 16-bit depth (FFV1)\n"
        f"  {NAME}_depth.npy      float32 [N, H, W] depth in [0, 1]\n"
        f"  {NAME}_depth.timestamps.npy  each frame's time in seconds\n"
        f"  {NAME}_stats.jsonl    live stats, one JSON line per second\n" + ndi_line +
        f"{how_to_run_rdstream(venv_scripts())}\n"
        f"Live from a camera to TouchDesigner: {TOUCHDESIGNER_FIRST_LINE}  (README: TouchDesigner in three steps)",
        title="demo finished", border_style="green"))


if __name__ == "__main__":
    typer.run(demo)
