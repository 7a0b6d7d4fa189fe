"""Counting model calls (encoder, UNet, decoder invocations), for ``bench.rig`` and the rig's tests."""

from __future__ import annotations

from contextlib import contextmanager


class _Counted:
    """Stands in for a model part: counts its calls, delegates everything else."""

    def __init__(self, part, counts: dict, name: str) -> None:
        self._part, self._counts, self._name = part, counts, name

    def __call__(self, *args, **kwargs):
        self._counts[self._name] += 1
        return self._part(*args, **kwargs)

    def __getattr__(self, attr):
        return getattr(self._part, attr)


@contextmanager
def counting_model_calls(model):
    """Within the block, ``counts`` (yielded) holds the calls of model.encoder, .unet and .decoder."""
    counts = {"encoder": 0, "unet": 0, "decoder": 0}
    parts = {name: getattr(model, name) for name in counts}
    for name, part in parts.items():
        setattr(model, name, _Counted(part, counts, name))
    try:
        yield counts
    finally:
        for name, part in parts.items():
            setattr(model, name, part)
