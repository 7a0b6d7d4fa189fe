"""Load a RollingDepth checkpoint (a local folder or a Hugging Face hub id) for inference.

Steps: resolve the folder (download with progress for hub ids) -> validate the layout and the UNet
config BEFORE loading anything -> load unet, vae, scheduler with diffusers ``from_pretrained`` ->
get the empty-prompt text embedding (from the on-disk cache, else computed once with the text
encoder, which is then released: it is 1.36 GB in the real checkpoint and never needed again).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from pipeline.device_names import parse_device_name
from pipeline.errors import BadInputError, RuntimeFailure
from pipeline.hub import fetch_snapshot, is_hub_id
from pipeline.small_files import read_json_object, read_small_text
from pipeline.tiny_decoder import DecoderChoice, DepthDecoder, FullVaeDecoder, load_decoder, resolve_decoder
from pipeline.tiny_encoder import FullVaeEncoder, RgbEncoder, check_encoder_channels, load_encoder, resolve_encoder

# model_index.json key that marks the tiny RANDOM test checkpoint (pipeline.tiny_checkpoint writes it).
TINY_MARKER = "rdstream_tiny_random"
# Shown by every command that runs a tiny checkpoint.
TINY_WARNING = (
    "This checkpoint is the tiny RANDOM test model: its output is NOT depth. Get the real weights "
    "(prs-eth/rollingdepth-v1-0, 3.4 GB) with `hf download prs-eth/rollingdepth-v1-0` "
    "and pass -c or set RDSTREAM_CHECKPOINT."
)

DEFAULT_CHECKPOINT = "prs-eth/rollingdepth-v1-0"
CACHE_ENV = "RDSTREAM_CACHE_DIR"
WEIGHT_NAMES = {
    "unet": ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.fp16.safetensors",
             "diffusion_pytorch_model.bin", "diffusion_pytorch_model.safetensors.index.json"),
    "vae": ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.fp16.safetensors",
            "diffusion_pytorch_model.bin"),
    "text_encoder": ("model.safetensors", "model.fp16.safetensors", "pytorch_model.bin"),
}
CONFIG_NAMES = {
    "unet": "config.json",
    "vae": "config.json",
    "scheduler": "scheduler_config.json",
    "text_encoder": "config.json",
    "tokenizer": "vocab.json",
}
DTYPES = {"fp16": torch.float16, "fp32": torch.float32, "bf16": torch.bfloat16}


@dataclass
class RollingDepthModel:
    """Everything inference needs, on one device and dtype.

    text_embedding: [1, 2, C] empty-prompt CLIP embedding (C = unet cross_attention_dim).
    vae_scale: spatial downsampling of the VAE (8 for the real model): latent = image / vae_scale.
    is_tiny: True for a random test checkpoint (its depth is meaningless).
    decoder: turns depth latents into depth (None = the VAE's own decoder, see pipeline.tiny_decoder).
    encoder: turns RGB into the UNet's latents (None = the VAE's own encoder, see pipeline.tiny_encoder);
        the depth refinement (presets full, paper) always encodes depth with ``vae``.
    """

    unet: torch.nn.Module
    vae: torch.nn.Module
    scheduler: object
    text_embedding: torch.Tensor
    device: torch.device
    dtype: torch.dtype
    vae_scale: int
    is_tiny: bool
    source: str
    decoder: DepthDecoder | None = None
    encoder: RgbEncoder | None = None
    one_step_timestep: int = field(init=False)

    def __post_init__(self) -> None:
        # Computed once here, not per UNet call (999 with trailing spacing).
        self.one_step_timestep = scheduler_timesteps(self.scheduler, 1)[0]
        if self.decoder is None:
            self.decoder = FullVaeDecoder(self.vae)
        if self.encoder is None:
            self.encoder = FullVaeEncoder(self.vae)

    @property
    def output_is_noise(self) -> bool:
        """True when its depth is meaningless: a random test checkpoint, decoder or encoder."""
        return (self.is_tiny or bool(getattr(self.decoder, "is_random", False))
                or bool(getattr(self.encoder, "is_random", False)))


def scheduler_timesteps(scheduler, steps: int) -> list[int]:
    """The timesteps of a ``steps``-step schedule, computed on a copy: the shared scheduler is never mutated."""
    schedule = type(scheduler).from_config(scheduler.config)
    schedule.set_timesteps(steps, device="cpu")
    return [int(t) for t in schedule.timesteps]


def cache_dir() -> Path:
    """Folder for derived data (cached text embeddings): $RDSTREAM_CACHE_DIR or ~/.cache/rollingdepth-stream."""
    env = os.environ.get(CACHE_ENV)
    return Path(env) if env else Path.home() / ".cache" / "rollingdepth-stream"


def resolve_device(name: str = "auto") -> torch.device:
    """``--device`` (see pipeline.device_names) -> the torch device, always with its GPU number on
    CUDA (``cuda`` alone is the GPU torch uses first), so that messages can name it.

    ``auto`` picks mps, then cuda, then cpu. An explicit device that is not available is an error.
    Raises:
        BadInputError: an unknown name, MPS or CUDA missing here, a GPU number beyond the GPUs present.
    """
    wanted = parse_device_name(name)
    mps_ok = hasattr(torch.backends, "mps") and torch.backends.mps.is_available()
    if wanted.kind == "auto":
        if mps_ok:
            return torch.device("mps")
        if torch.cuda.is_available():
            return torch.device("cuda", torch.cuda.current_device())
        return torch.device("cpu")
    if wanted.kind == "mps" and not mps_ok:
        raise BadInputError(
            "--device mps: MPS is not available on this machine (needs Apple Silicon, macOS 12.3+ "
            "and a torch build with MPS); use --device auto or --device cpu"
        )
    if wanted.kind == "cuda":
        if not torch.cuda.is_available():
            raise BadInputError(f"--device {name}: no CUDA GPU is available here; use --device auto or --device cpu")
        count = torch.cuda.device_count()
        index = torch.cuda.current_device() if wanted.index is None else wanted.index
        if index >= count:
            numbers = "cuda:0" if count == 1 else f"cuda:0 to cuda:{count - 1}"
            raise BadInputError(f"--device {name}: this machine has {count} CUDA GPU{'s' if count > 1 else ''} "
                                f"({numbers}); nvidia-smi lists them")
        return torch.device("cuda", index)
    return torch.device(wanted.kind)


def device_label(device: torch.device) -> str:
    """How messages name a device: ``cpu``, ``mps``, ``cuda:1 (NVIDIA H200)``."""
    if device.type != "cuda":
        return device.type
    index = torch.cuda.current_device() if device.index is None else device.index
    try:
        return f"cuda:{index} ({torch.cuda.get_device_name(index)})"
    except Exception:  # a name is a courtesy: never fail a run for it
        return f"cuda:{index}"


def resolve_dtype(name: str | None, device: torch.device) -> torch.dtype:
    """fp16 on mps/cuda and fp32 on cpu unless ``name`` (fp16, fp32 or bf16) says otherwise."""
    if name is None:
        return torch.float32 if device.type == "cpu" else torch.float16
    if name not in DTYPES:
        raise BadInputError(f"--dtype {name}: unknown dtype; use one of {', '.join(DTYPES)}")
    return DTYPES[name]


def choose_dtype(explicit: str | None, preset_dtype: str | None, device: torch.device) -> torch.dtype:
    """--dtype wins; else the preset's precision on mps/cuda; on the CPU fp32 (half precision is slow there)."""
    return resolve_dtype(explicit or (preset_dtype if device.type != "cpu" else None), device)


