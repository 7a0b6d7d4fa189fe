"""tasks.py, the set-up behind `make demo|test` and `py tasks.py demo|test`: which torch it picks
on each platform and the pip lines it would run (--dry-run; nothing is installed here), and its
one-line answers to a machine it cannot set up."""

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

import tasks

ROOT = Path(tasks.__file__).resolve().parent
FAKE_SMI = """#!/bin/sh
case "$1" in
  -L) echo "GPU 0: NVIDIA GeForce RTX 4090 (UUID: GPU-0b1c2d3e-0000-1111-2222-333344445555)" ;;
  *) echo "| NVIDIA-SMI 570.00   Driver Version: 570.00   CUDA Version: {cuda} |" ;;
esac
exit {code}
"""
# An nvidia-smi that answers (exit 0) without naming a GPU, with terminal escape codes.
GARBAGE_SMI = """#!/bin/sh
printf 'garbage \\033[2J\\033]0;owned\\007 CUDA Version: 13.0\\n'
exit 0
"""


def _gpu(name="NVIDIA RTX A6000", cuda=(12, 8)):
    return lambda: (name, cuda)


def _no_gpu():
    return None


def _must_not_ask():
    raise AssertionError("nvidia-smi asked where it cannot matter")


@pytest.mark.parametrize("platform, gpu, index", [
    ("linux", _gpu(cuda=(12, 8)), "https://download.pytorch.org/whl/cu128"),
    ("win32", _gpu(cuda=(13, 1)), "https://download.pytorch.org/whl/cu130"),
    ("win32", _gpu(cuda=(12, 6)), "https://download.pytorch.org/whl/cu126"),
    ("win32", _gpu(cuda=None), "https://download.pytorch.org/whl/cu126"),
    ("win32", _no_gpu, None),
    ("linux", _no_gpu, None),
    ("darwin", _must_not_ask, None),
])
def test_torch_choice_per_platform_and_gpu(platform, gpu, index):
    choice = tasks.choose_torch(platform, {}, gpu)
    assert choice.requirement == "torch==2.13.0" and choice.index_url == index
    assert choice.reason  # said to the user
    if index:
        assert "nvidia-smi found NVIDIA RTX A6000" in choice.reason


@pytest.mark.parametrize("override, requirement, index", [
    ("cpu", "torch==2.13.0", None),
    ("cuda", "torch==2.13.0", "https://download.pytorch.org/whl/cu128"),
    ("torch==2.5.1", "torch==2.5.1", None),
    ("installed", None, None),
])
def test_environment_overrides_the_choice(override, requirement, index):
    choice = tasks.choose_torch("linux", {"RDSTREAM_TORCH": override}, _gpu())
    assert (choice.requirement, choice.index_url) == (requirement, index)
    assert f"RDSTREAM_TORCH={override}" in choice.reason
    commands = tasks.install_commands(Path("py"), choice, "linux")
    assert sum("torch" in " ".join(c) for c in commands) == (0 if requirement is None else 1)


def test_linux_without_gpu_runs_the_same_pip_lines_as_the_old_makefile():
    choice = tasks.choose_torch("linux", {}, _no_gpu)
    commands = tasks.install_commands(Path(".venv/bin/python"), choice, "linux")
    pip = [".venv/bin/python", "-m", "pip", "install", "--quiet"]
    assert commands == [pip + ["--upgrade", "pip"], pip + ["torch==2.13.0"], pip + ["-e", ".[dev]"]]


def test_windows_uses_the_scripts_folder_and_installs_spout():
    choice = tasks.choose_torch("win32", {}, _gpu(cuda=(12, 9)))
    python = tasks.venv_python(Path(".venv"), "win32")
    assert python == Path(".venv/Scripts/python.exe")
    commands = tasks.install_commands(python, choice, "win32")
    assert commands[1][-3:] == ["torch==2.13.0", "--index-url", "https://download.pytorch.org/whl/cu128"]
    assert commands[2][-1] == ".[dev,spout]"


@pytest.mark.parametrize("make_error, expected", [
    (lambda: tasks.choose_torch("freebsd14", {}, _must_not_ask), "unknown platform 'freebsd14'"),
    (lambda: tasks.choose_torch("win32", {}, _gpu(cuda=(11, 8))), "update the NVIDIA driver, or set RDSTREAM_TORCH=cpu"),
])
def test_a_machine_it_cannot_set_up_is_one_line_saying_what_to_do(make_error, expected):
    with pytest.raises(tasks.SetupError) as raised:
        make_error()
    assert expected in str(raised.value) and "\n" not in str(raised.value)


