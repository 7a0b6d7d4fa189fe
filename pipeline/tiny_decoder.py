"""Depth decoders: the checkpoint's full VAE decoder, or a tiny one (diffusers ``AutoencoderTiny``, TAESD).

Only decoding changes here (the encoder is ``--encoder``'s, see ``pipeline.tiny_encoder``; by
default the checkpoint's VAE, whose latents the UNet was trained on). Both decoders take the diffusion-space latents ``[M, 4, h, w]`` (the SD VAE's
latents x 0.18215) and return depth ``[M, H, W]``, roughly ``[-1, 1]``, in the model's dtype:

- ``full``: divide by 0.18215, SD VAE decoder, mean of the 3 output channels.
- tiny (``AutoencoderTiny``): TAESD has no scaling factor (its diffusers config says 1.0), so the
  latents go in as they are; diffusers' ``AutoencoderTiny.decode`` already maps TAESD's ``[0, 1]``
  output to ``[-1, 1]`` (checked on diffusers 0.42: ``DecoderTiny.forward`` ends in ``mul(2).sub(1)``),
  so both decoders give the same range and the rest of the pipeline is unchanged.

``--decoder`` takes ``full``, ``tiny`` (the hub id ``madebyollin/taesd``, for the SD1/SD2 latent
space) or a folder / hub id of another ``AutoencoderTiny``. The tiny decoder's effect on depth
quality cannot be measured without the real weights: ``rdstream dev compare-decoders`` measures it.
``write_tiny_decoder`` writes a small RANDOM ``AutoencoderTiny`` for tests: its output is not depth.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import torch

from pipeline.errors import BadInputError
from pipeline.hub import fetch_snapshot, is_hub_id
from pipeline.small_files import read_json_object

LATENT_SCALE = 0.18215
TINY_DECODER_HUB_ID = "madebyollin/taesd"
DECODER_CHOICES = "full, tiny (madebyollin/taesd), or a folder / hub id of an AutoencoderTiny"
#: Key written into the config of a random test decoder, so every command can say so.
TINY_DECODER_MARKER = "rdstream_tiny_random"
TINY_DECODER_WARNING = "The decoder or encoder is a tiny RANDOM test AutoencoderTiny: its output is NOT depth."
#: What a decoder download fetches: the diffusers config and weights, not the repo's other formats.
DOWNLOAD_PATTERNS = ["*.json", "diffusion_pytorch_model*"]
WEIGHT_NAMES = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.fp16.safetensors",
                "diffusion_pytorch_model.bin")


class DepthDecoder(Protocol):
    """Diffusion-space depth latents ``[M, 4, h, w]`` -> depth ``[M, h * scale, w * scale]`` in the model dtype."""

    name: str
    is_random: bool

    def __call__(self, latents: torch.Tensor) -> torch.Tensor: ...


@dataclass
class FullVaeDecoder:
    """The checkpoint's SD VAE decoder (``name`` "full")."""

    vae: torch.nn.Module
    name: str = "full"
    is_random: bool = False

    def __call__(self, latents: torch.Tensor) -> torch.Tensor:
        return self.vae.decode(latents / LATENT_SCALE).sample.mean(dim=1)


@dataclass
class TinyVaeDecoder:
    """A diffusers ``AutoencoderTiny``: latents go in unscaled, output already in ``[-1, 1]``."""

    autoencoder: torch.nn.Module
    name: str
    is_random: bool = False

    def __call__(self, latents: torch.Tensor) -> torch.Tensor:
        return self.autoencoder.decode(latents).sample.mean(dim=1)


@dataclass(frozen=True)
class DecoderChoice:
    """A resolved ``--decoder``: ``folder`` None means the checkpoint's full VAE decoder."""

    name: str
    folder: Path | None = None


def resolve_decoder(spec: str | None, allow_download: bool = True) -> DecoderChoice:
    """``full`` / ``tiny`` / a folder / a hub id -> a checked ``DecoderChoice`` (downloads with progress).

    Raises BadInputError (one line) for a missing folder, a folder that is not an AutoencoderTiny,
    or a hub id that is neither cached nor downloadable (offline). Loads no weights.
    """
    return resolve_autoencoder(spec, "--decoder", allow_download)


def resolve_autoencoder(spec: str | None, option: str, allow_download: bool = True) -> DecoderChoice:
    """``full`` / ``tiny`` / a folder / a hub id given to ``option`` (``--decoder``, ``--encoder``) -> a
    checked choice; see ``resolve_decoder``."""
    spec = (spec or "full").strip()
    if spec == "full":
        return DecoderChoice("full")
    hub_id = TINY_DECODER_HUB_ID if spec == "tiny" else spec
    path = Path(hub_id).expanduser()
    if path.exists() or not is_hub_id(hub_id):
        if not path.is_dir():
            raise BadInputError(f"{option} {spec}: no such folder (use {DECODER_CHOICES})")
        check_tiny_decoder_folder(path, spec, option)
        return DecoderChoice(spec, path)
    folder = _download(hub_id, spec, allow_download, option)
    check_tiny_decoder_folder(folder, spec, option)
    return DecoderChoice(spec, folder)


