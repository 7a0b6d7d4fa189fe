"""Device settings and host/device traffic of the model steps (CUDA, MPS and CPU alike).

- ``configure_backends``: once per process, for the device and dtype a command runs with: cuDNN
  autotuning (a stream has fixed shapes) and TF32 matmuls/convolutions for fp32 on CUDA.
- ``Fence``: marks "the work queued so far" on a device; ``wait()`` blocks until it is done. On
  CUDA a blocking-sync event (waits for this work only, never a device-wide sync, and the waiting
  thread sleeps instead of spinning a CPU core), on MPS ``torch.mps``'s event when the build has
  one, on the CPU nothing (the work is done when the call returns).
- ``PackedHost``: several device tensors fetched to the host in ONE copy (their bytes packed into one
  device buffer), queued without blocking the caller where that is safe (below).
- ``upload``: uint8 frames to the device, from pinned memory on CUDA (queued, not waited for).

Non-blocking copies, per device and torch version (checked against PyTorch's pin-memory tutorial
and its issue tracker):
- CUDA: host-to-device from pinned memory is queued; from pageable memory it would gain nothing.
  Device-to-host into pinned memory is queued and must be waited for before the host reads it
  (the ``Fence``).
- MPS, device-to-host: queued (``non_blocking=True``) into a fresh host buffer per call, read only
  after a ``torch.mps.Event`` recorded behind the copy has been waited for: safe in every torch this
  project supports (``torch.mps.Event`` exists from 2.1; MIN_TORCH is 2.4). A build without the
  event copies blocking (``mps_copies_back_non_blocking``).
- MPS, host-to-device: blocking in every torch version. A non-blocking upload reads the CPU source
  after the call returns, and returns wrong values when the source is freed or reused before the
  MPS stream has caught up (PyTorch issues 139550, torch 2.5.1, and 189690, still open in 2026): no
  released torch fixes it, and an upload is ~0.3 MB per frame at 384 px.
- ``StageTimer``: stage boundaries of the model steps, timed on the device (CUDA events) for benchmarks.
- ``startup_notes``: the one-line notes a command prints at start-up about the torch version on
  this device (the versions we rely on are listed in docs/streaming.md, section "GPU").
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

#: Oldest torch this project supports (pyproject.toml): torch.compile with CUDA graphs, uint8
#: antialiased resize on the CPU, scaled_dot_product_attention on every device.
MIN_TORCH = (2, 4)
#: avg_pool2d(ceil_mode=True) is wrong on MPS from 2.4 until the fix (PyTorch PR 161011) in 2.9;
#: the node never uses ceil_mode (pipeline.inference pads odd latents), so this only explains.
MPS_CEIL_POOL_FIXED = (2, 9)


def torch_version(text: str | None = None) -> tuple[int, int]:
    """(major, minor) of ``text`` (default: the running torch), e.g. "2.11.0+cu130" -> (2, 11)."""
    parts = (text or torch.__version__).split("+")[0].split(".")
    return int(parts[0]), int("".join(ch for ch in parts[1] if ch.isdigit()) or 0)


def configure_backends(device: torch.device, dtype: torch.dtype) -> None:
    """Process-wide backend settings for a command running on ``device`` in ``dtype``."""
    if device.type != "cuda":
        return
    torch.backends.cudnn.benchmark = True  # fixed shapes per stream: autotune once, reuse
    if dtype == torch.float32:  # the fp32 presets (paper): TF32 tensor cores, ~1e-3 relative error
        torch.set_float32_matmul_precision("high")  # the API that means TF32 in every torch we support
        torch.backends.cudnn.allow_tf32 = True


def startup_notes(device: torch.device, resize_antialias: bool = True, version: str | None = None) -> list[str]:
    """One line per known torch limitation on ``device`` and what the node does instead (empty: none)."""
    major_minor = torch_version(version)
    shown = ".".join(map(str, major_minor))
    notes = []
    if major_minor < MIN_TORCH:
        notes.append(f"torch {shown} is older than {'.'.join(map(str, MIN_TORCH))}, the oldest this node is "
                     f"tested with; install a newer torch if anything fails")
    if device.type == "mps" and not resize_antialias:
        notes.append(f"torch {shown} on mps has no antialiased resize: frames are resized on the CPU before upload")
    return notes


def prepare_device(device: torch.device, dtype: torch.dtype) -> list[str]:
    """``configure_backends`` and the start-up notes for ``device`` (a command prints each as one line)."""
    from pipeline.inference import device_resizes_antialiased

    configure_backends(device, dtype)
    antialias = device.type != "mps" or device_resizes_antialiased(device)
    return startup_notes(device, resize_antialias=antialias)


class Fence:
    """The work queued on ``device`` up to now; ``wait()`` blocks until it has finished."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self._event = None
        if device.type == "cuda":
            self._event = torch.cuda.Event(blocking=True)  # the waiting thread sleeps, no spinning
            self._event.record(torch.cuda.current_stream(device))
        elif device.type == "mps":
            event_class = getattr(getattr(torch, "mps", None), "Event", None)
            if event_class is not None:
                self._event = event_class()
                self._event.record()

    def wait(self) -> None:
        if self._event is not None:
            self._event.synchronize()
        elif self.device.type == "mps":
            torch.mps.synchronize()