def test_a_python_without_venv_is_told_how_to_get_it(monkeypatch):
    real_find_spec = tasks.importlib.util.find_spec
    monkeypatch.setattr(tasks.importlib.util, "find_spec", lambda name: None if name == "ensurepip" else real_find_spec(name))
    with pytest.raises(tasks.SetupError, match=r"apt install python3-venv.*python\.org"):
        tasks.check_venv_module()


def test_stamp_skips_the_install_as_make_did(tmp_path, monkeypatch):
    venv = tmp_path / ".venv"
    python = tasks.venv_python(venv, "linux")
    python.parent.mkdir(parents=True)
    python.write_text("")
    (tmp_path / "pyproject.toml").write_text("")
    monkeypatch.setattr(tasks, "ROOT", tmp_path)
    monkeypatch.setattr(tasks, "VENV", venv)
    monkeypatch.setattr(tasks, "STAMP", venv / ".installed")
    choice = tasks.choose_torch("linux", {}, _no_gpu)
    assert tasks.install_needed(choice, "linux")  # no stamp yet
    (venv / ".installed").write_text("")  # as `touch` in the old Makefile wrote it
    later = time.time() + 5
    os.utime(venv / ".installed", (later, later))
    assert not tasks.install_needed(choice, "linux")
    (venv / ".installed").write_text(choice.describe() + "\n")
    os.utime(venv / ".installed", (later, later))
    assert not tasks.install_needed(choice, "linux")
    assert tasks.install_needed(tasks.choose_torch("linux", {"RDSTREAM_TORCH": "torch==2.5.1"}, _no_gpu), "linux")
    os.utime(tmp_path / "pyproject.toml", (later + 5, later + 5))  # pyproject.toml edited
    assert tasks.install_needed(choice, "linux")


def _fake_smi_path(tmp_path, cuda="12.8", code=0, script=None):
    folder = tmp_path / "bin"
    folder.mkdir()
    smi = folder / "nvidia-smi"
    smi.write_text(script or FAKE_SMI.format(cuda=cuda, code=code))
    smi.chmod(0o755)
    return f"{folder}{os.pathsep}{os.environ['PATH']}"


def _repo_copy(tmp_path, venv_current=False):
    """tasks.py in a folder of its own (its ROOT: nothing in the real checkout is read or touched);
    with ``venv_current`` a .venv as an install left it: an interpreter and a stamp newer than
    pyproject.toml, recording the CPU choice this machine gets without a GPU."""
    copy = tmp_path / "repo"
    copy.mkdir(parents=True)
    shutil.copy(ROOT / "tasks.py", copy / "tasks.py")
    (copy / "pyproject.toml").write_text("")
    if venv_current:
        python = tasks.venv_python(copy / ".venv")
        python.parent.mkdir(parents=True)
        python.write_text("")
        stamp = copy / ".venv" / ".installed"
        stamp.write_text(tasks.choose_torch(sys.platform, {}, _no_gpu).describe() + "\n")
        later = time.time() + 5
        os.utime(stamp, (later, later))
    return copy / "tasks.py"


def _run_tasks(script, *args, path=None, extra_env=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("RDSTREAM_TORCH")}
    env.update(extra_env or {})
    if path is not None:
        env["PATH"] = path
    return subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, env=env, timeout=60)


@pytest.mark.skipif(sys.platform == "win32", reason="the fake nvidia-smi is a shell script")
@pytest.mark.parametrize("cuda, code, expected_torch_line", [
    ("12.8", 0, "-m pip install --quiet torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128"),
    ("12.8", 9, "-m pip install --quiet torch==2.13.0\n"),  # nvidia-smi there, but no driver/GPU
])
def test_dry_run_with_a_fake_nvidia_smi_prints_the_pip_lines(tmp_path, cuda, code, expected_torch_line):
    result = _run_tasks(_repo_copy(tmp_path), "--dry-run", "test", "-k", "x", path=_fake_smi_path(tmp_path, cuda, code))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert expected_torch_line in out, out
    assert out.splitlines()[0].startswith("torch: torch==2.13.0")
    assert ("nvidia-smi found NVIDIA GeForce RTX 4090 (driver CUDA 12.8)" in out) == (code == 0)
    # '-n 2 --dist loadfile' on two cores or more
    assert out.rstrip().endswith(" ".join(["-m pytest -q -p no:cacheprovider", *tasks.test_workers([]), "-k x"]))


