"""``rdstream dev evaluate``: what each rung of the cost ladder costs in depth quality, on the user's own clip.

Steps: check the options, read the clip and check the output folder (before the model loads) ->
the offline reference (``--preset paper`` unless told otherwise, at the live ``--res``), cached in
the output folder under a key of the clip, checkpoint and settings -> each rung through the live
node on the same frames (``--no-drop``; its depth saved as ``rung-NAME.npy``) -> per rung:

- ``abs_rel``: AbsRel of the rung's depth against the reference after one affine fit over the
  clip (both mapped to [0.1, 1] first: AbsRel divides by the reference, so its far end is kept off zero);
- ``temporal_error``: the frame-to-frame change against the reference's (``pipeline.depth_metrics``);
- ``tflop_per_frame``: the run's model-work counts per output frame times the FLOPs of one call of
  each part (UNet frame-pass, encode, full and fit decode), counted with ``torch.utils.flop_counter``
  on the loaded model at the clip's processing size;
- ``output_fps``: output frames per second of the run on this machine.

Printed as a table, written as ``evaluate.json`` and ``evaluate.png`` (AbsRel against TFLOP per
frame) in the output folder. With a random test checkpoint or autoencoder the numbers say nothing
about depth, and every output says so.

Rungs with the tiny encoder or decoder need an ``AutoencoderTiny`` (``--tiny``, default TAESD from
the hub). With the random test checkpoint and the default, a random one is written to the output
folder instead (no hub access; the numbers mean nothing either way). With real weights and no
TAESD on the machine (no hub access), those rungs are skipped, with the command that fetches it,
and the others run.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from pipeline.errors import BadInputError
from pipeline.presets import SPEEDS, get_preset, rung_plan_options, speed_rung

#: Writes the live node's aligned depth linearly (fixed range), so one affine fit undoes it.
LINEAR_DISPLAY = "fixed:100,-100"
MEANINGLESS = ("random weights (the tiny test checkpoint or a random autoencoder): these numbers say nothing about "
               "depth quality or its cost; run rdstream dev evaluate with the real checkpoint")


@dataclass
class EvaluateOptions:
    """The command line of ``rdstream dev evaluate``; rungs None = every rung."""

    clip: str
    checkpoint: str
    rungs: list[str] | None = None
    output_dir: str = "rdstream-evaluate"
    preset: str = "paper"
    res: int = 384
    lookahead: int = 2
    frame_count: int = 0
    tiny: str = "tiny"
    device: str = "auto"
    dtype: str | None = None
    seed: int = 0
    fill: str | None = None  # flow | hold: each rung plays the clip live (--realtime --fill), None = every frame


def _unit(depth: torch.Tensor) -> torch.Tensor:
    """Depth of any affine range -> [0.1, 1] (AbsRel needs a positive reference)."""
    depth = depth.double()
    low, high = depth.min(), depth.max()
    return (depth - low) / (high - low).clamp_min(1e-12) * 0.9 + 0.1


def _plans(opts: EvaluateOptions, names: list[str]):
    from pipeline.snippets import SnippetPlan

    live = get_preset("live")
    plans = {}
    for name in names:
        snip_len, strides = rung_plan_options(speed_rung(name), live.dilations, live.snip_len)
        plans[name] = SnippetPlan(snip_len, live.dilations, strides)
    return plans


def check(opts: EvaluateOptions) -> tuple[list[str], dict, np.ndarray, Path]:
    """Everything before the model: rungs, clip (read), output folder. Returns (rungs, plans, frames, folder)."""
    from io_adapters.video_file import iter_video_frames, probe_video
    from pipeline.preprocess import check_res
    from pipeline.snippets import check_lookahead
    from stream.cli.file_job import check_output_dir

    names = opts.rungs or list(SPEEDS)
    for name in names:
        speed_rung(name)
    check_res(opts.res)
    get_preset(opts.preset)
    check_lookahead(opts.lookahead)
    if opts.frame_count < 0:
        raise BadInputError(f"--frame-count {opts.frame_count}: must be 0 (all frames) or more")
    if opts.fill not in (None, "flow", "hold"):
        raise BadInputError(f"--fill {opts.fill!r}: use flow or hold (the clip then plays live, every frame out)")
    plans = _plans(opts, names)
    probe_video(opts.clip)
    try:
        frames = np.stack(list(iter_video_frames(opts.clip, 0, opts.frame_count)))
    except (ValueError, OSError) as err:
        raise BadInputError(f"{opts.clip}: cannot read its frames ({err})") from None
    longest = max(plan.span for plan in plans.values())
    if frames.shape[0] < longest:
        raise BadInputError(f"{opts.clip}: {frames.shape[0]} frames, shorter than the longest snippet "
                            f"({longest} frames); use a longer clip")
    return names, plans, frames, check_output_dir(opts.output_dir)


# ----------------------------------------------------------------------------- the reference
def reference_key(opts: EvaluateOptions, num_frames: int) -> str:
    clip = Path(opts.clip)
    stat = clip.stat()
    text = json.dumps([str(clip.resolve()), stat.st_size, stat.st_mtime_ns, opts.checkpoint, opts.preset, opts.res,
                       num_frames, opts.seed, opts.dtype, opts.device])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def reference_depth(model, opts: EvaluateOptions, frames: np.ndarray, folder: Path, say,
                    console=None) -> np.ndarray:
    """The offline reference [N, H, W] in [-1, 1], from the cache in ``folder`` or computed (and
    cached), with its progress on ``console`` (stderr by default: bars on a terminal, else lines)."""
    from rich.console import Console

    from pipeline.offline import OfflinePipeline, OfflineSettings
    from stream.cli.progress import stage_progress

    path = folder / f"reference-{opts.preset}-{reference_key(opts, frames.shape[0])}.npy"
    if path.is_file():
        say(f"offline reference: cached {path.name}")
        return np.load(path)
    preset = get_preset(opts.preset, res=opts.res)
    say(f"offline reference: preset {opts.preset} at {opts.res} px on {frames.shape[0]} frames ...")
    settings = OfflineSettings(dilations=tuple(preset.dilations), snip_len=preset.snip_len, cap_dilation=preset.cap_dilation,
                               res=preset.res, refine_steps=preset.refine_steps, refine_snippet_len=preset.refine_snippet_len,
                               refine_start_dilation=preset.refine_start_dilation, seed=opts.seed)
    with stage_progress(console or Console(stderr=True), "offline reference") as progress:
        depth = OfflinePipeline(model, settings)(frames, progress).depth
    partial = path.with_suffix(".partial.npy")
    np.save(partial, depth)
    partial.replace(path)  # never a half-written cache
    return depth


# ----------------------------------------------------------------------------- the rungs
@torch.no_grad()
def per_call_gflop(model, size: tuple[int, int]) -> dict[str, float]:
    """GFLOP of one UNet frame-pass, one encode, one full and one fit (2x pooled) decode of ``model``
    (its encoder and decoder) at processing size ``size``, counted on real calls."""
    from torch.utils.flop_counter import FlopCounterMode

    from pipeline.inference import decode_depth, encode_rgb, make_shared_noise, predict_snippets

    def flops(fn) -> float:
        with FlopCounterMode(display=False) as counter:
            fn()
        return counter.get_total_flops() / 1e9

    rgb = torch.zeros(1, 3, *size, device=model.device, dtype=model.dtype)
    latent = encode_rgb(model, rgb, 1)
    noise = make_shared_noise(model, tuple(latent.shape[-2:]), 0)
    snippet = latent[None].expand(1, 3, *latent.shape[1:])
    return {"unet_frame_pass": flops(lambda: predict_snippets(model, snippet, noise)) / 3,
            "encode": flops(lambda: encode_rgb(model, rgb, 1)),
            "decode_full": flops(lambda: decode_depth(model, latent, 1)),
            "decode_fit": flops(lambda: decode_depth(model, latent, 1, pool=2))}


def run_rung(model, plan, opts: EvaluateOptions, folder: Path, name: str) -> tuple[np.ndarray, dict]:
    """The clip through the live node with ``plan`` (every frame); (depth [N, H, W], run facts)."""
    import anyio

    from io_adapters.registry import open_sink, open_source
    from pipeline.coalign import OnlineAligner
    from stream.stages.display_normalizer import parse_normalize
    from stream.model.model_thread import ModelThread
    from stream.node import NodeConfig, StreamNode
    from stream.model.rolling_depth_steps import RollingDepthSteps

    out = folder / f"rung-{name}.npy"
    source_uri = f"file:{opts.clip}"
    aligner = OnlineAligner.for_plan(plan, opts.lookahead)
    steps = RollingDepthSteps(model, opts.res, seed=opts.seed, fit_stride=aligner.fit_stride)
    # --fill: the clip plays at its own rate as a camera would; frames between keyframes are carried
    source = open_source(source_uri, realtime=True if opts.fill else None)
    sink = open_sink(f"npy:{out}", fps=source.nominal_fps or 30.0)
    config = NodeConfig(plan=plan, lookahead=opts.lookahead, drop_frames=opts.fill is not None,
                        max_frames=opts.frame_count or None, fill=opts.fill or "drop")
    thread = ModelThread()
    try:
        node = StreamNode(source, [(f"npy:{out}", sink)], steps, aligner, parse_normalize(LINEAR_DISPLAY), config,
                          report=lambda message: print(f"rdstream: {message}", file=sys.stderr), model_thread=thread)
        result = anyio.run(node.run)
    finally:
        thread.close()
    fps = result.frames_out / result.elapsed_s if result.elapsed_s > 0 else 0.0
    # with --fill every frame from the first depth on is out, so the output is the clip's tail
    first = result.fill["before_first_depth"] if result.fill else 0
    return np.load(out), {"frames_in": result.frames_in, "frames_out": result.frames_out, "output_fps": round(fps, 2),
                          "counts": result.step_counts, "first_frame": first}


def tflop_per_frame(counts: dict, frames_out: int, gflop: dict) -> float:
    total = (counts["encodes"] * gflop["encode"] + counts["unet_frame_passes"] * gflop["unet_frame_pass"]
             + counts["decodes_full"] * gflop["decode_full"] + counts["decodes_fit"] * gflop["decode_fit"])
    return total / max(1, frames_out) / 1000.0


def load_tiny(model, choice):
    """(encoder, decoder) of the AutoencoderTiny ``choice`` on the model's device and dtype."""
    from pipeline.tiny_decoder import load_decoder
    from pipeline.tiny_encoder import load_encoder

    return (load_encoder(choice, model.vae, model.device, model.dtype),
            load_decoder(choice, model.vae, model.vae_scale, model.device, model.dtype))


