"""Several streams on one model (stream.rig): each stream's depth equals its single-stream run, with
far fewer model calls; the batcher's deadline keeps a stalled stream from blocking the others."""

from __future__ import annotations

import threading
import time

import anyio
import numpy as np
import pytest

from bench.rig_counts import counting_model_calls
from bench.support.stream_doubles import ArraySource, RecordingSink
from tests.support.failing_sink import FailingSink
from io_adapters.base import Source
from io_adapters.frames import EndOfStream
from pipeline.coalign import OnlineAligner
from pipeline.errors import RuntimeFailure
from pipeline.snippets import SnippetPlan
from stream.model.batcher import Batcher
from stream.stages.display_normalizer import parse_normalize
from stream.node import NodeConfig, StreamNode
from stream.rig import Rig, RigStream
from stream.model.rolling_depth_steps import RollingDepthSteps
from tests.conftest import moving_pattern

PLAN = SnippetPlan(3, (1, 5))
LOOKAHEAD = 2

DISPLAY = lambda: parse_normalize('running')  # what sinks get: depth in [0, 1]
# A batch's convolutions differ from a single stream's in the last float32 bits (up to 9e-6 per
# snippet seen with 4 streams, held snippet by snippet in test_gpu_paths); the aligner's iterative
# fit carries that into the emitted depth (1.5e-5 seen with 4 streams at 8a1fbbb, on this test's clips).
SAME_DEPTH = 5e-5


def clip(k: int, frames: int) -> np.ndarray:
    """A different clip per stream (the pattern rolled and mirrored)."""
    base = moving_pattern(frames, 64, 96)
    return np.ascontiguousarray(np.roll(base, 11 * k, axis=2)[:, :, :: (-1) ** k])


def single_run(model, frames, seed, **paths):
    sink = RecordingSink()
    steps = RollingDepthSteps(model, 64, seed=seed, **paths)
    node = StreamNode(ArraySource(frames), [("mem:", sink)], steps, OnlineAligner.for_plan(PLAN, LOOKAHEAD), DISPLAY(),
                      NodeConfig(plan=PLAN, lookahead=LOOKAHEAD), report=print)
    result = anyio.run(node.run)
    return np.stack([f.depth for f in sink.frames]), result


def rig_stream(model, name, source, seed, sink, **paths):
    return RigStream(name, source, [("mem:", sink)], RollingDepthSteps(model, 64, seed=seed, **paths),
                     OnlineAligner.for_plan(PLAN, LOOKAHEAD), DISPLAY(), NodeConfig(plan=PLAN, lookahead=LOOKAHEAD))


@pytest.mark.parametrize("count", [2, 4])
def test_each_stream_of_a_rig_equals_its_single_run_with_far_fewer_model_calls(tiny_model, count):
    frames = 12
    clips = [clip(k, frames) for k in range(count)]
    separate_calls = 0
    singles = []
    for k in range(count):
        with counting_model_calls(tiny_model) as calls:
            depth, result = single_run(tiny_model, clips[k], seed=k)
        separate_calls += sum(calls.values())
        singles.append(depth)
    sinks = [RecordingSink() for _ in range(count)]
    rig = Rig([rig_stream(tiny_model, f"cam{k}", ArraySource(clips[k]), k, sinks[k]) for k in range(count)],
              max_wait_s=0.05)
    with counting_model_calls(tiny_model) as calls:
        outcomes = anyio.run(rig.run, False)
    assert [o.failed for o in outcomes] == [False] * count
    for k in range(count):
        depth = np.stack([f.depth for f in sinks[k].frames])
        assert depth.shape == singles[k].shape
        diff = float(np.abs(depth - singles[k]).max())
        print(f"stream {k}: max abs diff {diff:.2e} over range {float(singles[k].max() - singles[k].min()):.3f}")
        assert diff <= SAME_DEPTH
    ratio = sum(calls.values()) / separate_calls  # the same output frames either way
    assert ratio <= (0.6 if count == 2 else 0.35), (calls, separate_calls)


def test_the_gpu_paths_one_packed_copy_and_host_resize_give_the_single_runs_depth(tiny_model):
    """host_copy/resize_on_host=True run, on the CPU, what a GPU runs: one packed copy per batch,
    waited for in each stream's own thread."""
    paths = dict(host_copy=True, resize_on_host=True)
    clips = [clip(k, 8) for k in range(2)]
    singles = [single_run(tiny_model, clips[k], k, **paths)[0] for k in range(2)]
    sinks = [RecordingSink() for _ in range(2)]
    rig = Rig([rig_stream(tiny_model, f"s{k}", ArraySource(clips[k]), k, sinks[k], **paths) for k in range(2)],
              max_wait_s=0.05)
    anyio.run(rig.run, False)
    for k in range(2):
        assert float(np.abs(np.stack([f.depth for f in sinks[k].frames]) - singles[k]).max()) <= SAME_DEPTH
    assert rig.shared.transfers_to_host == rig.batcher.calls["predict"]  # one copy per batched call