def test_the_tests_run_in_two_processes_unless_the_arguments_choose(monkeypatch):
    monkeypatch.setattr(tasks.os, "cpu_count", lambda: 16)
    assert tasks.test_workers(["-k", "osc"]) == ["-n", "2", "--dist", "loadfile"]
    assert tasks.test_workers(["-n", "0"]) == tasks.test_workers(["-n4"]) == tasks.test_workers(["--dist=load"]) == []
    monkeypatch.setattr(tasks.os, "cpu_count", lambda: 1)
    assert tasks.test_workers([]) == []


@pytest.mark.skipif(sys.platform == "win32", reason="the fake nvidia-smi is a shell script")
def test_an_unreachable_cuda_index_is_one_line_before_anything_is_made(tmp_path):
    script = _repo_copy(tmp_path)
    copy = script.parent
    result = _run_tasks(script, "test", path=_fake_smi_path(tmp_path),
                        extra_env={"RDSTREAM_TORCH_INDEX": "https://127.0.0.1:9/whl/cu128"})
    assert result.returncode == 1
    assert result.stderr.startswith("tasks.py: error: cannot reach the CUDA torch index https://127.0.0.1:9/whl/cu128")
    assert result.stderr.count("\n") == 1 and "RDSTREAM_TORCH=cpu" in result.stderr
    assert not (copy / ".venv").exists()


def test_no_task_is_a_usage_line():
    result = _run_tasks(ROOT / "tasks.py", "deploy")
    assert result.returncode == 2 and result.stderr.startswith("usage: python3 tasks.py") and result.stdout == ""


def test_ci_workflow_runs_the_set_up_script_on_windows_and_macos_with_311_and_312():
    import yaml

    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "windows-macos.yml").read_text())
    job = workflow["jobs"]["test"]
    matrix = job["strategy"]["matrix"]
    assert any(os_name.startswith("windows") for os_name in matrix["os"])
    assert any(os_name.startswith("macos") for os_name in matrix["os"])
    assert matrix["python"] == ["3.11", "3.12"]
    assert any(step.get("run", "").startswith("python tasks.py test") for step in job["steps"])
    assert "make test" in (ROOT / ".ci" / "run").read_text()  # Linux CI unchanged


@pytest.mark.parametrize("value", [
    "garbage", "numpy", "torch --index-url http://example.com/whl", "torch==2.5.1 --pre", "-r requirements.txt",
    "torch @ https://example.com/torch.whl", "https://example.com/torch.whl", "torch[opt]==2.5.1", "torch==",
    "torch==2.5.1;python_version>'3'", "torch\x1b[2J",
])
def test_a_torch_override_that_is_not_a_keyword_or_one_requirement_is_refused(value):
    with pytest.raises(tasks.BadSettingError) as raised:
        tasks.choose_torch("linux", {"RDSTREAM_TORCH": value}, _must_not_ask)
    message = str(raised.value)
    assert message.startswith("RDSTREAM_TORCH=") and "\n" not in message and "\x1b" not in message


@pytest.mark.parametrize("value", ["torch", "torch==2.5.1", "torch>=2.4,<2.14", "Torch~=2.5", "torch==2.5.1+cu121",
                                   "DEFAULT", " cpu "])
def test_a_torch_requirement_or_keyword_is_accepted(value):
    choice = tasks.choose_torch("linux", {"RDSTREAM_TORCH": value}, _must_not_ask)
    assert choice.requirement in (value, tasks.TORCH_PIN)


@pytest.mark.parametrize("value", ["http://127.0.0.1/whl/cu128", "https://host/whl/cu128 --pre", "https://",
                                   "file:///srv/wheels", "https://host/\x1b[2J", "--index-url"])
def test_a_torch_index_that_is_not_a_plain_https_url_is_refused(value):
    with pytest.raises(tasks.BadSettingError, match="RDSTREAM_TORCH_INDEX=") as raised:
        tasks.choose_torch("linux", {"RDSTREAM_TORCH": "cuda", "RDSTREAM_TORCH_INDEX": value}, _gpu())
    assert "\x1b" not in str(raised.value)
    assert tasks.choose_torch("linux", {"RDSTREAM_TORCH_INDEX": "https://mirror.example/whl/cu128"},
                              _gpu()).index_url == "https://mirror.example/whl/cu128"


def _fake_run(outputs: dict):
    """A subprocess.run double: ``outputs`` maps the command's last argument to (exit code, stdout)."""
    def run(command, **kwargs):
        code, out = outputs.get(command[-1], (0, ""))
        return subprocess.CompletedProcess(command, code, out, "")
    return run