def needs_tiny(name: str) -> bool:
    rung = speed_rung(name)
    return rung.encoder == "tiny" or rung.decoder == "tiny"


def tiny_for_random_checkpoint(folder: Path):
    """A random ``AutoencoderTiny`` in ``folder`` (written once) for the random test checkpoint."""
    from pipeline.tiny_decoder import TINY_DECODER_MARKER, DecoderChoice, write_tiny_decoder

    where = folder / "random-tiny-autoencoder"
    config = where / "config.json"
    if not (config.is_file() and TINY_DECODER_MARKER in config.read_text()):
        write_tiny_decoder(where)
    return DecoderChoice("random test autoencoder", where)


def choose_tiny(opts: EvaluateOptions, names: list[str], random_checkpoint: bool, folder: Path, say, given=None):
    """(the AutoencoderTiny choice or None, the rungs skipped for want of it) for ``names``.

    ``--tiny`` given as a folder or hub id: ``given``, that one resolved by ``run_evaluate`` before the
    model loads.
    The default with the random test checkpoint: a random one (no hub access needed). The default
    with real weights: TAESD from the cache or the hub, and where neither answers, the rungs that
    need it are skipped with the command that fetches it (all of them skipped: one line, exit 2)."""
    from pipeline.tiny_decoder import TINY_DECODER_HUB_ID, resolve_autoencoder

    wanting = [n for n in names if needs_tiny(n)]
    if not wanting:
        return None, []
    if opts.tiny != "tiny":
        return (given if given is not None else resolve_autoencoder(opts.tiny, "--tiny")), []
    if random_checkpoint:
        choice = tiny_for_random_checkpoint(folder)
        say(f"rungs {', '.join(wanting)}: a random tiny autoencoder (the checkpoint is the random test one, so "
            f"{TINY_DECODER_HUB_ID} is not fetched; its numbers mean nothing either way)")
        return choice, []
    try:
        return resolve_autoencoder("tiny", "--tiny"), []
    except BadInputError:
        pass
    skipped = (f"need the tiny autoencoder {TINY_DECODER_HUB_ID}, which is not on this machine and could not be "
               f"downloaded; fetch it with `hf download {TINY_DECODER_HUB_ID}` and run again, or pass --tiny FOLDER")
    if len(wanting) == len(names):
        raise BadInputError(f"rungs {', '.join(wanting)} {skipped}")
    say(f"rungs {', '.join(wanting)} skipped: they {skipped}")
    return None, wanting


