"""Several streams' model steps as batched calls on one model (``rdstream rig``).

Each stream keeps its own ``RollingDepthSteps`` for its state: processing size, fit grid, shared
noise drawn from its own seed, counts. ``SharedModelSteps.run_batch`` (on the ``stream.model.batcher``
thread) runs what several streams asked for through the same ``BatchedCalls`` a single stream uses
(as a batch of one): one encoder call for the frames of one processing size; one UNet call for the
snippets of one length, latent size and fit grid, each snippet with its own stream's noise map,
then one decode of all merged frames, one fit decode per fit path and one packed copy back.

So a stream's depth is its single-stream depth (the same noise, the same maths; only the batch size
of the convolutions differs). The oracle stand-in (``stream.model.oracle_model.OracleSteps``) has no batched
calls: each stream's calls run on the same thread, one stream after the other. ``StreamSteps`` is the ``DepthSteps`` a stream's node sees: its calls
block in the stream's own waiting thread until the batch that holds them has run.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Sequence

import numpy as np

from pipeline.coalign.snippet_depth import SnippetDepth
from stream.model.batcher import Batcher
from stream.model.rolling_depth_steps import BatchedCalls, RollingDepthSteps


class SharedModelSteps:
    """The batched calls over the per-stream ``RollingDepthSteps`` in ``streams`` (one model).

    decode_batch: frames per decoder call (the per-stream value times the stream count, so one
    batch of merged frames is one call).
    """

    def __init__(self, streams: Sequence[RollingDepthSteps], decode_batch: int | None = None,
                 compile: bool = False) -> None:
        self.streams = list(streams)
        first = self.streams[0]
        # None: the oracle's steps, which answer each stream's calls themselves
        self.calls = BatchedCalls(first.model, decode_batch or max(s.decode_batch for s in self.streams) * len(self.streams),
                                  first.host_copy) if isinstance(first, RollingDepthSteps) else None
        self.compile = compile  # the streams' model is compiled (``--compile``): warm up each processing size
        # True until the first warm-up is done (from the start, as a single stream's): a stop signal
        # until then has nothing to drain and abandons the compile (stream.rig)
        self.compiling = compile
        self._warmed: set[tuple[int, int]] = set()

    @property
    def transfers_to_host(self) -> int:
        """Packed copies started (at most one per predict batch)."""
        return self.calls.transfers_to_host

    def run_batch(self, key: Hashable, payloads: list) -> list:
        """``encode``: (stream, uint8 [H, W, 3]) each -> (display rgb, latent) each. ``predict``:
        (stream, latents [B][L], merged) each -> per payload a callable returning its SnippetDepths
        (it waits for the batch's one copy to the host, in the stream's own thread)."""
        kind = key[0]
        if self.calls is None:  # the oracle: each stream's own steps (``index``: the source frame's)
            if kind == "encode":
                return [self.streams[stream].encode(rgb, *index) for stream, rgb, *index in payloads]
            return [lambda depth=self.streams[stream].predict(latents, merged): depth
                    for stream, latents, merged in payloads]
        if kind == "encode":
            if self.compile and key[1] not in self._warmed:
                self.warm_up(key[1])
            return self.calls.encode([(self.streams[stream], rgb) for stream, rgb in payloads])
        if kind == "predict":
            finish = _Once(self.calls.start_predict([(self.streams[stream], latents, merged)
                                                     for stream, latents, merged in payloads]))
            return [lambda index=index: finish()[index] for index in range(len(payloads))]
        raise ValueError(f"unknown batch kind {kind!r}")


    def warm_up(self, size: tuple[int, int]) -> None:
        """Compile every shape a batch of frames of processing ``size`` can take before its first frame:
        every stream's snippet lengths, UNet calls of 1 up to all streams' snippets together, every
        decode batch of the shared calls and every stream's fit path (``RollingDepthSteps.warm_up``)."""
        first = next(s for s in self.streams if s.size == size)  # sized by its first frame (StreamSteps.encode)
        most = sum(max(s.snippets_per_call) for s in self.streams)
        try:
            first.warm_up(self.calls, range(1, most + 1), sorted({n for s in self.streams for n in s.snippet_lengths}),
                          [s.fit_path for s in self.streams])
        finally:
            self._warmed.add(size)
            self.compiling = False