def resolve_checkpoint_folder(checkpoint: str, allow_download: bool = True) -> Path:
    """A local folder as given, or the local snapshot of a hub id (downloaded with progress if needed)."""
    path = Path(checkpoint).expanduser()
    if path.exists() or not is_hub_id(checkpoint):
        if not path.is_dir():
            raise BadInputError(f"checkpoint {checkpoint}: no such folder (give a checkpoint folder or a hub id like {DEFAULT_CHECKPOINT})")
        return path
    return fetch_snapshot(
        checkpoint, allow_download,
        not_cached=f"checkpoint {checkpoint}: not in the local Hugging Face cache",
        failed=(f"checkpoint {checkpoint}: could not download it ({{reason}}); download it on a machine with "
                f"network access (hf download {checkpoint}) or pass a local folder with -c"),
    )


def validate_checkpoint_folder(folder: Path) -> dict:
    """Check the layout and the UNet config before any loading; return the UNet config.

    Raises BadInputError naming the path and the problem: a missing subfolder, config or weight
    file, an unreadable config, or a UNet whose in_channels is not 8 (RGB latent + depth latent).
    """
    if not (folder / "model_index.json").is_file():
        raise BadInputError(f"checkpoint {folder}: model_index.json is missing (not a RollingDepth checkpoint folder)")
    read_config(folder, "model_index.json")
    for sub, config_name in CONFIG_NAMES.items():
        sub_path = folder / sub
        if not sub_path.is_dir():
            raise BadInputError(f"checkpoint {folder}: the {sub}/ subfolder is missing")
        if not (sub_path / config_name).is_file():
            raise BadInputError(f"checkpoint {folder}: {sub}/{config_name} is missing")
        if sub in WEIGHT_NAMES and not any((sub_path / n).is_file() for n in WEIGHT_NAMES[sub]):
            raise BadInputError(
                f"checkpoint {folder}: no weights in {sub}/ (expected one of {', '.join(WEIGHT_NAMES[sub])})"
            )
    # Every config and weight index the libraries read below, read once here with a bound (the
    # tokenizer's vocabulary is no config: about 1 MB in the real checkpoint).
    configs = [f"{sub}/{name}" for sub, name in CONFIG_NAMES.items() if name.endswith("config.json")]
    configs += [f"{sub}/{weights}" for sub, names in WEIGHT_NAMES.items() for weights in names
                if weights.endswith(".index.json") and (folder / sub / weights).is_file()]
    unet_config = {name: read_config(folder, name) for name in configs}["unet/config.json"]
    if unet_config.get("in_channels") != 8:
        raise BadInputError(
            f"checkpoint {folder}: unet in_channels is {unet_config.get('in_channels')}, RollingDepth needs 8 "
            "(RGB latent + depth latent); is this a plain Stable Diffusion checkpoint?"
        )
    return unet_config