def _download(hub_id: str, spec: str, allow_download: bool, option: str = "--decoder") -> Path:
    return fetch_snapshot(
        hub_id, allow_download, patterns=DOWNLOAD_PATTERNS,
        not_cached=f"{option} {spec}: {hub_id} is not in the local Hugging Face cache",
        failed=(f"{option} {spec}: could not download {hub_id} ({{reason}}); download it where there is "
                f"network access (hf download {hub_id}) and pass the folder"
                + (f", or use {option} full" if option in ("--decoder", "--encoder") else "")),
    )


def check_tiny_decoder_folder(folder: Path, spec: str, option: str = "--decoder") -> dict:
    """The folder holds an ``AutoencoderTiny`` config with 4 latent channels and weights; returns the config."""
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise BadInputError(f"{option} {spec}: {folder} has no config.json (not an AutoencoderTiny folder)")
    config = read_json_object(config_path, f"{option} {spec}: {config_path}", "an AutoencoderTiny config")
    if config.get("_class_name") != "AutoencoderTiny":
        raise BadInputError(
            f"{option} {spec}: {folder} holds a {config.get('_class_name') or 'unknown model'}, not an AutoencoderTiny"
        )
    if config.get("latent_channels", 4) != 4:
        raise BadInputError(f"{option} {spec}: latent_channels is {config.get('latent_channels')}; the checkpoint's VAE latents (the UNet's input) have 4")
    if not any((folder / name).is_file() for name in WEIGHT_NAMES):
        raise BadInputError(f"{option} {spec}: no weights in {folder} (expected one of {', '.join(WEIGHT_NAMES)})")
    return config


def tiny_decoder_scale(config: dict) -> int:
    """Pixels per latent of an ``AutoencoderTiny`` decoder (8 for TAESD)."""
    blocks = config.get("decoder_block_out_channels") or config.get("block_out_channels") or (64, 64, 64, 64)
    return int(config.get("upsampling_scaling_factor", 2)) ** (len(blocks) - 1)


def load_autoencoder_half(choice: DecoderChoice, option: str, keep: str, device: torch.device, dtype: torch.dtype,
                          check=None) -> tuple[torch.nn.Module, bool]:
    """The ``AutoencoderTiny`` of ``choice`` (a folder) on ``device`` / ``dtype`` with only its
    ``keep`` half ("encoder" or "decoder"), and whether it is a random test one. ``check(config)``
    may refuse it (one-line BadInputError) before its weights load."""
    from diffusers import AutoencoderTiny

    config = check_tiny_decoder_folder(choice.folder, choice.name, option)
    if check is not None:
        check(config)
    try:
        autoencoder = AutoencoderTiny.from_pretrained(choice.folder, torch_dtype=dtype)
    except Exception as err:
        text = " ".join(str(err).split())[:300]
        raise BadInputError(f"{option} {choice.name}: cannot load the AutoencoderTiny in {choice.folder} ({text})") from None
    unused = "decoder" if keep == "encoder" else "encoder"
    setattr(autoencoder, unused, None)  # never used: the other half is --encoder's / --decoder's
    autoencoder.to(device).eval().requires_grad_(False)
    return autoencoder, bool(config.get(TINY_DECODER_MARKER, False))


def load_decoder(choice: DecoderChoice, vae: torch.nn.Module, vae_scale: int, device: torch.device,
                 dtype: torch.dtype) -> DepthDecoder:
    """The decoder of ``choice`` on ``device`` / ``dtype``; its upsampling must match the VAE's (``vae_scale``)."""
    if choice.folder is None:
        return FullVaeDecoder(vae)

    def same_scale(config: dict) -> None:
        if tiny_decoder_scale(config) != vae_scale:
            raise BadInputError(f"--decoder {choice.name}: it upsamples latents {tiny_decoder_scale(config)}x, "
                                f"the checkpoint's VAE {vae_scale}x")

    autoencoder, is_random = load_autoencoder_half(choice, "--decoder", "decoder", device, dtype, same_scale)
    return TinyVaeDecoder(autoencoder, choice.name, is_random=is_random)


#: A small AutoencoderTiny with TAESD's structure (4 decoder levels, x8 upsampling, 4 latent channels).
TINY_DECODER_CONFIG = dict(
    encoder_block_out_channels=(8, 8, 8, 8),
    decoder_block_out_channels=(8, 8, 8, 8),
    num_encoder_blocks=(1, 1, 1, 1),
    num_decoder_blocks=(1, 1, 1, 1),
    latent_channels=4,
)


def write_tiny_decoder(folder: str | Path, seed: int = 0) -> Path:
    """Write a small RANDOM ``AutoencoderTiny`` folder (for tests: its output is NOT depth); returns the path."""
    from diffusers import AutoencoderTiny

    folder = Path(folder)
    state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        AutoencoderTiny(**TINY_DECODER_CONFIG).save_pretrained(folder)
    finally:
        torch.random.set_rng_state(state)
    config_path = folder / "config.json"
    config = json.loads(config_path.read_text())
    config[TINY_DECODER_MARKER] = True
    config_path.write_text(json.dumps(config, indent=2))
    return folder