class StalledSource(Source):
    """A source that never delivers a frame until closed (a camera that froze)."""

    uri = "stalled:"
    nominal_fps = 30.0

    def __init__(self) -> None:
        self.closed = threading.Event()

    def recv(self):
        self.closed.wait()
        raise EndOfStream()

    def close(self) -> None:
        self.closed.set()


def test_a_stalled_stream_does_not_block_the_others_beyond_the_deadline(tiny_model):
    frames = 10
    live, stalled = RecordingSink(), RecordingSink()
    rig = Rig([rig_stream(tiny_model, "live", ArraySource(clip(0, frames)), 0, live),
               rig_stream(tiny_model, "frozen", StalledSource(), 1, stalled)], max_wait_s=0.02)

    async def run_then_stop():
        async with anyio.create_task_group() as tg:
            async def stop_when_live_done():
                with anyio.fail_after(60):
                    while len(live.frames) < frames:
                        await anyio.sleep(0.05)
                rig.request_stop()
            tg.start_soon(stop_when_live_done)
            return await rig.run(False)

    outcomes = anyio.run(run_then_stop)
    assert len(live.frames) == frames and not stalled.frames
    assert [o.failed for o in outcomes] == [False, False]
    assert outcomes[1].result.end_reason == "interrupted"


def test_batcher_waits_at_most_its_deadline_and_serves_streams_round_robin():
    seen = []
    batcher = Batcher(lambda key, payloads: seen.append(list(payloads)) or list(payloads), streams=3,
                      max_batch=2, max_wait_s=0.05)
    try:
        started = time.perf_counter()
        assert batcher.call(0, ("k",), "a") == "a"  # streams 1 and 2 never come: the deadline ends the wait
        waited = time.perf_counter() - started
        assert 0.04 <= waited < 1.0
        batcher.retire(2)
        futures = [batcher.submit(s, ("k",), f"{s}") for s in (0, 1)]  # every active stream there: at once
        assert [f.result(timeout=5) for f in futures] == ["0", "1"]
    finally:
        batcher.close()
    assert seen == [["a"], ["0", "1"]]


def test_a_batch_of_one_runs_at_once_whatever_the_deadline():
    # rdstream run is a rig of one stream: its model calls never wait for a peer that does not exist
    batcher = Batcher(lambda key, payloads: list(payloads), streams=1, max_wait_s=5.0)
    try:
        started = time.perf_counter()
        assert [batcher.call(0, ("encode", (64, 64)), k) for k in range(4)] == [0, 1, 2, 3]
        assert time.perf_counter() - started < 1.0  # waiting for the deadline would take 20 s
    finally:
        batcher.close()


def test_batcher_round_robin_takes_turns_when_more_are_ready_than_a_batch():
    gate = threading.Event()
    order = []

    def run(key, payloads):
        if key == ("block",):
            gate.wait()
        order.append(list(payloads))
        return payloads

    batcher = Batcher(run, streams=4, max_batch=2, max_wait_s=0.0)
    try:
        blocker = batcher.submit(0, ("block",), "b")
        time.sleep(0.05)  # the thread is busy: the next four queue up
        futures = [batcher.submit(s, ("k",), s) for s in (0, 1, 2, 3)]
        gate.set()
        for f in [blocker, *futures]:
            f.result(timeout=5)
    finally:
        batcher.close()
    assert order[1:] == [[0, 1], [2, 3]]


class BrokenSource(ArraySource):
    """Delivers ``good`` frames, then fails as a camera unplugged mid-run does."""

    def __init__(self, frames, good: int) -> None:
        super().__init__(frames)
        self.good = good

    async def recv(self):
        if self.next >= self.good:
            raise RuntimeFailure("camera 3 disappeared")
        return await super().recv()


def test_a_failing_source_or_sink_stays_in_its_stream(tiny_model):
    frames = 10
    healthy, broken_sink, after_broken_source = RecordingSink(), FailingSink(fail_at=2), RecordingSink()
    rig = Rig([rig_stream(tiny_model, "healthy", ArraySource(clip(0, frames)), 0, healthy),
               rig_stream(tiny_model, "bad-sink", ArraySource(clip(1, frames)), 1, broken_sink),
               rig_stream(tiny_model, "bad-source", BrokenSource(clip(2, frames), good=4), 2, after_broken_source)],
              max_wait_s=0.02, report=lambda line: None)
    outcomes = anyio.run(rig.run, False)
    assert len(healthy.frames) == frames and not outcomes[0].failed
    assert outcomes[1].failed and "disk full" in str(outcomes[1].error)  # its node stopped, alone
    assert outcomes[2].failed and "camera 3" in str(outcomes[2].result.source_error)
    assert len(after_broken_source.frames) == 4  # what it read before failing still came out