def read_config(folder: Path, name: str) -> dict:
    """The JSON object in the checkpoint's file ``name`` (e.g. "unet/config.json"), read with a
    size bound (``pipeline.small_files``); BadInputError naming the file when it is not one."""
    return read_json_object(folder / name, f"checkpoint {folder}: {name}", "a model config")


def _one_line(err: Exception) -> str:
    text = " ".join(str(err).split())
    return text[:300] + ("..." if len(text) > 300 else "")


def _embedding_cache_path(folder: Path) -> Path:
    """Cache key: the text encoder's weights (path, size, mtime) and config, so a change invalidates it."""
    enc = folder / "text_encoder"
    parts = [str(enc.resolve()), read_small_text(enc / "config.json", f"checkpoint {folder}: text_encoder/config.json",
                                                 "a model config")]
    for name in WEIGHT_NAMES["text_encoder"]:
        weights = enc / name
        if weights.is_file():
            st = weights.stat()
            parts.append(f"{name}:{st.st_size}:{st.st_mtime_ns}")
    key = hashlib.sha256("\n".join(parts).encode()).hexdigest()[:24]
    return cache_dir() / "text_embeddings" / f"{key}.pt"


def empty_text_embedding(folder: Path) -> torch.Tensor:
    """The CLIP embedding of the empty prompt, [1, 2, C] float32, cached on disk.

    Computed once on the CPU in fp32; the text encoder is released right after.
    """
    path = _embedding_cache_path(folder)
    if path.is_file():
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except Exception:
            pass  # a corrupt cache entry is recomputed below
    from transformers import CLIPTextModel, CLIPTokenizer
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # one-off load from our folder: its bar says nothing

    try:
        tokenizer = CLIPTokenizer.from_pretrained(folder / "tokenizer")
        encoder = CLIPTextModel.from_pretrained(folder / "text_encoder", torch_dtype=torch.float32)
    except Exception as err:
        raise BadInputError(f"checkpoint {folder}: cannot load text_encoder/tokenizer ({_one_line(err)})") from None
    ids = tokenizer("", padding="do_not_pad", return_tensors="pt").input_ids
    with torch.no_grad():
        embedding = encoder(ids)[0].float().contiguous()
    del encoder
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        torch.save(embedding, tmp)
        tmp.replace(path)
    except OSError:
        pass  # a read-only cache only costs recomputing the embedding next time
    return embedding


