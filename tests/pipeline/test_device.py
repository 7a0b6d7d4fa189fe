"""How the model steps wait for the device: blocking-sync CUDA events, queued copies back on MPS,
and the start-up notes that name the torch version."""

from __future__ import annotations

import torch

from pipeline import device as device_module
from pipeline.device import Fence, mps_copies_back_non_blocking


def test_cuda_fence_waits_on_a_blocking_sync_event(monkeypatch):
    # a spinning event burns a CPU core per wait; blocking=True makes the waiting thread sleep
    made = []

    class RecordingEvent:
        def __init__(self, **kwargs):
            made.append(kwargs)
            self.synchronized = False

        def record(self, stream=None):
            pass

        def synchronize(self):
            self.synchronized = True

    monkeypatch.setattr(torch.cuda, "Event", RecordingEvent)
    monkeypatch.setattr(torch.cuda, "current_stream", lambda device=None: None)
    fence = Fence(torch.device("cuda"))
    fence.wait()
    assert made == [{"blocking": True}] and fence._event.synchronized


def test_mps_copies_back_are_queued_only_where_torch_has_the_mps_event(monkeypatch):
    assert mps_copies_back_non_blocking() == hasattr(torch.mps, "Event")

    class NoEvent:
        pass

    monkeypatch.setattr(device_module.torch, "mps", NoEvent())
    assert not mps_copies_back_non_blocking()


def test_startup_notes_name_the_torch_version_and_what_the_node_does():
    from pipeline.device import startup_notes

    assert startup_notes(torch.device("cuda"), version="2.11.0+cu130") == []
    old = startup_notes(torch.device("cpu"), version="2.3.1")
    assert len(old) == 1 and "torch 2.3" in old[0]
    mps = startup_notes(torch.device("mps"), resize_antialias=False, version="2.5.0")
    assert len(mps) == 1 and "resized on the CPU before upload" in mps[0]