def _variant(model, rung, tiny):
    """The model with the rung's encoder and decoder (``tiny``: the loaded pair, or None when no rung needs it)."""
    if rung.encoder == "full" and rung.decoder in (None, "full"):
        return model
    encoder, decoder = tiny
    return dataclasses.replace(model, encoder=encoder if rung.encoder == "tiny" else model.encoder,
                               decoder=decoder if rung.decoder == "tiny" else model.decoder)


# ----------------------------------------------------------------------------- report
def write_plot(rows: dict, path: Path, meaningless: bool) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    for name, row in rows.items():
        ax.scatter(row["tflop_per_frame"], 100 * row["abs_rel"])
        ax.annotate(name, (row["tflop_per_frame"], 100 * row["abs_rel"]), textcoords="offset points", xytext=(5, 5))
    ax.set_xlabel("TFLOP per output frame (from the run's counts)")
    ax.set_ylabel("AbsRel vs the offline reference (%)")
    ax.set_title("Cost ladder of rdstream" + (" - RANDOM WEIGHTS, MEANINGLESS" if meaningless else ""))
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def print_table(rows: dict, meaningless: bool) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="rdstream dev evaluate" + (" (random weights: meaningless)" if meaningless else ""))
    for column in ("rung", "AbsRel %", "temporal err", "TFLOP/frame", "fps", "frames"):
        table.add_column(column, justify="left" if column == "rung" else "right")
    for name, row in rows.items():
        table.add_row(name, f"{100 * row['abs_rel']:.2f}", f"{row['temporal_error']:.4f}", f"{row['tflop_per_frame']:.4g}",
                      f"{row['output_fps']:.1f}", f"{row['frames_out']}/{row['frames_in']}")
    Console(stderr=True).print(table)