def load_rolling_depth(
    checkpoint: str = DEFAULT_CHECKPOINT,
    device: torch.device | str = "auto",
    dtype: torch.dtype | None = None,
    decoder: DecoderChoice | str | None = None,
    encoder: DecoderChoice | str | None = None,
) -> RollingDepthModel:
    """Load unet, vae, scheduler and the cached empty-prompt embedding; see the module docstring.

    checkpoint: a folder in the prs-eth/rollingdepth-v1-0 layout or a hub id.
    device: a torch.device or a name for resolve_device(). dtype: None = device default.
    decoder: ``--decoder`` (``full``, ``tiny``, a folder or hub id) or a resolved DecoderChoice;
        checked (and downloaded) before any weights load. encoder: ``--encoder``, the same way; its
        latent channels are checked against the checkpoint's VAE before any weights load.
    """
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
    from diffusers.utils import logging as diffusers_logging

    from pipeline.attention import enable_cross_frame_attention

    # Loading our own components from a folder: the libraries' per-shard bars say nothing to a
    # user (hub downloads keep their own progress bars).
    diffusers_logging.disable_progress_bar()
    device = device if isinstance(device, torch.device) else resolve_device(device)
    dtype = dtype or resolve_dtype(None, device)
    folder = resolve_checkpoint_folder(str(checkpoint))
    unet_config = validate_checkpoint_folder(folder)
    decoder = decoder if isinstance(decoder, DecoderChoice) else resolve_decoder(decoder)
    encoder = encoder if isinstance(encoder, DecoderChoice) else resolve_encoder(encoder)
    check_encoder_channels(encoder, vae_latent_channels(folder))
    model_index = read_config(folder, "model_index.json")

    try:
        unet = UNet2DConditionModel.from_pretrained(folder / "unet", torch_dtype=dtype)
        vae = AutoencoderKL.from_pretrained(folder / "vae", torch_dtype=dtype)
        scheduler = DDIMScheduler.from_pretrained(folder / "scheduler")
    except Exception as err:
        raise BadInputError(f"checkpoint {folder}: cannot load weights ({_one_line(err)})") from None
    text_embedding = empty_text_embedding(folder)
    if text_embedding.shape[-1] != unet_config.get("cross_attention_dim"):
        raise BadInputError(
            f"checkpoint {folder}: text embedding width {text_embedding.shape[-1]} does not match "
            f"unet cross_attention_dim {unet_config.get('cross_attention_dim')}"
        )
    if device.type == "cuda":
        # The current GPU is per thread, and this is the thread that runs the model (the model
        # thread of run and rig): work that names no device (events, pinned buffers, CUDA
        # graphs) then lands on the chosen GPU instead of GPU 0.
        torch.cuda.set_device(device)
    try:
        unet.to(device).eval()
        vae.to(device).eval()
    except Exception as err:
        raise RuntimeFailure(f"cannot move the model to {device} ({_one_line(err)})") from None
    unet.requires_grad_(False)
    vae.requires_grad_(False)
    enable_cross_frame_attention(unet)
    vae_scale = 2 ** (len(vae.config.block_out_channels) - 1)
    return RollingDepthModel(
        unet=unet,
        vae=vae,
        scheduler=scheduler,
        text_embedding=text_embedding.to(device=device, dtype=dtype),
        device=device,
        dtype=dtype,
        vae_scale=vae_scale,
        is_tiny=bool(model_index.get(TINY_MARKER, False)),
        source=str(checkpoint),
        decoder=load_decoder(decoder, vae, vae_scale, device, dtype),
        encoder=load_encoder(encoder, vae, device, dtype),
    )


def vae_latent_channels(folder: Path) -> int:
    """Latent channels of a checkpoint's VAE, from its config (4 for Stable Diffusion's)."""
    config = read_config(folder, "vae/config.json")
    try:
        return int(config.get("latent_channels", 4))
    except (ValueError, TypeError) as err:
        raise BadInputError(f"checkpoint {folder}: vae/config.json: latent_channels is not a number ({err})") from None
