"""``--compile``: the UNet and the depth decoder through ``torch.compile``, eager wherever that fails.

On CUDA the mode is ``reduce-overhead``: inductor's kernels replayed as CUDA graphs, which removes
the launch overhead that dominates the small shapes of a live stream (at 384 px one UNet call is 2
snippets x 3 frames of 48x27 latents). Graphs are recorded per input shape, so the caller runs
every shape of its stream once before the first frame (``RollingDepthSteps`` does, with a
progress line). Elsewhere the mode is inductor's default.

CUDA graphs replay into the same output memory: the next call of a shape overwrites the last
one's outputs (a decode of several batches keeps them all until it joins them). So with graphs
each call starts a new graph step (``torch.compiler.cudagraph_mark_step_begin``) and its outputs
are copied out (the UNet's velocity and a decoded batch: small next to the work that made them).

Compiling is lazy: it happens on the first call of each shape, and that is where a device or torch
version that cannot compile fails. ``CompiledCall`` then says so in one line (``report``) and runs
eager from then on; out of memory is never taken for a compile failure (it is raised).

Shapes are static (``dynamic=False``): each input shape gets its own graph, compiled and recorded at
the warm-up, instead of dynamo's automatic switch to a dynamic graph on the second shape (slower
kernels, and tried first, so it shadows the static graphs already recorded). The warm-up runs every
shape a stream can take; then ``seal_compiled`` marks the shapes known, and a call with another
shape later (a stall of a minute or more while it compiles) says so in one line.

``RDSTREAM_COMPILE_BACKEND`` picks another ``torch.compile`` backend: ``cudagraphs`` gives CUDA
graphs without inductor; ``eager`` captures the graphs and runs them without generating code (the
tests use it: inductor's code generation takes minutes on a 2-core machine).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from typing import Any

import torch

from pipeline.checkpoint import RollingDepthModel
from pipeline.inference import OUT_OF_MEMORY

BACKEND_ENV = "RDSTREAM_COMPILE_BACKEND"


def compile_options(device: torch.device) -> dict[str, Any]:
    """Keyword arguments of ``torch.compile`` for ``device`` (backend from the environment if set)."""
    backend = os.environ.get(BACKEND_ENV, "").strip()
    if backend and backend != "inductor":
        return {"backend": backend, "dynamic": False}
    return {"mode": "reduce-overhead", "dynamic": False} if device.type == "cuda" else {"dynamic": False}


def compile_cost(device: torch.device) -> str:
    """What compiling costs on ``device``, in a user's words (said before it starts). Measured: a
    tiny model at 64x36 was still compiling after 15 minutes on a 2-core CPU."""
    if device.type == "cuda":
        return "on CUDA this takes a few minutes the first time (torch caches the result for later runs)"
    if device.type == "cpu":
        return "on the CPU this takes many minutes and gains little (it pays off on a GPU)"
    return f"on {device.type} this can take several minutes, and the gain is not known"


def uses_cuda_graphs(device: torch.device) -> bool:
    """Whether ``compile_options(device)`` records CUDA graphs (their outputs must be copied out)."""
    options = compile_options(device)
    return options.get("mode") == "reduce-overhead" or options.get("backend") == "cudagraphs"


def _owned(out: Any) -> Any:
    """A call's output with its tensor (or ``.sample`` tensor, diffusers' outputs) copied out of graph memory."""
    if isinstance(out, torch.Tensor):
        return out.clone()
    sample = getattr(out, "sample", None)
    if isinstance(sample, torch.Tensor):
        out.sample = sample.clone()
    return out


def input_signature(args: tuple, kwargs: dict) -> tuple:
    """What selects a compiled graph: tensor shapes and dtypes, and the plain values beside them."""
    def one(value: Any) -> Any:
        if isinstance(value, torch.Tensor):
            return tuple(value.shape), str(value.dtype).replace("torch.", "")
        if isinstance(value, dict):
            return tuple(sorted((k, one(v)) for k, v in value.items()))
        if isinstance(value, (list, tuple)):
            return tuple(one(v) for v in value)
        return value if isinstance(value, (int, float, bool, str, type(None))) else type(value).__name__
    return one(args), one(kwargs)


def _shape_text(signature: tuple) -> str:
    shapes = [s for s in signature[0] if isinstance(s, tuple) and s and isinstance(s[0], tuple)]
    return "x".join(map(str, shapes[0][0])) if shapes else "?"


def _one_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}"[:200]


class CompiledCall:
    """``fn`` compiled; on the first failure one line through ``report``, then ``fn`` eager for good."""

    def __init__(self, fn: Callable[..., Any], what: str, device: torch.device,
                 report: Callable[[str], None]) -> None:
        self.eager = fn
        self.what = what
        self.report = report
        self.failed = False
        self.graphs = uses_cuda_graphs(device)
        self.shapes: set[tuple] = set()  # input signatures seen (the warm-up's, once sealed)
        self.sealed = False
        self._compiled = fn
        try:
            self._compiled = torch.compile(fn, **compile_options(device))
        except Exception as err:  # e.g. an unknown backend, a torch without compile support
            self._fail(err)

    def _fail(self, err: BaseException) -> None:
        self.failed = True
        self.report(f"--compile: cannot compile the {self.what} here ({_one_line(err)}); running it eager")

    def seal(self, sealed: bool = True) -> None:
        """The warm-up is over: a shape not seen so far is reported (once) when it comes.
        ``sealed=False``: a warm-up (another processing size in a rig) runs again, unreported."""
        self.sealed = sealed

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        signature = input_signature(args, kwargs)
        if signature not in self.shapes:
            self.shapes.add(signature)
            if self.sealed and not self.failed:
                self.report(f"--compile: the {self.what} gets an input of shape {_shape_text(signature)} that "
                            "was not compiled before the first frame: compiling it now (the stream pauses "
                            "until it is ready)")
        if self.failed:
            return self.eager(*args, **kwargs)
        try:
            if not self.graphs:
                return self._compiled(*args, **kwargs)
            torch.compiler.cudagraph_mark_step_begin()
            return _owned(self._compiled(*args, **kwargs))
        except OUT_OF_MEMORY:
            raise
        except Exception as err:  # any compiler or backend failure: say it once, run eager
            self._fail(err)
            return self.eager(*args, **kwargs)


class _CompiledUnet(torch.nn.Module):
    """The UNet module with its forward compiled (keeps ``config`` and attributes the code reads)."""

    def __init__(self, unet: torch.nn.Module, device: torch.device, report: Callable[[str], None]) -> None:
        super().__init__()
        self.unet = unet
        self.call = CompiledCall(unet.forward, "UNet", device, report)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.call(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(super().__getattr__("unet"), name)


@dataclasses.dataclass
class CompiledDecoder:
    """A ``DepthDecoder`` whose call is compiled (same name and flags as the one it wraps)."""

    inner: Any
    call: CompiledCall

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def is_random(self) -> bool:
        return self.inner.is_random

    def __call__(self, latents: torch.Tensor) -> torch.Tensor:
        return self.call(latents)


#: Graphs dynamo keeps per compiled function: every static shape of a stream (UNet: snippet lengths x
#: snippets per call; decoder: batches 1..decode_batch at two sizes) with room to spare; past the
#: limit dynamo would silently run that function eager.
CACHE_SIZE_LIMIT = 64


def keep_every_shape() -> None:
    """Let dynamo keep ``CACHE_SIZE_LIMIT`` graphs per function. Its settings are per thread (torch
    2.13 reads a thread's own): call this on the thread that compiles, before the warm-up (a rig's
    batches take more than dynamo's default of 8 shapes)."""
    config = torch._dynamo.config
    config.cache_size_limit = max(config.cache_size_limit, CACHE_SIZE_LIMIT)
    if hasattr(config, "accumulated_cache_size_limit"):
        config.accumulated_cache_size_limit = max(config.accumulated_cache_size_limit, 4 * CACHE_SIZE_LIMIT)


def compile_model(model: RollingDepthModel, report: Callable[[str], None]) -> RollingDepthModel:
    """A copy of ``model`` whose UNet and depth decoder are compiled (the VAE encoder stays eager:
    one small call per frame). Nothing compiles until the first call of each shape."""
    keep_every_shape()
    unet = _CompiledUnet(model.unet, model.device, report)
    decoder = CompiledDecoder(model.decoder, CompiledCall(model.decoder.__call__, "decoder", model.device, report))
    return dataclasses.replace(model, unet=unet, decoder=decoder)


def compiled_calls(model: RollingDepthModel) -> list[CompiledCall]:
    """The compiled parts of ``model`` (none for an eager model)."""
    parts = [getattr(model.unet, "call", None), getattr(model.decoder, "call", None)]
    return [p for p in parts if isinstance(p, CompiledCall)]


def seal_compiled(model: RollingDepthModel, sealed: bool = True) -> None:
    """After the warm-up: from now on a shape not compiled yet is reported when it comes.
    ``sealed=False`` before a further warm-up (a rig's stream of another size): its shapes are expected."""
    for call in compiled_calls(model):
        call.seal(sealed)


def compile_failed(model: RollingDepthModel) -> bool:
    """True when a compiled part of ``model`` fell back to eager."""
    return any(call.failed for call in compiled_calls(model))
