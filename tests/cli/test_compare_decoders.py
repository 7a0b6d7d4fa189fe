"""``rdstream dev compare-decoders`` (stream/cli/compare_decoders.py): its float64 error maths on
the host only (MPS has no float64)."""

from __future__ import annotations

import math

import torch


def test_compare_decoders_makes_float64_only_on_the_host(tiny_model, monkeypatch):
    # MPS has no float64: every .double() of fit_path_error must take a tensor already moved by .cpu()
    from stream.cli.compare_decoders import fit_path_error

    real_cpu, real_double = torch.Tensor.cpu, torch.Tensor.double
    doubled = []

    def cpu(self, *args, **kwargs):
        moved = real_cpu(self, *args, **kwargs).clone()  # a new tensor, so it can carry the mark
        moved.moved_to_host = True
        return moved

    def double(self, *args, **kwargs):
        doubled.append(getattr(self, "moved_to_host", False))
        return real_double(self, *args, **kwargs)

    monkeypatch.setattr(torch.Tensor, "cpu", cpu)
    monkeypatch.setattr(torch.Tensor, "double", double)
    error = fit_path_error(tiny_model, torch.randn(3, 4, 5, 8))
    assert doubled and all(doubled)
    assert 0 < error < math.inf  # the pooled decode's samples differ from the full decode's
