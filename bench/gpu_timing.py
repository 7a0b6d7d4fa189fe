"""GPU timing of the live model steps, for ``python -m bench.live_cost --device cuda`` (its ``gpu`` section).

One configuration = processing size (384 or 512 px, 16:9 or 4:3 input), decoder (full or tiny),
lookahead (0 or 2), eager or ``--compile``. Each is measured two ways on the steady-state tick
(both dilations active, every earlier frame emitted, as in bench.live_cost):

- latency: one frame at a time, encode + snippets + the copy back, waited for: what one frame
  costs from upload to depth on the host (ms, median);
- throughput: frames fed as a live source feeds the node: the next frame's upload, encode and
  snippets are queued before the current frame's result is waited for (``start_predict``), so the
  GPU never idles for Python (output fps over ``frames`` frames);

and with per-stage GPU time from CUDA events (``pipeline.device.StageTimer``: upload, encode,
unet, decode_full, decode_fit, to_host, ms per frame, median) and the peak GPU memory. Where the
sum of the stages is close to the latency the GPU is the limit; where it is well below, the host
(Python, launches, the host resize) is.
"""

from __future__ import annotations

import dataclasses
import json
import math
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch

from pipeline.coalign.snippet_depth import still_merged
from pipeline.device import StageTimer
from pipeline.offline import synchronize
from pipeline.snippets import SnippetPlan
from stream.model.rolling_depth_steps import RollingDepthSteps

#: Input frames per aspect: a 1080p camera for 16:9, XGA for 4:3 (the host resize is part of the cost).
INPUTS = {"16:9": (1080, 1920), "4:3": (768, 1024)}


@dataclasses.dataclass(frozen=True)
class Config:
    res: int
    aspect: str
    decoder: str
    lookahead: int
    compiled: bool
    channels_last: bool = False  # the UNet and VAE weights in channels_last (the layout question)
    rung: str | None = None  # a ``--speed`` rung (its strides, snippet length and encoder); None = standard's plan

    @property
    def name(self) -> str:
        rung = f"{self.rung}/" if self.rung else ""
        return (f"{self.res}px/{self.aspect}/{rung}{self.decoder}/lookahead_{self.lookahead}/"
                f"{'compile' if self.compiled else 'eager'}" + ("/channels_last" if self.channels_last else ""))

    @property
    def encoder(self) -> str:
        from pipeline.presets import SPEEDS

        return SPEEDS[self.rung].encoder if self.rung else "full"


def _frame(aspect: str, seed: int = 0) -> np.ndarray:
    height, width = INPUTS[aspect]
    gen = np.random.default_rng(seed)
    return gen.integers(0, 256, (height, width, 3), dtype=np.uint8)


def steady_schedule(plan: SnippetPlan, lookahead: int) -> list[tuple[list, list]]:
    """(snippets, merged flags) of each tick of one stride period in steady state (every level active,
    every earlier frame emitted), as the node's snippet stage computes them; a tick may run none."""
    period = math.lcm(*plan.strides)
    first = plan.span + 10
    ticks = []
    for t in range(first, first + period):
        covered = plan.covered_before(t)
        snippets = plan.snippets_ending_at(t)
        ticks.append((snippets, [still_merged(s, lookahead, plan.snip_len, covered_through=covered) for s in snippets]))
    return ticks


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.array(values), q))


