"""The node's model steps on a loaded RollingDepth model (the pipeline's functions, one frame at a time).

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
tensor is built from Python numbers per frame: the timestep is made once per stream, the row
indices of a merge pattern once per pattern. ``start_predict`` queues a call and returns the wait
as a callable, so a caller (``stream.snippet_stage``) can wait in another thread while the model
thread queues the next frame's upload and encode behind it: the GPU never idles between frames
for Python.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np
import torch

from pipeline.checkpoint import RollingDepthModel
from pipeline.coalign.online import FitGrid, SnippetDepth, fit_grid
from pipeline.compiled import compile_cost, compile_model
from pipeline.device import PackedHost, upload
from pipeline.inference import (decode_depth, encode_rgb, first_timestep, make_shared_noise, predict_snippets,
                                prepare_frames_on, resize_on_host, timestep_tensor)
from pipeline.preprocess import processing_size
from pipeline.presets import check_fit_path
from stream.depth_steps import StepCounts

#: Resolution factor of each fit path's decode (the paths are ``pipeline.presets.FIT_PATHS``).
FIT_PATH_POOL = {"half": 2, "full": 1}


class _Rows:
    """Row indices of one merge pattern (flags of the B * L frames of a call), made once per pattern.

    full, fit: device index tensors of the merged / fit-only rows; order: CPU index that puts the
    fit samples, computed full rows first, back into snippet order.
    """

    def __init__(self, flags: tuple[bool, ...], device: torch.device) -> None:
        full = [i for i, m in enumerate(flags) if m]
        fit = [i for i, m in enumerate(flags) if not m]
        self.count_full, self.count_fit = len(full), len(fit)
        self.full = torch.tensor(full, dtype=torch.long, device=device)
        self.fit = torch.tensor(fit, dtype=torch.long, device=device)
        self.order = torch.from_numpy(np.argsort(np.array(full + fit, dtype=np.int64), kind="stable"))


class RollingDepthSteps:
    """``DepthSteps`` for a ``RollingDepthModel`` (see stream.depth_steps for the contract).

    res: longer edge of the processing size (0 = native; rounded to a multiple of 8).
    seed: seed of the shared noise (None = random). decode_batch: frames per VAE decode call.
    fit_stride: the aligner's fit stride (``OnlineAligner.fit_stride``), so samples land on its grid.
    fit_path: ``half`` or ``full`` (module docstring).
    decode_everything: the old path, kept for benchmarks: every frame decoded at full resolution
        and handed over whole (the aligner then samples the fit itself).
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
        self.timer = timer
        self.counts = StepCounts()
        self.transfers_to_host = 0  # packed copies started (at most one per predict)
        self.noise: torch.Tensor | None = None
        self._timestep: torch.Tensor | None = None
        self._size: tuple[int, int] | None = None  # (H', W') of the first frame
        self._grid: FitGrid | None = None  # the aligner's fit grid at that size
        self._rows: dict[tuple[bool, ...], _Rows] = {}

    def _mark(self, stage: str) -> None:
        if self.timer is not None:
            self.timer.mark(stage)

    def encode(self, rgb: np.ndarray) -> tuple[np.ndarray, torch.Tensor]:
        """uint8 [H, W, 3] -> (uint8 [H', W', 3] display rgb, latent [4, h, w] on the model's device)."""
        if self._size is None:
            self._size = processing_size(rgb.shape[0], rgb.shape[1], self.res)
            self._grid = fit_grid(*self._size, self.fit_stride)
            if self.compile_pending:
                self.warm_up()
        with torch.inference_mode():
            self._mark("start")
            if self.resize_on_host:
                # a fresh array either way: the display colour outlives the source's buffer
                small = resize_on_host(rgb[None], self._size) if rgb.shape[:2] != self._size else rgb[None].copy()
                image = upload(small, self.model.device)
                image = image.permute(0, 3, 1, 2).contiguous().float().div_(127.5).sub_(1.0)
                display = small[0]
            else:
                image = prepare_frames_on(self.model.device, rgb[None], self._size)
                display = None
            self._mark("upload")
            latent = encode_rgb(self.model, image, batch_size=1)[0]
            self._mark("encode")
            self.counts.encodes += 1
            if display is None:  # the CPU: the image is on the host already (.cpu() is a no-op there)
                display = ((image[0].permute(1, 2, 0) + 1.0) * 127.5).round_().clamp_(0, 255).to(torch.uint8)
                display = display.cpu().numpy()
        return display, latent

    def predict(self, latents: list[list[torch.Tensor]], merged: Sequence[tuple[bool, ...]]) -> list[SnippetDepth]:
        """B snippets of L latents [4, h, w] -> one ``SnippetDepth`` per snippet (one UNet call).

        Full-resolution frames stay in the model's dtype; fit samples are float32.
        """
        return self.start_predict(latents, merged)()

    def start_predict(self, latents: list[list[torch.Tensor]],
                      merged: Sequence[tuple[bool, ...]]) -> Callable[[], list[SnippetDepth]]:
        """Queue ``predict``'s work on the device; returns the wait for its result (callable from any thread)."""
        with torch.inference_mode():
            stacked = torch.stack([torch.stack(snippet) for snippet in latents])
            b, length = stacked.shape[:2]
            if self.noise is None:
                self.noise = make_shared_noise(self.model, tuple(stacked.shape[-2:]), self.seed)
                self._timestep = timestep_tensor(self.model, first_timestep(self.model))
            depth_latents = predict_snippets(self.model, stacked, self.noise, self._timestep).flatten(0, 1)
            self._mark("unet")
            self.counts.unet_frame_passes += b * length
            if self.decode_everything:
                depth = decode_depth(self.model, depth_latents, self.decode_batch)
                self._mark("decode_full")
                self.counts.decodes_full += b * length
                packed = self._to_host([depth])
                return lambda: [SnippetDepth.from_full(d) for d in packed.finish()[0].unflatten(0, (b, length))]

            flags = tuple(bool(m) for snippet in merged for m in snippet)
            rows = self._rows.get(flags)
            if rows is None:
                rows = self._rows[flags] = _Rows(flags, self.model.device)
            grid = self._grid
            full = decode_depth(self.model, depth_latents.index_select(0, rows.full), self.decode_batch, dtype=None)
            fit_parts = [grid.take(full).float()]
            self._mark("decode_full")
            if rows.count_fit:
                pool = FIT_PATH_POOL[self.fit_path]
                coarse = decode_depth(self.model, depth_latents.index_select(0, rows.fit), self.decode_batch,
                                      pool=pool, dtype=None)
                fit_parts.append(grid.take(coarse).float() if pool == 1 else grid.sample(coarse, pool))
                self._mark("decode_fit")
            fit = torch.cat(fit_parts) if len(fit_parts) > 1 else fit_parts[0]
            self.counts.decodes_full += rows.count_full
            if FIT_PATH_POOL[self.fit_path] == 1:  # --fit-decode full: full decodes, only sampled on the fit grid
                self.counts.decodes_full += rows.count_fit
            else:
                self.counts.decodes_fit += rows.count_fit
            packed = self._to_host([full, fit])

        def finish() -> list[SnippetDepth]:
            full_host, fit_host = packed.finish()
            fit_host = fit_host.index_select(0, rows.order) if rows.count_fit and rows.count_full else fit_host
            out, first = [], 0
            for s in range(b):
                flags_s = flags[s * length : (s + 1) * length]
                count = sum(flags_s)
                out.append(SnippetDepth(full_host[first : first + count], flags_s, fit_host[s * length : (s + 1) * length]))
                first += count
            return out

        return finish

    def _to_host(self, tensors: list[torch.Tensor]) -> PackedHost:
        packed = PackedHost(tensors, self.host_copy)
        self.transfers_to_host += packed.copies
        self._mark("to_host")
        return packed

    def warm_up(self) -> None:
        """Run every shape of this stream twice (compiles, then CUDA graphs) on zero latents, then forget
        it all (noise, counts): the stream starts as if nothing ran. Needs the processing size (first
        frame). Afterwards a shape not run here is reported when it comes (``seal_compiled``)."""
        started = time.perf_counter()
        height, width = self._size
        self.report(f"--compile: compiling the model for {width}x{height} before the first frame: "
                    f"{compile_cost(self.model.device)}; Ctrl-C stops it at once")
        self.compiling = True
        try:
            self._run_every_shape(height, width)
        finally:
            self.compiling = False
        self.report(f"--compile: ready in {time.perf_counter() - started:.0f} s; the first frame follows")

    def _run_every_shape(self, height: int, width: int) -> None:
        from pipeline.compiled import seal_compiled

        scale = self.model.vae_scale
        latent = torch.zeros(4, height // scale, width // scale, device=self.model.device, dtype=self.model.dtype)
        counts, self.counts, self.compile_pending = self.counts, StepCounts(), False
        for _ in range(2):  # twice: CUDA graphs are recorded on the second call of a shape, not the first
            for length in self.snippet_lengths:  # every snippet length the run may switch to
                for snippets in self.snippets_per_call:  # every UNet batch the stream's plan can make
                    frames = snippets * length
                    flags = [i % 2 == 0 for i in range(frames)]
                    merged = [tuple(flags[s * length : (s + 1) * length]) for s in range(snippets)]
                    self.predict([[latent] * length for _ in range(snippets)], merged)
            for size in range(1, self.decode_batch + 1):  # every decode batch, full and fit shapes
                for pool in sorted({1, FIT_PATH_POOL[self.fit_path]}):
                    with torch.inference_mode():
                        decode_depth(self.model, latent.expand(size, -1, -1, -1).contiguous(), self.decode_batch,
                                     pool=pool, dtype=None)
        self.counts, self.noise, self._timestep, self._rows = counts, None, None, {}
        self.transfers_to_host = 0
        seal_compiled(self.model)
