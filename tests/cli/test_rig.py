"""``rdstream rig RIG.toml`` as a user runs it: real processes, the rig file's checks, signals, files."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import numpy as np
import pytest

from tests.conftest import ROOT, run_rdstream


def rig_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "rig.toml"
    path.write_text(text)
    return path


def model_table(checkpoint) -> str:
    return f'[model]\ncheckpoint = "{checkpoint}"\nres = 64\nseed = 0\n'


def stream_table(name: str, source: str, *sinks: str, extra: str = "") -> str:
    listed = ", ".join(f'"{s}"' for s in sinks)
    return f'\n[[stream]]\nname = "{name}"\nsource = "{source}"\nsinks = [{listed}]\n{extra}'


def decoded_frames(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def test_two_streams_run_to_their_own_ends_with_named_stats_and_a_summary_each(tmp_path, tiny_checkpoint):
    left, right, stats = tmp_path / "left.npy", tmp_path / "right.mp4", tmp_path / "stats.jsonl"
    path = rig_file(tmp_path, model_table(tiny_checkpoint) + f'\n[rig]\nstats_json = "{stats}"\n'
                    + stream_table("left", "test:?frames=20&size=96x64", f"npy:{left}")
                    + stream_table("right", "test:?frames=8&size=96x64", f"file:{right}", extra="lookahead = 0\n"))
    done = run_rdstream("rig", str(path), timeout=180)
    assert done.returncode == 0, done.stderr
    assert "2 streams, one model (cpu float32, decoder full)" in done.stderr  # the device it runs on, named
    # the stream that ended first did not stop the other
    assert np.load(left).shape[0] == 20 and decoded_frames(right) == 8
    summaries = [line for line in done.stderr.splitlines() if line.startswith("rdstream rig: left:")
                 or line.startswith("rdstream rig: right:")]
    assert len(summaries) == 2 and all("source ended" in line for line in summaries)
    named = {json.loads(line)["stream"] for line in stats.read_text().splitlines()}
    assert named == {"left", "right"}


def test_a_rig_stream_equals_rdstream_run_with_the_same_seed(tmp_path, tiny_checkpoint):
    source = "test:?frames=12&size=96x64"
    path = rig_file(tmp_path, model_table(tiny_checkpoint)
                    + stream_table("a", source, f"npy:{tmp_path / 'a.npy'}")
                    + stream_table("b", "test:?frames=12&size=64x64", f"npy:{tmp_path / 'b.npy'}"))
    assert run_rdstream("rig", str(path), timeout=180).returncode == 0
    single = run_rdstream("run", "--source", source, "--sink", f"npy:{tmp_path / 's.npy'}", "-c", str(tiny_checkpoint),
                          "--res", "64", "--seed", "0", timeout=180)
    assert single.returncode == 0, single.stderr
    assert float(np.abs(np.load(tmp_path / "a.npy") - np.load(tmp_path / "s.npy")).max()) <= 1e-5


def test_each_stream_takes_its_own_speed_snippet_length_and_fit_decode_as_rdstream_run_would(tmp_path, tiny_checkpoint):
    # a: snippets of 2 and full fit decodes; b: the [model]'s rung (snippets of 3): never one model call
    source = "test:?frames=6&size=96x64"
    path = rig_file(tmp_path, model_table(tiny_checkpoint) + 'speed = "stride2"\n'
                    + stream_table("a", source, f"npy:{tmp_path / 'a.npy'}", extra='snip_len = 2\nfit_decode = "full"\n')
                    + stream_table("b", "test:?frames=6&size=64x64", f"npy:{tmp_path / 'b.npy'}",
                                   extra="strides = [2, 4]\n"))
    done = run_rdstream("rig", str(path), "--no-status", timeout=180)
    assert done.returncode == 0, done.stderr
    assert "speed stride2: strides 1,2, snippets of 2, fit decode full" in done.stderr
    assert "speed stride2: strides 2,4, snippets of 3, fit decode half" in done.stderr
    from stream.cli import main  # the reference in this process: no second start-up of torch

    with pytest.raises(SystemExit) as single:
        main(["run", "--source", source, "--sink", f"npy:{tmp_path / 's.npy'}", "-c", str(tiny_checkpoint), "--res", "64",
              "--seed", "0", "--speed", "stride2", "--snip-len", "2", "--fit-decode", "full", "--no-status"])
    assert single.value.code in (0, None)
    rig_a, alone = np.load(tmp_path / "a.npy"), np.load(tmp_path / "s.npy")
    assert rig_a.shape == alone.shape and float(np.abs(rig_a - alone).max()) <= 1e-5
    assert np.load(tmp_path / "b.npy").shape[0] == 6


def test_run_with_several_sources_passes_speed_and_snippet_options_to_every_stream(tmp_path, tiny_checkpoint):
    from stream.cli.rig_file import rig_autoencoders, rig_from_run
    from stream.cli.run_checks import RunOptions

    options = RunOptions(source="test:", sinks=["null:"], checkpoint=str(tiny_checkpoint), res=64, speed="lite",
                         snip_len=3, strides=[1, 2], fit_decode="full", encoder="full", lookahead_given=False)
    spec = rig_from_run(options, ["test:?size=64x64", "test:?size=96x64"])
    assert [(s.basics.plan.snip_len, s.basics.plan.strides, s.basics.quality.fit_decode) for s in spec.streams] \
        == [(3, (1, 2), "full")] * 2
    assert rig_autoencoders(spec) == ("tiny", "full")  # lite's decoder, the encoder as given
    bad = run_rdstream("run", "--source", "test:", "--source", "test:", "--sink", "null:", "--speed", "zoom")
    assert bad.returncode == 2 and "--speed zoom: unknown rung" in bad.stderr, bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1, bad.stderr


BAD_RIGS = {
    "not TOML": ("[model\nres = 64", "not a TOML rig file"),
    "unknown key": (stream_table("a", "test:", "null:", extra="colour = 1\n"), "stream 'a': key 'colour': unknown key"),
    "missing sinks": ('\n[[stream]]\nname = "a"\nsource = "test:"\n', "stream 'a': key 'sinks': missing"),
    "empty sinks": (stream_table("a", "test:"), "stream 'a': key 'sinks'"),
    "missing source": ('\n[[stream]]\nname = "a"\nsinks = ["null:"]\n', "stream 'a': key 'source': missing"),
    "one name twice": (stream_table("a", "test:", "null:") + stream_table("a", "test:", "null:"),
                       "stream 'a': key 'name': two streams"),
    "one file twice": (stream_table("a", "test:", "npy:OUT/x.npy") + stream_table("b", "test:", "npy:OUT/x.npy"),
                       "stream 'b': key 'sinks'"),
    "too many": ("".join(stream_table(f"s{i}", "test:", "null:") for i in range(9)), "at most 8"),
    "wrong type": (stream_table("a", "test:", "null:", extra='lookahead = "two"\n'),
                   "stream 'a': key 'lookahead': must be a whole number"),
    "bad normalize": (stream_table("a", "test:", "null:", extra='normalize = "sideways"\n'),
                      "stream 'a': key 'normalize'"),
    "bad model key": ("[model]\nresolution = 64\n" + stream_table("a", "test:", "null:"), "key 'resolution': unknown key"),
    "empty name": (stream_table("a", "test:", "null:") + stream_table("", "test:", "null:"),
                   "stream '#2': key 'name': the stream name is empty"),
    "seed over 64 bits": (stream_table("a", "test:", "null:", extra="seed = 18446744073709551621\n"),
                          "stream 'a': key 'seed': --seed 18446744073709551621: must be a whole number from 0 to "
                          "18446744073709551615"),
}
# The same checks, in-process (each case above also runs as a user runs it, which takes seconds)
BAD_RIG_VALUES = {
    "blank name": (stream_table("  ", "test:", "null:"), "stream '#1': key 'name': the stream name is empty"),
    "name too long": (stream_table("n" * 300, "test:", "null:"),
                      "stream 'nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn'...: key 'name': the stream name 'nnn"),
    "negative model seed": ("[model]\nseed = -3\n" + stream_table("a", "test:", "null:"), "key 'seed': --seed -3: must be"),
    "lookahead too long": (stream_table("a", "test:", "null:", extra="lookahead = 1001\n"),
                           "stream 'a': key 'lookahead': --lookahead 1001: must be 0 (lowest latency) to 1000 frames"),
    "unknown speed": (stream_table("a", "test:", "null:", extra='speed = "zoom"\n'),
                      "stream 'a': key 'speed': --speed zoom: unknown rung"),
    "unknown model speed": ('[model]\nspeed = "zoom"\n' + stream_table("a", "test:", "null:"),
                            "key 'speed': --speed zoom: unknown rung"),
    "snippet length": (stream_table("a", "test:", "null:", extra="snip_len = 7\n"),
                       "stream 'a': key 'snip_len': --snip-len 7: must be 2, 3 or 4"),
    "strides not numbers": (stream_table("a", "test:", "null:", extra='strides = ["x", 1]\n'),
                            "stream 'a': key 'strides': must be a list of whole numbers, got ['x', 1]"),
    "strides too wide": (stream_table("a", "test:", "null:", extra="strides = [3, 3]\n"),
                         "stream 'a': key 'strides': --strides: dilation 1 every 3 frames"),
    "fit decode": (stream_table("a", "test:", "null:", extra='fit_decode = "quarter"\n'),
                   "stream 'a': key 'fit_decode': --fit-decode quarter: use one of"),
    "stats folder missing": ('[rig]\nstats_json = "OUT/missing/stats.jsonl"\n' + stream_table("a", "test:", "null:"),
                             "[rig] stats_json: output folder"),
}


@pytest.mark.parametrize("case", list(BAD_RIGS))
def test_a_bad_rig_file_is_one_line_naming_file_stream_and_key_exit_2(tmp_path, case):
    text, expected = BAD_RIGS[case]
    path = rig_file(tmp_path, text.replace("OUT", str(tmp_path)))
    started = time.monotonic()
    done = run_rdstream("rig", str(path))
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"rdstream: error: {path}") and expected in lines[0], lines
    assert "Traceback" not in done.stderr and time.monotonic() - started < 30


@pytest.mark.parametrize("case", list(BAD_RIG_VALUES))
def test_a_bad_rig_value_is_one_message_naming_file_stream_and_key(tmp_path, case):
    from pipeline.errors import BadInputError
    from stream.cli.rig_file import read_rig

    text, expected = BAD_RIG_VALUES[case]
    path = rig_file(tmp_path, text.replace("OUT", str(tmp_path)))
    with pytest.raises(BadInputError) as info:
        read_rig(str(path), "/nonexistent-checkpoint")
    message = str(info.value)
    assert message.startswith(str(path)) and expected in message and "\n" not in message, message


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="needs /dev/zero")
def test_a_rig_file_that_never_ends_is_one_line_naming_the_limit_exit_2():
    done = run_rdstream("rig", "/dev/zero", timeout=60)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr == "rdstream: error: /dev/zero: larger than 1 MiB, too large for a TOML rig file; is this the right file?\n"


@pytest.mark.skipif(sys.platform == "win32", reason="sends POSIX signals to a child process")
@pytest.mark.parametrize("signals", [("SIGTERM",), ("SIGINT", "SIGINT")])
def test_sigterm_or_ctrl_c_twice_stops_every_stream_with_every_file_valid(tmp_path, tiny_checkpoint, signals):
    stats = tmp_path / "stats.jsonl"
    files = {name: tmp_path / f"{name}.mp4" for name in ("a", "b")}
    path = rig_file(tmp_path, model_table(tiny_checkpoint) + f'\n[rig]\nstats_json = "{stats}"\n'
                    + stream_table("a", "test:?size=96x64&rate=30", f"file:{files['a']}", f"npy:{tmp_path / 'a.npy'}")
                    + stream_table("b", "test:?size=64x64&rate=30", f"file:{files['b']}"))
    proc = subprocess.Popen([sys.executable, "-m", "stream.cli", "rig", str(path), "--no-status"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            lines = [json.loads(line) for line in stats.read_text().splitlines()] if stats.exists() else []
            if {line["stream"] for line in lines if line["frames_out"] >= 3} == {"a", "b"}:
                break
            time.sleep(0.1)
        assert proc.poll() is None, proc.communicate()[1]
        for name in signals:  # a second Ctrl-C skips the drains
            proc.send_signal(getattr(signal, name))
            time.sleep(0.05)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert decoded_frames(files["a"]) == np.load(tmp_path / "a.npy").shape[0] >= 3
    assert decoded_frames(files["b"]) >= 3
    assert err.count("interrupted") == 2 and "Traceback" not in err


def test_run_with_several_sources_is_a_rig_with_name_and_index_expanded(tmp_path, tiny_checkpoint):
    clip = tmp_path / "hall.mp4"
    from tests.conftest import write_clip

    write_clip(clip, 6)
    done = run_rdstream("run", "--source", f"file:{clip}", "--source", "test:?frames=4&size=64x64",
                        "--sink", f"npy:{tmp_path}/{{name}}-{{index}}.npy", "-c", str(tiny_checkpoint), "--res", "64",
                        "--no-status", timeout=180)
    assert done.returncode == 0, done.stderr
    assert np.load(tmp_path / "hall-1.npy").shape[0] == 6 and np.load(tmp_path / "stream2-2.npy").shape[0] == 4


@pytest.mark.parametrize("args, expected", [
    (["--sink", "npy:OUT/one.npy"], "put {name} or {index} in each --sink"),
    (["--sink", "null:", "--osc", "9000"], "--osc: not with several --source (a rig runs them): for OSC write a rig file with [rig] osc"),
    (["--sink", "null:", "--monitor-token", "new"], "--monitor-token: not with several --source"),
])
def test_run_with_several_sources_refuses_what_a_rig_cannot_do_exit_2(tmp_path, args, expected):
    done = run_rdstream("run", "--source", "test:", "--source", "test:", *[a.replace("OUT", str(tmp_path)) for a in args])
    assert done.returncode == 2 and expected in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_osc_steers_one_stream_by_name_and_every_stream_without_one(tmp_path, tiny_checkpoint):
    from pythonosc.udp_client import SimpleUDPClient

    from tests.support.osc import LOOPBACK, StatusListener, free_udp_port

    listener, port, stats = StatusListener(), free_udp_port(), tmp_path / "stats.jsonl"
    path = rig_file(tmp_path, model_table(tiny_checkpoint)
                    + f'\n[rig]\nstats_json = "{stats}"\nosc = "{port}"\nosc_status = "{listener.endpoint}"\n'
                    + stream_table("a", "test:?size=96x64&rate=30", f"npy:{tmp_path / 'a.npy'}", extra="snip_len = 2\n")
                    + stream_table("b", "test:?size=64x64&rate=30", f"npy:{tmp_path / 'b.npy'}"))
    proc = subprocess.Popen([sys.executable, "-m", "stream.cli", "rig", str(path), "--no-status"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def frames_out() -> dict:
        lines = [json.loads(line) for line in stats.read_text().splitlines()] if stats.exists() else []
        return {line["stream"]: line["frames_out"] for line in lines}

    def wait_until(condition, timeout=120.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and proc.poll() is None and not condition():
            time.sleep(0.1)
        assert condition(), proc.stderr.read() if proc.poll() is not None else "timed out"

    try:
        client = SimpleUDPClient(LOOPBACK, port)
        wait_until(lambda: min(frames_out().get(name, 0) for name in "ab") >= 2)
        client.send_message("/rdstream/b/stop", [])
        wait_until(lambda: any(a[:1] == ["/rdstream/stop"] for address, a in listener.messages
                               if address == "/rdstream/b/ack"))
        time.sleep(2.0)  # b has drained; a goes on
        b_stopped, a_then = frames_out()["b"], frames_out()["a"]
        wait_until(lambda: frames_out()["a"] >= a_then + 2)
        assert frames_out()["b"] == b_stopped
        assert any(address == "/rdstream/a/status" for address, _ in listener.messages)
        client.send_message("/rdstream/a/cmap", ["no-such-map"])  # refused: answered with the address as sent
        wait_until(lambda: any(address == "/rdstream/error" and a[0] == "/rdstream/a/cmap"
                               and "unknown colour map" in a[1] for address, a in listener.messages), 10)
        def acked(stream: str, address: str) -> int:
            return sum(a[:1] == [address] for at, a in listener.messages if at == f"/rdstream/{stream}/ack")

        client.send_message("/rdstream/a/speed", ["stride2"])  # a's rung, its own snippet length kept
        wait_until(lambda: acked("a", "/rdstream/speed") == 1, 30)
        client.send_message("/rdstream/a/speed", ["zoom"])  # refused, as a single stream's is
        wait_until(lambda: any(address == "/rdstream/error" and a[0] == "/rdstream/a/speed" and "expects one rung" in a[1]
                               for address, a in listener.messages), 10)
        client.send_message("/rdstream/speed", ["pair"])  # every stream still running (b has stopped)
        wait_until(lambda: acked("a", "/rdstream/speed") == 2, 30)
        assert not acked("b", "/rdstream/speed")
        client.send_message("/rdstream/stop", [])  # every stream
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
        listener.close()
    assert proc.returncode == 0, err
    assert np.load(tmp_path / "a.npy").shape[0] > np.load(tmp_path / "b.npy").shape[0] >= 2
    assert err.count("interrupted: stopped by OSC from 127.0.0.1:") == 2, err  # each stream's summary
    assert "a: speed: strides 1,2 from frame" in err, err  # stride2 kept a's snip_len = 2: the window carried over


@pytest.mark.parametrize("as_run", [False, True])
def test_a_bad_rig_is_answered_before_torch_loads(tmp_path, as_run):
    path = rig_file(tmp_path, stream_table("a", "test:", "null:") + stream_table("a", "test:", "null:"))
    command = ["run", "--source", "test:", "--source", "test:", "--sink", "null:", "--preset", "nope"] if as_run \
        else ["rig", str(path)]
    code = ("import sys\nfrom stream.cli import main\ntry:\n    main(sys.argv[1:])\nexcept SystemExit as done:\n"
            "    print(done.code, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code, *command], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.stdout.split() == ["2", "False"], out.stdout + out.stderr


def test_a_stream_whose_source_fails_ends_alone_and_the_exit_code_says_so(tmp_path, tiny_checkpoint):
    from tests.conftest import write_clip

    whole = write_clip(tmp_path / "whole.mkv", 30).read_bytes()
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(whole[: len(whole) // 2])  # a file that ends early: its source fails mid-run
    path = rig_file(tmp_path, model_table(tiny_checkpoint)
                    + stream_table("cut", f"file:{cut}", f"npy:{tmp_path / 'cut.npy'}")
                    + stream_table("ok", "test:?frames=24&size=96x64", f"npy:{tmp_path / 'ok.npy'}"))
    done = run_rdstream("rig", str(path), timeout=180)
    assert done.returncode == 1, done.stderr
    assert np.load(tmp_path / "ok.npy").shape[0] == 24  # the other stream went on to its end
    assert 0 < np.load(tmp_path / "cut.npy").shape[0] < 30  # what it read before failing is written
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("rdstream: error: 1 of 2 streams failed: cut: source failed") and "truncated" in last


def test_sigterm_during_a_rigs_compile_stops_at_once_with_no_half_made_file(tmp_path, tiny_checkpoint, monkeypatch):
    # inductor compiles for many minutes on the CPU: the stop must not wait for it, as a single stream's
    monkeypatch.delenv("RDSTREAM_COMPILE_BACKEND", raising=False)
    proc = subprocess.Popen(
        [sys.executable, "-m", "stream.cli", "run", "--source", "test:?size=64x36&frames=20", "--source",
         "test:?size=64x36&frames=20", "--sink", f"npy:{tmp_path}/{{name}}-{{index}}.npy", "-c", str(tiny_checkpoint),
         "--res", "64", "--compile", "--device", "cpu", "--no-status"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        said = []
        for line in proc.stderr:  # the compile starts right after this line, said once for the rig
            said.append(line)
            if "--compile: compiling" in line:
                break
        assert said and "on the CPU this takes many minutes" in said[-1] and "Ctrl-C stops it" in said[-1], said
        time.sleep(0.5)
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        rest = proc.stderr.read()
        proc.wait(timeout=30)
        took = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0 and took < 5, (took, rest)
    assert "the compile is left unfinished" in rest and "Traceback" not in rest, rest
    assert rest.count("stopped during the compile") == 2, rest  # one summary per stream, as a single run's
    assert not list(tmp_path.glob("*.npy"))  # nothing reached the sinks: no half-made file