def measure(steps: RollingDepthSteps, frame: np.ndarray, plan: SnippetPlan, lookahead: int,
            latency_frames: int = 10, throughput_frames: int = 30, node_frames: int = 0,
            warm_rounds: int = 1) -> dict:
    """Latency, throughput, per-stage GPU ms and peak memory of ``steps`` on the steady-state ticks.

    warm_rounds: times each tick of the period runs before the timing (2 for CUDA graphs: they are
    recorded on a shape's second call). node_frames: also ``node_order_fps`` over that many frames
    (0 = not measured; it runs the stream's first frames too, whose shapes differ)."""
    device = steps.model.device
    display, latent = steps.encode(frame)  # first frame: fixes the size (and compiles, with compile_pending)
    ticks = [([[latent] * len(s) for s in snippets], merged) for snippets, merged in steady_schedule(plan, lookahead)]
    for _ in range(warm_rounds):  # the merge patterns' indices, cuDNN autotuning, compiles, CUDA graphs
        for window, merged in ticks:
            if window:
                steps.predict(window, merged)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    timer = StageTimer(device)
    steps.timer = timer
    before = steps.counts.as_dict()
    latencies, stages = [], []
    for i in range(latency_frames):
        window, merged = ticks[i % len(ticks)]
        synchronize(device)
        start = time.perf_counter()
        steps.encode(frame)
        if window:
            steps.start_predict(window, merged)()
        latencies.append(time.perf_counter() - start)
        stages.append(timer.stages())
    steps.timer = None
    counts = {k: round((v - before[k]) / latency_frames, 3) for k, v in steps.counts.as_dict().items()}
    throughput = pipelined_fps(steps, frame, ticks, throughput_frames)
    names = sorted({k for s in stages for k in s})
    per_stage = {k: round(statistics.median(s.get(k, 0.0) for s in stages), 3) for k in names}
    result = {
        "processing_size": list(display.shape[:2]),
        "latency_ms": round(statistics.median(latencies) * 1000, 2),
        "latency_p50_ms": round(_percentile(latencies, 50) * 1000, 2),
        "latency_p95_ms": round(_percentile(latencies, 95) * 1000, 2),
        "throughput_fps": round(throughput, 2),
        "gpu_ms_per_stage": per_stage,
        "gpu_ms_sum": round(sum(per_stage.values()), 2),
        "counts_per_frame": counts,
    }
    if node_frames:
        result["node_order_fps"] = round(node_order_fps(steps, frame, plan, lookahead, node_frames), 2)
    if device.type == "cuda":
        result["peak_gpu_mib"] = round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
    return result


def pipelined_fps(steps, frame: np.ndarray, ticks: list[tuple[list, list]], frames: int) -> float:
    """Output fps in the benchmark's order: each frame's encode and snippets are queued
    (``start_predict``) before the previous frame's result is waited for. ``ticks``: (window of
    latents, merged flags) per frame, used in turn (an empty window: a tick that runs no snippet)."""
    synchronize(getattr(getattr(steps, "model", None), "device", torch.device("cpu")))
    start = time.perf_counter()
    pending: Callable | None = None
    for i in range(frames):
        window, merged = ticks[i % len(ticks)]
        steps.encode(frame)
        queued = steps.start_predict(window, merged) if window else None
        if queued is None:
            continue
        if pending is not None:
            pending()
        pending = queued
    if pending is not None:
        pending()
    return frames / (time.perf_counter() - start)


def node_order_fps(steps, frame: np.ndarray, plan: SnippetPlan, lookahead: int, frames: int) -> float:
    """Output fps of the node's own encode and snippet stages (``stream.stages.encode_stage``,
    ``stream.stages.snippet_stage``) joined as the node joins them, over ``frames`` steady-state frames
    (timed after the window has filled). Without the aligner and the sinks: the model side of the
    node in its real order, to set beside ``pipelined_fps``."""
    import anyio

    from stream.stages.encode_stage import EncodeStage
    from stream.stages.messages import CapturedFrame, FrameTiming, SnippetDepths, StreamEnd
    from stream.model.model_thread import ModelThread
    from stream.stages.snippet_stage import SnippetStage
    from stream.stages.stage import make_link

    warm = plan.span + 1
    stamps: list[float] = []
    model_thread = ModelThread()

    async def feed(send) -> None:
        async with send:
            for i in range(warm + frames):
                await send.send(CapturedFrame(FrameTiming(i, i, i / 30.0, time.perf_counter()), frame))
            await send.send(StreamEnd("source ended"))

    async def drain(receive) -> None:
        async with receive:
            async for item in receive:
                if isinstance(item, SnippetDepths) and item.timing is not None:
                    stamps.append(time.perf_counter())

    async def main() -> None:
        links = [make_link() for _ in range(3)]
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(feed, links[0][0])
            tasks.start_soon(EncodeStage(steps, model_thread).run, links[0][1], links[1][0])
            tasks.start_soon(SnippetStage(steps, plan, model_thread, lookahead).run, links[1][1], links[2][0])
            tasks.start_soon(drain, links[2][1])

    try:
        anyio.run(main)
    finally:
        model_thread.close()
    return frames / (stamps[-1] - stamps[warm - 1])