class _Once:
    """Calls ``fn`` once, from whichever thread asks first; the others get the same result."""

    def __init__(self, fn: Callable[[], list]) -> None:
        self._fn, self._lock, self._result = fn, threading.Lock(), None

    def __call__(self) -> list:
        with self._lock:
            if self._result is None:
                self._result = self._fn()
            return self._result


class StreamSteps:
    """One stream's ``DepthSteps`` in a rig: its calls wait for the batch that runs them.

    Call ``encode``/``predict`` from a thread other than the batcher's (the node's waiting thread).
    """

    def __init__(self, batcher: Batcher, index: int, state: RollingDepthSteps,
                 shared: SharedModelSteps | None = None) -> None:
        self.batcher = batcher
        self.index = index
        self.state = state
        self.shared = shared  # the rig's calls, whose first compile ``compiling`` tells (None: no compile)

    @property
    def counts(self):
        return self.state.counts

    @property
    def compiling(self) -> bool:
        """True while the rig's first compile runs (``SharedModelSteps.compiling``)."""
        return self.shared is not None and self.shared.compiling

    @property
    def takes_frame_index(self) -> bool:
        """The oracle knows frames by their source index (``stream.stages.encode_stage``)."""
        return getattr(self.state, "takes_frame_index", False)

    def encode(self, rgb: np.ndarray, *index: int):
        size = self.state.fix_size(*rgb.shape[:2])  # fixed by the first frame, as a single stream does
        return self.batcher.call(self.index, ("encode", size), (self.index, rgb, *index))

    def start_predict(self, latents, merged) -> Callable[[], list[SnippetDepth]]:
        # one batch needs one snippet length, latent size and fit grid (its samples are one tensor)
        key = ("predict", len(latents[0]), tuple(getattr(latents[0][0], "shape", ())[-2:]),
               getattr(self.state, "grid", None))  # the oracle's "latents" are frame indices, it has no grid
        future = self.batcher.submit(self.index, key, (self.index, latents, merged))
        return lambda: future.result()()  # the batch's result is this stream's wait for its host copy

    def predict(self, latents, merged) -> list[SnippetDepth]:
        return self.start_predict(latents, merged)()


class WaitingThread:
    """The node's ``model_thread`` in a rig: a stream's model calls only wait (for the batcher),
    so each runs in an anyio worker thread of its own; the torch work is on the batcher's thread.

    A cancelled call that has started still waits for its batch (the model's state is the batch's
    until then), unless ``abandoned`` (a stop during the compile, which may take minutes: the process
    then ends without waiting, ``stop_signals.end_without_waiting``). A call cancelled before its
    worker thread took it never runs (anyio drops it, or it sees ``skipped``), so there is nothing to
    wait for: waiting then would wait forever (a second Ctrl-C landing in that gap hung a rig)."""

    def __init__(self) -> None:
        self.abandoned = False

    def call(self, fn, *args, **kwargs):
        return fn(*args, **kwargs)

    async def run(self, fn, *args):
        import anyio

        lock = threading.Lock()
        started = skipped = False
        done = threading.Event()

        def call():
            nonlocal started
            with lock:  # either it starts, or the cancelled caller has already walked away
                if skipped:
                    return None
                started = True
            try:
                return fn(*args)
            finally:
                done.set()

        try:
            return await anyio.to_thread.run_sync(call, abandon_on_cancel=True)
        except anyio.get_cancelled_exc_class():
            with lock:
                skipped = True
                wait = started and not self.abandoned
            if wait:
                with anyio.CancelScope(shield=True):
                    await anyio.to_thread.run_sync(done.wait)
            raise

    def abandon(self) -> None:
        self.abandoned = True

    def close(self) -> None:
        pass