def mps_copies_back_non_blocking() -> bool:
    """Whether device-to-host copies on MPS are queued (module docstring): this torch has ``torch.mps.Event``."""
    return getattr(getattr(torch, "mps", None), "Event", None) is not None


def _aligned(nbytes: int, to: int = 16) -> int:
    return -(-nbytes // to) * to


class PackedHost:
    """Device tensors -> the same tensors on the host, with ONE device-to-host copy.

    ``start(tensors)`` queues the packing and the copy and returns at once (pinned memory on CUDA; on
    MPS where ``mps_copies_back_non_blocking``); ``finish()`` waits for that copy only (a ``Fence``)
    and returns the host tensors, views of
    one fresh buffer per call (the caller may keep them). With ``copy=False`` (the CPU device) the
    tensors are returned as they are: nothing to transfer.
    """

    def __init__(self, tensors: Sequence[torch.Tensor], copy: bool) -> None:
        self._tensors = list(tensors)
        self._host: torch.Tensor | None = None
        self._fence: Fence | None = None
        self._layout: list[tuple[int, int, torch.dtype, torch.Size]] = []
        self.copies = 0  # device-to-host copies started: 0 or 1
        if not copy or not self._tensors:
            return
        device = self._tensors[0].device
        pieces, offset = [], 0
        for t in self._tensors:
            raw = t.contiguous().reshape(-1).view(torch.uint8)
            padded = _aligned(raw.numel())
            pieces.append(raw)
            if padded > raw.numel():
                pieces.append(raw.new_zeros(padded - raw.numel()))
            self._layout.append((offset, raw.numel(), t.dtype, t.shape))
            offset += padded
        packed = torch.cat(pieces)
        pinned = device.type == "cuda"
        queued = pinned or (device.type == "mps" and mps_copies_back_non_blocking())
        # a fresh host buffer per call, read only after the fence: nothing can reuse it while the copy runs
        self._host = torch.empty(offset, dtype=torch.uint8, pin_memory=pinned)
        self._host.copy_(packed, non_blocking=queued)
        self.copies = 1
        self._fence = Fence(device) if queued else None

    def finish(self) -> list[torch.Tensor]:
        if self._host is None:
            return self._tensors
        if self._fence is not None:
            self._fence.wait()
        return [self._host[start : start + size].view(dtype).reshape(shape)
                for start, size, dtype, shape in self._layout]


def upload(frames, device: torch.device) -> torch.Tensor:
    """uint8 numpy frames -> the same tensor on ``device``.

    CUDA: through a pinned staging tensor, so the copy is queued behind the work already queued
    instead of waiting for it (a copy from pageable memory would); torch's pinned-memory cache
    does not hand the staging block out again before the copy has finished. Elsewhere a plain copy.
    """
    host = torch.from_numpy(frames)
    if device.type != "cuda":
        return host.to(device)
    staging = torch.empty(host.shape, dtype=host.dtype, pin_memory=True)
    staging.copy_(host)
    return staging.to(device, non_blocking=True)


class StageTimer:
    """Marks stage boundaries of the model steps; ``stages()`` gives the milliseconds between marks,
    summed per stage name (a mark names the stage that just ended; "start" only starts).

    CUDA: events recorded in the stream, so the times are GPU time, read after the work is done.
    Elsewhere wall time at the marks (the CPU works synchronously).
    """

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"
        self._marks: list[tuple[str, object]] = []

    def mark(self, stage: str) -> None:
        if self.cuda:
            event = torch.cuda.Event(enable_timing=True)
            event.record()
            self._marks.append((stage, event))
        else:
            import time

            self._marks.append((stage, time.perf_counter()))

    def stages(self) -> dict[str, float]:
        """Milliseconds per stage since the last ``stages()``; waits for the marked work on CUDA."""
        totals: dict[str, float] = {}
        if self.cuda and self._marks:
            self._marks[-1][1].synchronize()
        for (_, before), (stage, after) in zip(self._marks, self._marks[1:]):
            if stage == "start":
                continue
            ms = before.elapsed_time(after) if self.cuda else (after - before) * 1000.0
            totals[stage] = totals.get(stage, 0.0) + ms
        self._marks = []
        return totals