def pipelined_and_node_order_fps(steps, frame: np.ndarray, plan: SnippetPlan, lookahead: int,
                                 frames: int) -> tuple[float, float]:
    """(``pipelined_fps``, ``node_order_fps``) of ``steps`` on ``frame``: the benchmark's order on a
    steady-state tick of ``plan`` (its snippets ending past the longest dilation, merged as the node
    merges them at ``lookahead``) beside the node's own stages, each over ``frames`` frames."""
    snippets = plan.snippets_ending_at(plan.span + 5)
    merged = [still_merged(s, lookahead, plan.snip_len) for s in snippets]
    latent = steps.encode(frame)[1]
    window = [[latent] * plan.snip_len for _ in snippets]
    return (pipelined_fps(steps, frame, [(window, merged)], frames),
            node_order_fps(steps, frame, plan, lookahead, frames))

def config_plan(config: Config, plan: SnippetPlan) -> SnippetPlan:
    """``plan``'s dilations with the config's rung (strides, snippet length); ``plan`` itself without one."""
    if config.rung is None:
        return plan
    from pipeline.presets import SPEEDS, rung_plan_options

    length, strides = rung_plan_options(SPEEDS[config.rung], plan.dilations, plan.snip_len)
    return SnippetPlan(length, plan.dilations, strides)


def measure_all(model, tiny_decoder, configs: list[Config], plan: SnippetPlan, log: Callable[[str], None],
                tiny_encoder=None, steady_only: bool = False, node_frames: int = 0,
                on_entry: Callable[[str, dict], None] | None = None, **counts) -> dict:
    """``measure`` for every config on one model (compiled configs share one compiled UNet).

    tiny_encoder: the encoder of rungs with ``encoder == "tiny"``. steady_only: compiled configs
    compile only the steady-state shapes (each tick of the period run twice before the timing)
    instead of every shape a stream can take. on_entry(name, entry): called as each config is done.
    """
    from pipeline.compiled import CompiledCall, CompiledDecoder, compile_model, compile_failed

    lines: list[str] = []
    decoders = {"full": model.decoder, "tiny": tiny_decoder}
    encoders = {"full": model.encoder, "tiny": tiny_encoder}
    compiled = None
    if any(c.compiled for c in configs):
        compiled = compile_model(model, lines.append)
        decoders_compiled = {"full": compiled.decoder,
                             "tiny": CompiledDecoder(tiny_decoder, CompiledCall(tiny_decoder.__call__, "tiny decoder",
                                                                                model.device, lines.append))}

    def variant(config: Config):
        base = compiled if config.compiled else model
        decoder = (decoders_compiled if config.compiled else decoders)[config.decoder]
        return dataclasses.replace(base, decoder=decoder, encoder=encoders[config.encoder])

    results = {}
    channels_last = False
    for config in sorted(configs, key=lambda c: c.channels_last):  # the layout change last: it is in place
        if config.channels_last and not channels_last:
            channels_last = True
            for module in (model.unet, model.vae, getattr(tiny_decoder, "autoencoder", None)):
                if module is not None:
                    module.to(memory_format=torch.channels_last)
        config_plan_ = config_plan(config, plan)
        steps = RollingDepthSteps(variant(config), config.res, seed=0, compile=False,
                                  snippet_length=config_plan_.snip_len)
        if config.compiled and not steady_only:  # warm every shape of the stream first, timed apart from the frames
            steps.compile_pending = True
            steps.snippets_per_call = tuple(range(1, len(plan.dilations) + 1))
            steps.report = lines.append
        started = time.perf_counter()
        entry = measure(steps, _frame(config.aspect), config_plan_, config.lookahead,
                        warm_rounds=2 if config.compiled else 1,
                        node_frames=0 if (config.compiled and steady_only) else node_frames, **counts)
        entry["plan"] = {"snip_len": config_plan_.snip_len, "dilations": list(config_plan_.dilations),
                         "strides": list(config_plan_.strides), "encoder": config.encoder}
        if config.compiled:
            entry["compile_and_first_frames_s"] = round(time.perf_counter() - started, 1)
            entry["compile_fell_back_to_eager"] = compile_failed(steps.model)
            if steady_only:
                entry["node_order_fps"] = ("not measured: compiled for the steady-state shapes only; the node's "
                                           "first frames take others")
        results[config.name] = entry
        if on_entry is not None:
            on_entry(config.name, entry)
        # the whole entry on one line: a run cut short by its time limit still leaves every figure in the log
        log(f"{config.name}: {entry['throughput_fps']} fps pipelined, {entry['latency_ms']} ms one frame "
            f"{json.dumps(entry)}")
    if lines:
        results["compile_messages"] = lines
    return results
