"""The node's model steps on a loaded RollingDepth model: ONE implementation (``BatchedCalls``) for a
single stream (a batch of one, ``RollingDepthSteps``) and for a rig's streams (``stream.model.batched_steps``).

The shared noise map is drawn once per stream, on the first snippet (when the latent size is
known), exactly as offline draws it once per video. The processing size is fixed by the first
frame: the noise map, the window and the aligner are tied to it. A live source that changes
resolution mid-stream (NDI may) has its later frames resized to that size, so the node goes on.

Per snippet only the frames the aligner will still merge are decoded at full resolution; the
others (already emitted, needed only for the aligner's scale/shift fit) take the fit path:
``half`` decodes the 2x average-pooled latent (a quarter of the decoder's work) and samples the
fit grid from it bilinearly; ``full`` decodes them at full resolution and keeps only the samples.
Fit samples are taken on the model's device, so only [L, P] floats per snippet cross to the host
for them; the full-resolution frames cross in the model's dtype.

Host/device traffic per frame (on CUDA and MPS; the CPU has none): one upload of the frame (uint8,
resized on the CPU to the processing size, so the display colour needs no copy back; from pinned
memory on CUDA) and ONE copy back per ``predict``, the finished frames and the fit samples packed
together (``pipeline.device.PackedHost``), waited on by an event. No scalar is read back and no
tensor is built from Python numbers per frame and no device tensor is indexed with a Python list: the
timestep is made once per model, the row indices of a batch composition (each stream's fit path and
merge pattern) once per composition, used through ``index_select``; fit samples are gathered once
per decode, not per row. A rig's batch of N streams has the same habits and one copy back.
``start_predict`` queues a call and returns the wait as a callable, so a caller (``stream.stages.snippet_stage``) can wait in another thread while the model
thread queues the next frame's upload and encode behind it: the GPU never idles between frames
for Python.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np
import torch

from pipeline.checkpoint import RollingDepthModel
from pipeline.coalign.fit_grid import FitGrid, fit_grid
from pipeline.coalign.snippet_depth import SnippetDepth
from pipeline.compiled import compile_cost, compile_model
from pipeline.device import PackedHost, upload
from pipeline.inference import (ddim_step, decode_depth, encode_rgb, first_timestep, make_shared_noise,
                                prepare_frames_on, resize_on_host, timestep_tensor, unet_v)
from pipeline.preprocess import processing_size
from pipeline.presets import check_fit_path
from stream.model.depth_steps import StepCounts

#: Resolution factor of each fit path's decode (the paths are ``pipeline.presets.FIT_PATHS``).
FIT_PATH_POOL = {"half": 2, "full": 1}


class _Rows:
    """The rows of one batch composition, made once per composition: which rows of the call's
    ``[R, 4, h, w]`` depth latents decode at full resolution, which on each fit path, and where each
    snippet's pieces lie in the results.

    composition: per stream of the call, (pool of its fit path, its flags: one per frame of its
    snippets, in order; True = merged, so decoded at full resolution).
    full: device index of the merged rows; fit: (pool, device index of the fit-only rows) per pool;
    order: CPU index that puts the fit samples (merged rows first, then each pool's) back into row
    order (None: already in it); spans: per stream, per snippet (first merged row in ``full``,
    merged count, flags, first row).
    """

    def __init__(self, composition: tuple[tuple[int, tuple[bool, ...]], ...], length: int,
                 device: torch.device) -> None:
        flags = [(pool, m) for pool, stream_flags in composition for m in stream_flags]
        full = [r for r, (_, m) in enumerate(flags) if m]
        pools = sorted({pool for pool, m in flags if not m})
        fit = [(pool, [r for r, (p, m) in enumerate(flags) if not m and p == pool]) for pool in pools]
        self.full = torch.tensor(full, dtype=torch.long, device=device)
        self.fit = [(pool, torch.tensor(rows, dtype=torch.long, device=device)) for pool, rows in fit]
        placed = full + [r for _, rows in fit for r in rows]
        self.order = None if placed == sorted(placed) else torch.from_numpy(np.argsort(np.array(placed), kind="stable"))
        self.spans, row, first = [], 0, 0
        for _, stream_flags in composition:
            snippets = []
            for s in range(0, len(stream_flags), length):
                snippet = stream_flags[s : s + length]
                snippets.append((first, sum(snippet), snippet, row))
                first, row = first + sum(snippet), row + length
            self.spans.append(snippets)


class BatchedCalls:
    """The model calls of one or more streams on one model, each kind as ONE call: the one
    implementation behind a single stream (``RollingDepthSteps``: a batch of one) and a rig
    (``stream.model.batched_steps``).

    decode_batch: frames per decoder call. host_copy: copy results back through one packed buffer
    (module docstring). timer: a ``pipeline.device.StageTimer`` or None.
    """

    def __init__(self, model: RollingDepthModel, decode_batch: int, host_copy: bool, timer=None) -> None:
        self.model = model
        self.decode_batch = decode_batch
        self.host_copy = host_copy
        self.timer = timer
        self.transfers_to_host = 0  # packed copies started (at most one per predict call)
        self._timestep: torch.Tensor | None = None
        self._rows: dict[tuple, _Rows] = {}

    def _mark(self, stage: str) -> None:
        if self.timer is not None:
            self.timer.mark(stage)

    def encode(self, frames: Sequence[tuple[RollingDepthSteps, np.ndarray]]) -> list[tuple[np.ndarray, torch.Tensor]]:
        """(stream, uint8 [H, W, 3]) each, one processing size (``RollingDepthSteps.fix_size`` done)
        -> (uint8 [H', W', 3] display rgb, latent [4, h, w] on the model's device) each."""
        device = self.model.device
        with torch.inference_mode():
            self._mark("start")
            images, displays = [], []
            for stream, rgb in frames:
                if stream.resize_on_host:
                    # a fresh array either way: the display colour outlives the source's buffer
                    small = resize_on_host(rgb[None], stream.size) if rgb.shape[:2] != stream.size else rgb[None].copy()
                    images.append(upload(small, device).permute(0, 3, 1, 2).contiguous().float().div_(127.5).sub_(1.0))
                    displays.append(small[0])
                else:
                    images.append(prepare_frames_on(device, rgb[None], stream.size))
                    displays.append(None)
                stream.counts.encodes += 1
            self._mark("upload")
            batch = images[0] if len(images) == 1 else torch.cat(images)
            latents = encode_rgb(self.model, batch, batch_size=len(images))
            self._mark("encode")
            out = []
            for image, display, latent in zip(images, displays, latents):
                if display is None:  # the CPU: the image is on the host already (.cpu() is a no-op there)
                    display = ((image[0].permute(1, 2, 0) + 1.0) * 127.5).round_().clamp_(0, 255).to(torch.uint8)
                    display = display.cpu().numpy()
                out.append((display, latent))
        return out

    def start_predict(self, calls: Sequence[tuple[RollingDepthSteps, list[list[torch.Tensor]], Sequence[tuple[bool, ...]]]]
                      ) -> Callable[[], list[list[SnippetDepth]]]:
        """(stream, latents [B][L] of [4, h, w], merged) each, one L, latent size and fit grid -> the
        wait (callable from any thread) for each stream's ``SnippetDepth``s, in order.

        One UNet call (each snippet with its own stream's noise map), one full-resolution decode of
        the merged rows, one decode per fit path of the rest, fit samples gathered per decode, and
        ONE packed copy to the host. Full-resolution frames stay in the model's dtype; fit samples
        are float32.
        """
        model = self.model
        t = first_timestep(model)
        grid = calls[0][0].grid
        if any(stream.grid != grid for stream, _, _ in calls[1:]):  # their samples are one tensor
            raise ValueError("one predict call needs one fit grid (batch streams by it)")
        with torch.inference_mode():
            length = len(calls[0][1][0])
            stacked = torch.stack([latent for _, latents, _ in calls for snippet in latents for latent in snippet])
            samples = []
            for stream, latents, _ in calls:
                if stream.noise is None:
                    stream.noise = make_shared_noise(model, tuple(stacked.shape[-2:]), stream.seed)
                samples.append(stream.noise.expand((len(latents), length) + stream.noise.shape[1:]))
                stream.counts.unet_frame_passes += len(latents) * length
            if self._timestep is None:
                self._timestep = timestep_tensor(model, t)
            sample = (samples[0] if len(samples) == 1 else torch.cat(samples)).to(model.dtype)
            v = unet_v(model, stacked.unflatten(0, (-1, length)), sample, self._timestep)
            depth_latents = ddim_step(model, v, sample, t, None).flatten(0, 1)
            self._mark("unet")

            composition = tuple((FIT_PATH_POOL[stream.fit_path],
                                 (True,) * len(latents) * length if stream.decode_everything
                                 else tuple(bool(m) for snippet in merged for m in snippet))
                                for stream, latents, merged in calls)
            rows = self._rows.get((length, composition))
            if rows is None:
                rows = self._rows[(length, composition)] = _Rows(composition, length, model.device)
            full = decode_depth(model, depth_latents.index_select(0, rows.full), self.decode_batch, dtype=None)
            fit_parts = [grid.take(full).float()]
            self._mark("decode_full")
            for pool, index in rows.fit:
                coarse = decode_depth(model, depth_latents.index_select(0, index), self.decode_batch, pool=pool, dtype=None)
                fit_parts.append(grid.take(coarse).float() if pool == 1 else grid.sample(coarse, pool))
                self._mark("decode_fit")
            fit = fit_parts[0] if len(fit_parts) == 1 else torch.cat(fit_parts)
            for (stream, _, _), (pool, flags) in zip(calls, composition):
                merged_count = sum(flags)
                stream.counts.decodes_full += merged_count
                if pool == 1:  # --fit-decode full: full decodes, only sampled on the fit grid
                    stream.counts.decodes_full += len(flags) - merged_count
                else:
                    stream.counts.decodes_fit += len(flags) - merged_count
            packed = PackedHost([full, fit], self.host_copy)
            self.transfers_to_host += packed.copies
            self._mark("to_host")
        everything = [stream.decode_everything for stream, _, _ in calls]

        def finish() -> list[list[SnippetDepth]]:
            full_host, fit_host = packed.finish()
            if rows.order is not None:
                fit_host = fit_host.index_select(0, rows.order)
            return [[SnippetDepth.from_full(full_host[first : first + count].float()) if whole else
                     SnippetDepth(full_host[first : first + count], flags, fit_host[row : row + length])
                     for first, count, flags, row in spans]
                    for spans, whole in zip(rows.spans, everything)]

        return finish

    def forget(self) -> None:
        """Drop what the calls made once (after a warm-up on made-up shapes)."""
        self._timestep, self._rows, self.transfers_to_host = None, {}, 0


class RollingDepthSteps:
    """``DepthSteps`` for a ``RollingDepthModel`` (see stream.model.depth_steps for the contract), and one
    stream's state in a rig (``stream.model.batched_steps``): its size, fit grid, noise and counts.

    res: longer edge of the processing size (0 = native; rounded to a multiple of 8).
    seed: seed of the shared noise (None = random). decode_batch: frames per VAE decode call.
    fit_stride: the aligner's fit stride (``OnlineAligner.fit_stride``), so samples land on its grid.
    fit_path: ``half`` or ``full`` (module docstring).
    decode_everything: the old path, kept for benchmarks: every frame decoded at full resolution
        and handed over whole in float32 (the aligner then samples the fit itself).
    host_copy: copy results to the host through one packed buffer (None = on every device but the
        CPU, where the tensors are already there; True on the CPU runs the GPU's path, for tests).
    resize_on_host: resize the uint8 frame on the CPU before upload and take the display colour
        from it (None = on every device but the CPU; the CPU resizes in float32 as offline does).
    compile: ``torch.compile`` the UNet and decoder (``pipeline.compiled``); every shape of the
        stream is run on the first frame (``warm_up``: the UNet at each of ``snippet_lengths`` x
        ``snippets_per_call``, decode batches of 1..``decode_batch``), with a line through
        ``report``, so no frame waits for a compile; a shape met later says so in one line.
    snippet_lengths: every snippet length the run may use (its own and those of the ``--speed``
        rungs it may switch to; None = ``snippet_length`` only). A stream's tail snippet is one
        snippet of that length; a rig would pass its batch sizes as ``snippets_per_call``.
    timer: a ``pipeline.device.StageTimer`` to mark stage boundaries in (benchmarks), or None.

    size: (H', W') processing size, fixed by the first frame; grid: the aligner's fit grid at that
    size; noise: the shared noise map [1, 4, h, w], drawn on the first snippet.
    """

    def __init__(self, model: RollingDepthModel, res: int, seed: int | None = None, decode_batch: int = 4,
                 fit_stride: int = 10, fit_path: str = "half", decode_everything: bool = False,
                 host_copy: bool | None = None, resize_on_host: bool | None = None, compile: bool = False,
                 snippets_per_call: Sequence[int] = (1, 2), snippet_length: int = 3,
                 snippet_lengths: Sequence[int] | None = None,
                 report: Callable[[str], None] | None = None, timer=None) -> None:
        check_fit_path(fit_path)
        on_cpu = model.device.type == "cpu"
        self.report = report or (lambda message: None)
        self.model = compile_model(model, self.report) if compile else model
        self.eager_model = model
        self.res = res
        self.seed = seed
        self.decode_batch = decode_batch
        self.fit_stride = fit_stride
        self.fit_path = fit_path
        self.decode_everything = decode_everything
        self.host_copy = (not on_cpu) if host_copy is None else host_copy
        self.resize_on_host = (not on_cpu) if resize_on_host is None else resize_on_host
        self.compile_pending = compile
        # True until warm_up has compiled (from the start: a stop between the first frame's arrival
        # and the compile must not wait for it either); a stop signal then abandons the compile
        self.compiling = compile
        self.snippets_per_call = tuple(snippets_per_call)
        self.snippet_length = snippet_length
        self.snippet_lengths = tuple(sorted(set(snippet_lengths or ()) | {snippet_length}))
        self.counts = StepCounts()
        self.noise: torch.Tensor | None = None
        self.size: tuple[int, int] | None = None
        self.grid: FitGrid | None = None
        self.calls = BatchedCalls(self.model, decode_batch, self.host_copy, timer)  # this stream alone

    @property
    def timer(self):
        """A ``pipeline.device.StageTimer`` the calls mark stage boundaries in, or None."""
        return self.calls.timer

    @timer.setter
    def timer(self, timer) -> None:
        self.calls.timer = timer

    @property
    def transfers_to_host(self) -> int:
        """Packed copies this stream's own calls started (at most one per predict)."""
        return self.calls.transfers_to_host

    def fix_size(self, height: int, width: int) -> tuple[int, int]:
        """The processing size, fixed (with the fit grid) by the first frame's ``height`` x ``width``."""
        if self.size is None:
            self.size = processing_size(height, width, self.res)
            self.grid = fit_grid(*self.size, self.fit_stride)
        return self.size

    def encode(self, rgb: np.ndarray) -> tuple[np.ndarray, torch.Tensor]:
        """uint8 [H, W, 3] -> (uint8 [H', W', 3] display rgb, latent [4, h, w] on the model's device)."""
        self.fix_size(*rgb.shape[:2])
        if self.compile_pending:
            self.warm_up()
        return self.calls.encode([(self, rgb)])[0]

    def predict(self, latents: list[list[torch.Tensor]], merged: Sequence[tuple[bool, ...]]) -> list[SnippetDepth]:
        """B snippets of L latents [4, h, w] -> one ``SnippetDepth`` per snippet (one UNet call)."""
        return self.start_predict(latents, merged)()

    def start_predict(self, latents: list[list[torch.Tensor]],
                      merged: Sequence[tuple[bool, ...]]) -> Callable[[], list[SnippetDepth]]:
        """Queue ``predict``'s work on the device; returns the wait for its result (callable from any thread)."""
        finish = self.calls.start_predict([(self, latents, merged)])
        return lambda: finish()[0]

    def warm_up(self, calls: BatchedCalls | None = None, snippets_per_call: Sequence[int] | None = None,
                snippet_lengths: Sequence[int] | None = None, fit_paths: Sequence[str] = ()) -> None:
        """Run every shape of this stream twice (compiles, then CUDA graphs) on zero latents, then forget
        it all (noise, counts): the stream starts as if nothing ran. Needs the processing size (first
        frame). Afterwards a shape not run here is reported when it comes (``seal_compiled``).

        A rig (``stream.model.batched_steps``) passes its shared ``calls`` and the shapes its batches of
        several streams take: snippets per UNet call, snippet lengths and fit paths of every stream
        (default: this stream's own)."""
        calls = calls or self.calls
        snippets_per_call = tuple(snippets_per_call or self.snippets_per_call)
        lengths = tuple(snippet_lengths or self.snippet_lengths)
        pools = sorted({1, FIT_PATH_POOL[self.fit_path], *(FIT_PATH_POOL[path] for path in fit_paths)})
        started = time.perf_counter()
        height, width = self.size
        self.report(f"--compile: compiling the model for {width}x{height} before the first frame: "
                    f"{compile_cost(self.model.device)}; Ctrl-C stops it at once")
        self.compiling = True
        try:
            self._run_every_shape(height, width, calls, snippets_per_call, lengths, pools)
        finally:
            self.compiling = False
        self.report(f"--compile: ready in {time.perf_counter() - started:.0f} s; the first frame follows")

    def _run_every_shape(self, height: int, width: int, calls: BatchedCalls, snippets_per_call: Sequence[int],
                         lengths: Sequence[int], pools: Sequence[int]) -> None:
        from pipeline.compiled import keep_every_shape, seal_compiled

        keep_every_shape()  # on this thread, the one that compiles and runs the model
        seal_compiled(self.model, False)  # a rig warms up again for a stream of another size: not news
        scale = self.model.vae_scale
        latent = torch.zeros(4, height // scale, width // scale, device=self.model.device, dtype=self.model.dtype)
        counts, self.counts, self.compile_pending = self.counts, StepCounts(), False
        for _ in range(2):  # twice: CUDA graphs are recorded on the second call of a shape, not the first
            for length in lengths:  # every snippet length the run may switch to
                for snippets in snippets_per_call:  # every UNet batch the stream's plan (or rig) can make
                    frames = snippets * length
                    flags = [i % 2 == 0 for i in range(frames)]
                    merged = [tuple(flags[s * length : (s + 1) * length]) for s in range(snippets)]
                    calls.start_predict([(self, [[latent] * length for _ in range(snippets)], merged)])()
            for size in range(1, calls.decode_batch + 1):  # every decode batch, full and fit shapes
                for pool in pools:
                    with torch.inference_mode():
                        decode_depth(self.model, latent.expand(size, -1, -1, -1).contiguous(), calls.decode_batch,
                                     pool=pool, dtype=None)
        self.counts, self.noise = counts, None
        calls.forget()
        seal_compiled(self.model)