def test_streams_with_different_fit_grids_never_share_a_predict_call(tiny_model):
    import torch

    from stream.model.batched_steps import StreamSteps
    from stream.model.rolling_depth_steps import BatchedCalls

    states = [RollingDepthSteps(tiny_model, 64, fit_stride=stride) for stride in (4, 10)]
    for state in states:
        state.fix_size(48, 80)
    latent = torch.zeros(4, 5, 8)
    with pytest.raises(ValueError, match="one fit grid"):  # their fit samples cannot be one tensor
        BatchedCalls(tiny_model, 4, False).start_predict([(s, [[latent] * 3], [(True,) * 3]) for s in states])

    class KeyRecorder:  # the batcher batches only requests of one key
        keys = []

        def submit(self, stream, key, payload):
            self.keys.append(key)

    for index, state in enumerate(states):
        StreamSteps(KeyRecorder(), index, state).start_predict([[latent] * 3], [(True,) * 3])
    assert KeyRecorder.keys[0] != KeyRecorder.keys[1] and KeyRecorder.keys[0][:3] == KeyRecorder.keys[1][:3]


def test_a_rigs_compile_warms_up_every_batch_its_streams_can_make_together(tiny_model, monkeypatch):
    # where compiling fails the calls run eager, but still see (and record) every shape they get
    from pipeline.compiled import compile_model
    from stream.model.batched_steps import SharedModelSteps

    monkeypatch.setenv("RDSTREAM_COMPILE_BACKEND", "no_such_backend")
    lines: list[str] = []
    model = compile_model(tiny_model, lines.append)
    states = [RollingDepthSteps(model, 64, seed=seed, fit_stride=4, decode_batch=1, fit_path=path,
                                snippets_per_call=(1, 2), snippet_length=3, snippet_lengths=lengths,
                                report=lines.append) for seed, path, lengths in ((0, "half", (2, 3)), (1, "full", (3,)))]
    shared = SharedModelSteps(states, compile=True)
    assert shared.compiling  # from the start: a stop before the first frame abandons the compile
    frames = moving_pattern(2, 48, 80)
    for state in states:
        state.fix_size(48, 80)
    latents = [latent for _, latent in shared.run_batch(("encode", states[0].size), [(0, frames[0]), (1, frames[1])])]
    assert not shared.compiling and any(line.startswith("--compile: ready in") for line in lines)
    unet, decoder = model.unet.call, model.decoder.call
    warmed = set(unet.shapes), set(decoder.shapes)
    # 1..4 snippets (two streams of up to two each) of 2 and of 3 frames
    assert {signature[0][0][0][0] for signature in warmed[0]} == {2, 3, 4, 6, 8, 9, 12}
    assert {signature[0][0][0][0] for signature in warmed[1]} == {1, 2}  # decode_batch 1 x 2 streams, both sizes
    # each stream alone and both together (one snippet length: the batch key keeps lengths apart)
    for rows, length in (((0,), 2), ((1,), 3), ((0, 1), 3)):
        payloads = [(i, [[latents[i]] * length] * 2, [(True,) + (False,) * (length - 1)] * 2) for i in rows]
        for finish in shared.run_batch(("predict",), payloads):
            finish()
    assert (set(unet.shapes), set(decoder.shapes)) == warmed
    assert not any("was not compiled before the first frame" in line for line in lines)


@pytest.mark.timeout(30)  # the bug this pins hung for ever
def test_a_stream_call_cancelled_before_a_thread_took_it_is_neither_run_nor_waited_for():
    """A second Ctrl-C can cancel a rig stream's model call before any worker thread has taken it
    (here: every thread token is held). That call must not run later, and the cancelled stage must
    not wait for it: it used to wait for a call that never started, and the rig never ended."""
    import threading

    import anyio

    from stream.model.batched_steps import WaitingThread

    ran: list[int] = []
    release = threading.Event()

    async def main() -> float:
        anyio.to_thread.current_default_thread_limiter().total_tokens = 1
        async with anyio.create_task_group() as tg:
            tg.start_soon(anyio.to_thread.run_sync, release.wait)  # holds the only thread token
            await anyio.sleep(0.05)
            threading.Timer(0.5, release.set).start()  # the token comes back after the cancel
            start = time.perf_counter()
            with anyio.move_on_after(0.1):
                await WaitingThread().run(ran.append, 1)
            return time.perf_counter() - start

    assert anyio.run(main) < 5.0
    time.sleep(0.2)
    assert ran == []
