"""One model thread serving several streams: requests of one kind from all ready streams, one call.

Triton-style dynamic batching, kept small. Each stream submits a request (``submit``) from its own
waiting thread and blocks on the returned future; the batcher's single thread (which owns the model,
see stream.model.model_thread) takes the oldest request's *key* (its kind and shapes: only requests of one
key can share a call) and gathers more of that key until

- every stream still running has one of that key waiting (nothing more can come), or
- ``max_batch`` are waiting, or
- ``max_wait_s`` has passed since the oldest was submitted or the thread became free, whichever is
  later (so a stalled stream, one whose source delivers nothing, delays the others by at most
  ``max_wait_s`` per call and never blocks them),

then runs ``run_batch(key, payloads)`` once and hands each stream its own result. When more than
``max_batch`` are waiting, streams are taken round-robin, starting after the last stream served
first, so no stream starves. A stream that ends is ``retire``d: nobody waits for it any more.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

#: Default deadline: a few ms, well under one model call (tens of ms on a GPU, far more on a CPU),
#: so waiting for the last stream costs little, and a stalled stream costs each call at most this.
DEFAULT_MAX_WAIT_S = 0.005
#: Default largest batch, in requests (streams): the rig's stream limit.
DEFAULT_MAX_BATCH = 8


@dataclass
class _Request:
    stream: int
    key: Hashable
    payload: Any
    submitted: float
    future: Future = field(default_factory=Future)
    order: int = 0


class Batcher:
    """Gathers requests from ``streams`` streams into batched calls on one thread.

    run_batch(key, payloads) -> one result per payload, in order; runs on the batcher's thread.
    thread_init: called once on that thread first (load the model there, set torch threads).
    calls: batched calls run so far, per key's kind (``key[0]`` for tuple keys); sizes: their sizes.
    """

    def __init__(self, run_batch: Callable[[Hashable, list[Any]], Sequence[Any]], streams: int,
                 max_batch: int = DEFAULT_MAX_BATCH, max_wait_s: float = DEFAULT_MAX_WAIT_S,
                 name: str = "rdstream-model") -> None:
        if max_batch < 1 or max_wait_s < 0:
            raise ValueError("max_batch >= 1 and max_wait_s >= 0")
        self.run_batch = run_batch
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.calls: dict[Hashable, int] = {}
        self.sizes: list[int] = []
        self._active = set(range(streams))
        self._pending: list[_Request] = []
        self._cond = threading.Condition()
        self._closed = False
        self._next_first = 0  # round-robin: the stream served first in the next full batch
        self._free_since = time.perf_counter()
        self._order = itertools.count()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ streams' side
    def submit(self, stream: int, key: Hashable, payload: Any) -> Future:
        """Queue one request; its future holds the result (or the batch's exception)."""
        request = _Request(stream, key, payload, time.perf_counter(), order=next(self._order))
        with self._cond:
            if self._closed:
                raise RuntimeError("the batcher is closed")
            self._pending.append(request)
            self._cond.notify_all()
        return request.future

    def call(self, stream: int, key: Hashable, payload: Any) -> Any:
        """``submit`` and wait for the result (from a stream's waiting thread, never the batcher's)."""
        return self.submit(stream, key, payload).result()

    def retire(self, stream: int) -> None:
        """The stream has ended: batches stop waiting for it."""
        with self._cond:
            self._active.discard(stream)
            self._cond.notify_all()

    def run_on_thread(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run ``fn(*args)`` on the batcher's thread, between batches (setup: loading the model)."""
        return self.submit(-1, ("__call__", id(fn)), (fn, args)).result()

    def close(self, wait: bool = True) -> None:
        """No more batches; ``wait``: until the one running has finished (False: a compile left
        running, whose process ends without waiting)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if wait:
            self._thread.join()

    # ------------------------------------------------------------------ the batcher's thread
    def _loop(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            key = batch[0].key
            try:
                if isinstance(key, tuple) and key[0] == "__call__":
                    fn, args = batch[0].payload
                    results = [fn(*args)]
                else:
                    results = list(self.run_batch(key, [r.payload for r in batch]))
                    kind = key[0] if isinstance(key, tuple) else key
                    self.calls[kind] = self.calls.get(kind, 0) + 1
                    self.sizes.append(len(batch))
            except BaseException as err:  # every stream in the batch sees the failure
                for request in batch:
                    request.future.set_exception(err)
            else:
                for request, result in zip(batch, results):
                    request.future.set_result(result)
            with self._cond:
                self._free_since = time.perf_counter()

    def _next_batch(self) -> list[_Request] | None:
        with self._cond:
            while True:
                if not self._pending:
                    if self._closed:
                        return None
                    self._cond.wait()
                    continue
                oldest = min(self._pending, key=lambda r: r.order)
                if oldest.stream < 0:  # setup call: alone, at once
                    self._pending.remove(oldest)
                    return [oldest]
                same = [r for r in self._pending if r.key == oldest.key]
                waiting_for = self._active - {r.stream for r in same}
                deadline = max(oldest.submitted, self._free_since) + self.max_wait_s
                now = time.perf_counter()
                if len(same) >= self.max_batch or not waiting_for or now >= deadline or self._closed:
                    break
                self._cond.wait(deadline - now)
            batch = self._round_robin(same)
            for request in batch:
                self._pending.remove(request)
            return batch

    def _round_robin(self, same: list[_Request]) -> list[_Request]:
        """At most ``max_batch`` requests, streams in turn from ``_next_first``, oldest first within one."""
        if len(same) <= self.max_batch:
            return sorted(same, key=lambda r: r.order)
        streams = sorted({r.stream for r in same})
        start = next((i for i, s in enumerate(streams) if s >= self._next_first), 0)
        turn = streams[start:] + streams[:start]
        queues = {s: sorted((r for r in same if r.stream == s), key=lambda r: r.order) for s in turn}
        chosen: list[_Request] = []
        while len(chosen) < self.max_batch:
            for s in turn:
                if queues[s] and len(chosen) < self.max_batch:
                    chosen.append(queues[s].pop(0))
        self._next_first = chosen[-1].stream + 1
        return chosen
