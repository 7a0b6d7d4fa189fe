"""Several streams' model steps as batched calls on one model (``rdstream rig``).

Each stream keeps its own ``RollingDepthSteps`` for its state: processing size, fit grid, shared
noise drawn from its own seed, counts. ``SharedModelSteps.run_batch`` (on the ``stream.batcher``
thread) runs what several streams asked for as one call per kind:

- ``encode``: the frames of every stream of one processing size through the encoder at once;
- ``predict``: every stream's snippets of one length and latent size through the UNet at once, each
  snippet with its own stream's noise map, then one decode of all merged frames and one fit decode
  per fit path.

So a stream's depth is its single-stream depth (the same noise, the same maths; only the batch size
of the convolutions differs). ``StreamSteps`` is the ``DepthSteps`` a stream's node sees: its calls
block in the stream's own waiting thread until the batch that holds them has run.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence

import threading

import numpy as np
import torch

from pipeline.coalign.online import SnippetDepth, fit_grid
from pipeline.device import PackedHost, upload
from pipeline.inference import (ddim_step, decode_depth, encode_rgb, first_timestep, make_shared_noise,
                                prepare_frames_on, resize_on_host, timestep_tensor, unet_v)
from pipeline.preprocess import processing_size
from stream.batcher import Batcher
from stream.rolling_depth_steps import FIT_PATH_POOL, RollingDepthSteps


class SharedModelSteps:
    """The batched calls over the per-stream ``RollingDepthSteps`` in ``streams`` (one model).

    decode_batch: frames per decoder call (the per-stream value times the stream count, so one
    batch of merged frames is one call).
    """

    def __init__(self, streams: Sequence[RollingDepthSteps], decode_batch: int | None = None) -> None:
        self.streams = list(streams)
        self.model = self.streams[0].model
        self.decode_batch = decode_batch or max(s.decode_batch for s in self.streams) * len(self.streams)
        self.transfers_to_host = 0  # packed copies started (at most one per predict batch)

    def run_batch(self, key: Hashable, payloads: list) -> list:
        kind = key[0]
        if kind == "encode":
            return self.encode_batch(payloads)
        if kind == "predict":
            return self.predict_batch(payloads)
        raise ValueError(f"unknown batch kind {kind!r}")

    # ------------------------------------------------------------------ encode
    def encode_batch(self, payloads: list[tuple[int, np.ndarray]]) -> list[tuple[np.ndarray, torch.Tensor]]:
        """(stream, uint8 [H, W, 3]) each, one processing size -> (display rgb, latent [4, h, w]) each."""
        model = self.model
        with torch.inference_mode():
            images, displays = [], []
            for stream, rgb in payloads:
                steps = self.streams[stream]
                size = steps._size
                if steps._grid is None:
                    steps._grid = fit_grid(*size, steps.fit_stride)
                if steps.resize_on_host:
                    small = resize_on_host(rgb[None], size) if rgb.shape[:2] != size else rgb[None].copy()
                    image = upload(small, model.device).permute(0, 3, 1, 2).contiguous().float().div_(127.5).sub_(1.0)
                    displays.append(small[0])
                else:
                    image = prepare_frames_on(model.device, rgb[None], size)
                    displays.append(None)
                images.append(image)
                steps.counts.encodes += 1
            latents = encode_rgb(model, torch.cat(images), batch_size=len(images))
            out = []
            for (stream, _), image, display, latent in zip(payloads, images, displays, latents):
                if display is None:
                    display = ((image[0].permute(1, 2, 0) + 1.0) * 127.5).round_().clamp_(0, 255).to(torch.uint8)
                    display = display.cpu().numpy()
                out.append((display, latent))
        return out

    # ------------------------------------------------------------------ predict
    def predict_batch(self, payloads: list[tuple[int, list, Sequence[tuple[bool, ...]]]]
                      ) -> list[Callable[[], list[SnippetDepth]]]:
        """(stream, latents [B][L] of [4, h, w], merged) each, one L and h, w -> per payload a callable
        returning its SnippetDepths (it waits for the batch's one copy to the host)."""
        model = self.model
        t = first_timestep(model)
        with torch.inference_mode():
            stacks, samples = [], []
            for stream, latents, _ in payloads:
                steps = self.streams[stream]
                stacked = torch.stack([torch.stack(snippet) for snippet in latents])
                if steps.noise is None:
                    steps.noise = make_shared_noise(model, tuple(stacked.shape[-2:]), steps.seed)
                    steps._timestep = timestep_tensor(model, t)
                stacks.append(stacked)
                samples.append(steps.noise.expand(stacked.shape[:2] + steps.noise.shape[1:]))
                steps.counts.unet_frame_passes += stacked.shape[0] * stacked.shape[1]
            length = stacks[0].shape[1]
            sample = torch.cat(samples).to(model.dtype)
            v = unet_v(model, torch.cat(stacks), sample, self.streams[payloads[0][0]]._timestep)
            depth_latents = ddim_step(model, v, sample, t, None).flatten(0, 1)

            # rows of the batch: merged frames at full resolution, the rest on their stream's fit path
            flags = [bool(m) for _, _, merged in payloads for snippet in merged for m in snippet]
            owner = [i for i, (_, latents, _) in enumerate(payloads) for _ in range(len(latents) * length)]
            full_rows = [r for r, m in enumerate(flags) if m]
            full = decode_depth(model, depth_latents[full_rows], self.decode_batch, dtype=None)
            by_pool: dict[int, list[int]] = {}
            for r, m in enumerate(flags):
                if not m:
                    by_pool.setdefault(FIT_PATH_POOL[self.streams[payloads[owner[r]][0]].fit_path], []).append(r)
            coarse = {pool: decode_depth(model, depth_latents[rows], self.decode_batch, pool=pool, dtype=None)
                      for pool, rows in by_pool.items()}
            full_of = {r: k for k, r in enumerate(full_rows)}
            coarse_of = {r: (pool, k) for pool, rows in by_pool.items() for k, r in enumerate(rows)}

            # each stream's fit samples [B * L, P] on the device, then ONE packed copy to the host
            fits, spans, row = [], [], 0
            for stream, latents, _ in payloads:
                grid = self.streams[stream]._grid
                rows = range(row, row + len(latents) * length)
                spans.append(rows)
                row = rows.stop
                parts = []
                for r in rows:
                    if flags[r]:
                        parts.append(grid.take(full[full_of[r]][None]).float())
                    else:
                        pool, k = coarse_of[r]
                        piece = coarse[pool][k][None]
                        parts.append(grid.take(piece).float() if pool == 1 else grid.sample(piece, pool))
                fits.append(torch.cat(parts))
            packed = PackedHost([full, *fits], self.streams[payloads[0][0]].host_copy)
            self.transfers_to_host += packed.copies

            for (stream, latents, _), rows in zip(payloads, spans):
                steps = self.streams[stream]
                merged_count = sum(flags[r] for r in rows)
                steps.counts.decodes_full += merged_count
                if FIT_PATH_POOL[steps.fit_path] == 1:  # --fit-decode full: full decodes, only sampled
                    steps.counts.decodes_full += len(rows) - merged_count
                else:
                    steps.counts.decodes_fit += len(rows) - merged_count

        # The copy to the host is only queued (on a GPU): each stream waits for it in its own thread
        # (the returned callables), so this thread goes on to the next batch meanwhile.
        host = _Once(packed.finish)

        def finisher(index: int) -> Callable[[], list[SnippetDepth]]:
            def finish() -> list[SnippetDepth]:
                full_host, *fits_host = host()
                rows, fit_host, snippets = spans[index], fits_host[index], []
                for s in range(len(payloads[index][1])):
                    snippet_rows = rows[s * length : (s + 1) * length]
                    merged_rows = [full_of[r] for r in snippet_rows if flags[r]]  # consecutive
                    first = merged_rows[0] if merged_rows else 0
                    snippets.append(SnippetDepth(full_host[first : first + len(merged_rows)],
                                                 tuple(flags[r] for r in snippet_rows),
                                                 fit_host[s * length : (s + 1) * length]))
                return snippets
            return finish

        return [finisher(i) for i in range(len(payloads))]


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

    def __init__(self, batcher: Batcher, index: int, state: RollingDepthSteps) -> None:
        self.batcher = batcher
        self.index = index
        self.state = state

    @property
    def counts(self):
        return self.state.counts

    def encode(self, rgb: np.ndarray):
        state = self.state
        if state._size is None:  # fixed by the first frame, as a single stream does
            state._size = processing_size(rgb.shape[0], rgb.shape[1], state.res)
        return self.batcher.call(self.index, ("encode", state._size), (self.index, rgb))

    def start_predict(self, latents, merged) -> Callable[[], list[SnippetDepth]]:
        first = latents[0][0]
        key = ("predict", len(latents[0]), tuple(first.shape[-2:]))
        future = self.batcher.submit(self.index, key, (self.index, latents, merged))
        return lambda: future.result()()  # the batch's result is this stream's wait for its host copy

    def predict(self, latents, merged) -> list[SnippetDepth]:
        return self.start_predict(latents, merged)()


class WaitingThread:
    """The node's ``model_thread`` in a rig: a stream's model calls only wait (for the batcher),
    so each runs in an anyio worker thread of its own; the torch work is on the batcher's thread."""

    def call(self, fn, *args, **kwargs):
        return fn(*args, **kwargs)

    async def run(self, fn, *args):
        import anyio

        return await anyio.to_thread.run_sync(lambda: fn(*args))

    def close(self) -> None:
        pass
