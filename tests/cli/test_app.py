"""A user's first minutes: where `rdstream` is after set-up (the demo says it), a bare `rdstream`,
`rdstream --version`, `rdstream sources` naming Spout, and `--device cuda:N` picking (and naming)
one GPU of several.

There is no GPU here: the CUDA cases stand torch.cuda in with a machine of two GPUs."""

import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch

from pipeline import checkpoint as ck
from pipeline.device_names import DeviceName, parse_device_name
from pipeline.errors import BadInputError
from stream.cli import main
from tests.conftest import ROOT, run_rdstream


@pytest.fixture
def two_gpus(monkeypatch):
    """torch.cuda as on a machine with two GPUs, the first one current."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index=None: f"Test GPU {index}")
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)


def test_device_names_are_read_without_torch():
    assert parse_device_name("cuda:1") == DeviceName("cuda", 1)
    assert parse_device_name(" CUDA ") == DeviceName("cuda")
    assert parse_device_name(None) == DeviceName("auto")
    for name, message in (("gpu", "unknown device"), ("cuda:x", "GPU number"), ("cuda:-1", "GPU number"),
                          ("cpu:1", "only cuda takes a GPU number"), ("mps:0", "only cuda takes a GPU number")):
        with pytest.raises(BadInputError, match=message):
            parse_device_name(name)


def test_cuda_index_is_honoured_and_named(two_gpus):
    assert ck.resolve_device("cuda:1") == torch.device("cuda", 1)
    assert ck.resolve_device("cuda") == torch.device("cuda", 0)
    assert ck.resolve_device("auto") == torch.device("cuda", 0)  # with its number, so messages can name it
    assert ck.device_label(torch.device("cuda", 1)) == "cuda:1 (Test GPU 1)"
    assert ck.device_label(torch.device("cpu")) == "cpu"
    with pytest.raises(BadInputError, match=r"--device cuda:2: this machine has 2 CUDA GPUs \(cuda:0 to cuda:1\)"):
        ck.resolve_device("cuda:2")


def test_run_start_line_names_the_gpu_it_runs_on(two_gpus):
    from stream.cli.run_checks import RunOptions
    from stream.cli.run_job import check_options, start_line

    opts = RunOptions(source="test:?frames=2&size=64x48", sinks=["null:"], checkpoint="unused", device="cuda:1")
    model = SimpleNamespace(device=ck.resolve_device("cuda:1"), dtype=torch.float16, decoder=SimpleNamespace(name="full"))
    assert "  cuda:1 (Test GPU 1) float16, decoder full" in start_line(opts, check_options(opts), model, "every frame")


def test_cuda_1_on_a_machine_without_cuda_is_one_line_and_exit_2(tiny_checkpoint, capsys):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(SystemExit) as done:  # in-process: torch is loaded here already
        main(["run", "--source", "test:?frames=2&size=64x48", "--sink", "null:", "-c", str(tiny_checkpoint),
              "--device", "cuda:1"])
    assert done.value.code == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "rdstream: error: --device cuda:1: no CUDA GPU is available here; use --device auto or --device cpu"]


def test_a_misspelt_device_is_refused_before_torch_loads():
    probe = ("import atexit, sys; atexit.register(lambda: print('torch loaded' if 'torch' in sys.modules else 'no torch'));"
             "from stream.cli import main; main(['run', '--source', 'test:?frames=2', '--sink', 'null:', '--device', 'gpu'])")
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "--device gpu: unknown device" in done.stderr, done.stderr
    assert done.stdout.strip() == "no torch"


def test_version_is_printed_before_torch_loads():
    from importlib import metadata

    probe = ("import atexit, sys; atexit.register(lambda: print('torch loaded' if 'torch' in sys.modules else 'no torch'));"
             "from stream.cli import main; main(['--version'])")
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    first, last = done.stdout.strip().splitlines()
    assert first.startswith(f"rdstream {metadata.version('rollingdepth-stream')} (Python ") and "torch" in first
    assert last == "no torch"


def test_bare_rdstream_prints_its_help_not_an_error():
    done = run_rdstream()
    assert done.returncode == 0 and done.stderr == "", done.stderr
    assert done.stdout.startswith("Usage: rdstream") and "run " in done.stdout and "--version" in done.stdout


def test_the_demo_says_where_rdstream_is_on_each_system():
    from pathlib import Path, PurePath

    from stream.cli.demo import how_to_run_rdstream, venv_scripts

    assert how_to_run_rdstream(PurePath(".venv/bin"), "linux").startswith(
        "To run rdstream: .venv/bin/rdstream ... (or first: source .venv/bin/activate, then just rdstream ...)")
    assert how_to_run_rdstream(PurePath(".venv/Scripts"), "win32").startswith(
        "To run rdstream: .venv\\Scripts\\rdstream.exe ... (or first .venv\\Scripts\\activate, then just rdstream ...)")
    here = venv_scripts()  # this interpreter's environment: the set-up installed rdstream beside it
    if sys.platform != "win32":
        assert (Path(here) / "rdstream").exists() and str(here / "rdstream") in how_to_run_rdstream(here)


def test_rdstream_sources_names_spout_on_every_system(capsys):
    with pytest.raises(SystemExit) as done:
        main(["sources", "--ndi-wait", "0.1"])
    out = capsys.readouterr().out
    assert done.value.code == 0 and "Spout senders:" in out
    if sys.platform != "win32":
        assert "note: Spout is Windows only" in out