@pytest.mark.parametrize("listing, found", [
    ((0, "GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-1234)\nGPU 1: NVIDIA L4 (UUID: GPU-5678)\n"),
     ("NVIDIA H100 80GB HBM3, NVIDIA L4", (12, 8))),
    ((0, "GPU 0: Tesla T4 (UUID: GPU-1234)\n  MIG 1g.5gb Device 0: (UUID: MIG-1)\n"), ("Tesla T4", (12, 8))),
    ((0, "garbage\x1b[2J\n"), None),  # answers, names nothing
    ((0, "GPU 0: \x1b]0;title\x07NVIDIA X (UUID: GPU-1)\n"), None),  # a name with control characters is no name
    ((0, ""), None),
    ((9, "GPU 0: NVIDIA H100 (UUID: GPU-1)\n"), None),  # failed: whatever it printed
])
def test_a_gpu_is_found_only_where_nvidia_smi_names_one(listing, found):
    run = _fake_run({"-L": listing, "/usr/bin/nvidia-smi": (0, "| NVIDIA-SMI 570.00   CUDA Version: 12.8 |")})
    assert tasks.nvidia_gpu(run, lambda name: "/usr/bin/nvidia-smi") == found


@pytest.mark.skipif(sys.platform == "win32", reason="the fake nvidia-smi is a shell script")
def test_an_nvidia_smi_printing_garbage_gets_the_cpu_wheel_and_no_escape_code_is_printed(tmp_path):
    result = _run_tasks(_repo_copy(tmp_path), "--dry-run", "test", path=_fake_smi_path(tmp_path, script=GARBAGE_SMI))
    assert result.returncode == 0, result.stderr
    assert "no NVIDIA GPU found" in result.stdout and "--index-url" not in result.stdout
    assert "\x1b" not in result.stdout + result.stderr and "\x07" not in result.stdout + result.stderr


@pytest.mark.parametrize("value", ["garbage", "torch --index-url http://127.0.0.1:9/simple", "\x1b[2Jtorch"])
def test_a_bad_torch_override_is_one_line_and_exit_2_before_anything_is_made(tmp_path, value):
    script = _repo_copy(tmp_path)
    result = _run_tasks(script, "--dry-run", "test", extra_env={"RDSTREAM_TORCH": value})
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.startswith("tasks.py: error: RDSTREAM_TORCH=") and result.stderr.count("\n") == 1
    assert "\x1b" not in result.stderr
    assert _run_tasks(script, "test", extra_env={"RDSTREAM_TORCH": value}).returncode == 2
    assert not (script.parent / ".venv").exists()


def test_help_is_exit_0_on_stdout():
    for flag in ("--help", "-h"):
        result = _run_tasks(ROOT / "tasks.py", flag)
        assert result.returncode == 0 and result.stderr == ""
        assert result.stdout.startswith("usage: python3 tasks.py") and "run" in result.stdout


def test_dry_run_prints_only_what_would_run(tmp_path):
    fresh = _run_tasks(_repo_copy(tmp_path / "fresh"), "--dry-run", "test", path="/nonexistent")
    assert fresh.returncode == 0, fresh.stderr
    assert "-m venv" in fresh.stdout and "-m pip install" in fresh.stdout
    current = _run_tasks(_repo_copy(tmp_path / "current", venv_current=True), "--dry-run", "test", "-k", "x",
                         path="/nonexistent")
    assert current.returncode == 0, current.stderr
    lines = current.stdout.splitlines()
    assert lines[0].startswith("nothing to install:") and len(lines) == 2, current.stdout
    assert lines[1].endswith(" ".join(["-m pytest -q -p no:cacheprovider", *tasks.test_workers([]), "-k x"]))


@pytest.mark.skipif(sys.platform == "win32", reason="the fake rdstream is a shell script")
def test_run_passes_its_arguments_to_the_rdstream_of_the_venv(tmp_path):
    script = _repo_copy(tmp_path, venv_current=True)
    fake = tasks.venv_python(script.parent / ".venv").parent / "rdstream"
    fake.write_text('#!/bin/sh\necho "rdstream got: $*"\nexit 3\n')
    fake.chmod(0o755)
    dry = _run_tasks(script, "--dry-run", "run", "sources", path="/nonexistent")
    assert dry.stdout.splitlines()[-1] == f"{fake} sources"
    result = _run_tasks(script, "run", "file", "my clip.mp4", "--res", "256", path="/nonexistent")
    assert result.stdout == "rdstream got: file my clip.mp4 --res 256\n" and result.returncode == 3