def run_evaluate(opts: EvaluateOptions) -> int:
    """Check, load, evaluate every rung, report; returns the exit code (0)."""
    from pipeline.checkpoint import choose_dtype, load_rolling_depth, resolve_device
    from pipeline.depth_metrics import abs_rel, temporal_error
    from pipeline.tiny_decoder import TINY_DECODER_HUB_ID, resolve_autoencoder

    def say(message: str) -> None:
        print(f"rdstream: {message}", file=sys.stderr, flush=True)

    # 1. Everything that needs no model (a --tiny given as a folder or hub id included).
    names, plans, frames, folder = check(opts)
    given = (resolve_autoencoder(opts.tiny, "--tiny") if opts.tiny != "tiny" and any(needs_tiny(n) for n in names)
             else None)
    device = resolve_device(opts.device)
    dtype = choose_dtype(opts.dtype, "fp16", device)
    # 2. The model, the tiny autoencoder (or the rungs skipped without it) and the reference.
    model = load_rolling_depth(opts.checkpoint, device, dtype)
    tiny_choice, skipped = choose_tiny(opts, names, model.is_tiny, folder, say, given)
    reference = torch.from_numpy(reference_depth(model, opts, frames, folder, say))
    meaningless = model.is_tiny
    tiny = load_tiny(model, tiny_choice) if tiny_choice is not None else None
    # 3. Each rung through the live node.
    rows, flops_cache = {}, {}
    for name in (n for n in names if n not in skipped):
        rung = speed_rung(name)
        variant = _variant(model, rung, tiny)
        meaningless = meaningless or variant.encoder.is_random or variant.decoder.is_random
        say(f"rung {name}: {rung.trades} ...")
        depth, facts = run_rung(variant, plans[name], opts, folder, name)
        reference_part = reference[facts["first_frame"]:]
        if depth.shape != tuple(reference_part.shape):
            raise BadInputError(f"rung {name}: {depth.shape[0]} frames of {depth.shape[1:]} px out, the reference has "
                                f"{reference.shape[0]} of {tuple(reference.shape[1:])}")
        key = (rung.encoder, rung.decoder)
        if key not in flops_cache:
            flops_cache[key] = per_call_gflop(variant, tuple(depth.shape[1:]))
        candidate, truth = _unit(torch.from_numpy(depth)), _unit(reference_part)
        rows[name] = {"abs_rel": round(abs_rel(candidate, truth), 5),
                      "temporal_error": round(temporal_error(candidate, truth), 5),
                      "tflop_per_frame": float(f"{tflop_per_frame(facts['counts'], facts['frames_out'], flops_cache[key]):.4g}"),
                      "strides": list(plans[name].strides), "snip_len": plans[name].snip_len, "trades": rung.trades,
                      **facts}
    # 4. Report.
    report = {"clip": opts.clip, "checkpoint": opts.checkpoint, "reference_preset": opts.preset, "res": opts.res,
              "lookahead": opts.lookahead, "fill": opts.fill, "frames": int(frames.shape[0]), "device": device.type,
              "dtype": str(dtype).removeprefix("torch."), "rungs": rows}
    if skipped:
        report["skipped"] = {name: f"needs {TINY_DECODER_HUB_ID} (hf download {TINY_DECODER_HUB_ID})" for name in skipped}
    if meaningless:
        report["note"] = MEANINGLESS
    (folder / "evaluate.json").write_text(json.dumps(report, indent=2) + "\n")
    write_plot(rows, folder / "evaluate.png", meaningless)
    print_table(rows, meaningless)
    if skipped:  # said again under the table, where it is read
        say(f"skipped {', '.join(skipped)}: fetch {TINY_DECODER_HUB_ID} with `hf download {TINY_DECODER_HUB_ID}` "
            f"and run again for them")
    if meaningless:
        say(MEANINGLESS)
    say(f"wrote {folder / 'evaluate.json'} and {folder / 'evaluate.png'}")
    return 0
