"""RGB encoders: the checkpoint's SD VAE encoder, or the encoder of a tiny one (``AutoencoderTiny``, TAESD).

Both take RGB ``[N, 3, H, W]`` in ``[-1, 1]`` and return latents ``[N, 4, H/8, W/8]`` in the diffusion
space the UNet was trained on (docs/method.md, "The tiny encoder"):

- ``full``: the SD VAE posterior's mean times 0.18215 (``LATENT_SCALE``), as the reference.
- tiny: diffusers' ``AutoencoderTiny.encode`` maps ``[-1, 1]`` to TAESD's ``[0, 1]`` itself
  (``EncoderTiny.forward``: ``x.add(1).div(2)``) and returns ``.latents`` already in that space:
  TAESD was trained to match the SD VAE's scaled latents, so its config's ``scaling_factor`` is
  1.0 and nothing is multiplied (checked on diffusers 0.42). ``scale_latents`` (to [0, 1] for
  storing as bytes) is not part of encoding and is not applied.

``--encoder`` takes ``full``, ``tiny`` (``madebyollin/taesd``, the same as ``--decoder tiny``) or a
folder / hub id of an ``AutoencoderTiny``; its latent channels must be the checkpoint's (checked
before any weights load). The tiny encoder's effect on depth needs the real weights to measure:
``rdstream dev evaluate`` measures it on a user's own clip.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch

from pipeline.errors import BadInputError
from pipeline.tiny_decoder import (LATENT_SCALE, DecoderChoice, check_tiny_decoder_folder, load_autoencoder_half,
                                   resolve_autoencoder)


class RgbEncoder(Protocol):
    """RGB ``[N, 3, H, W]`` in ``[-1, 1]`` -> diffusion-space latents ``[N, 4, H/8, W/8]`` in the model dtype."""

    name: str
    is_random: bool

    def __call__(self, rgb: torch.Tensor) -> torch.Tensor: ...


@dataclass
class FullVaeEncoder:
    """The checkpoint's SD VAE encoder (``name`` "full"): posterior mean x 0.18215."""

    vae: torch.nn.Module
    name: str = "full"
    is_random: bool = False

    def __call__(self, rgb: torch.Tensor) -> torch.Tensor:
        return self.vae.encode(rgb).latent_dist.mean * LATENT_SCALE


@dataclass
class TinyVaeEncoder:
    """The encoder of a diffusers ``AutoencoderTiny``: its ``.latents`` as they are (no scaling)."""

    autoencoder: torch.nn.Module
    name: str
    is_random: bool = False

    def __call__(self, rgb: torch.Tensor) -> torch.Tensor:
        return self.autoencoder.encode(rgb).latents


def resolve_encoder(spec: str | None, allow_download: bool = True) -> DecoderChoice:
    """``full`` / ``tiny`` / a folder / a hub id -> a checked choice (``folder`` None = the checkpoint's VAE).
    One-line BadInputError for a missing or wrong folder; loads no weights."""
    return resolve_autoencoder(spec, "--encoder", allow_download)


def check_encoder_channels(choice: DecoderChoice, checkpoint_latent_channels: int) -> None:
    """The tiny encoder's latents must have the checkpoint VAE's channels (read from its config, before loading)."""
    if choice.folder is None:
        return
    config = check_tiny_decoder_folder(choice.folder, choice.name, "--encoder")
    channels = config.get("latent_channels", 4)
    if channels != checkpoint_latent_channels:
        raise BadInputError(f"--encoder {choice.name}: its latents have {channels} channels, the checkpoint's VAE "
                            f"{checkpoint_latent_channels}; use an AutoencoderTiny made for this checkpoint's latent space")


def load_encoder(choice: DecoderChoice, vae: torch.nn.Module, device: torch.device, dtype: torch.dtype) -> RgbEncoder:
    """The encoder of ``choice`` on ``device`` / ``dtype`` (the checkpoint's VAE for ``full``)."""
    if choice.folder is None:
        return FullVaeEncoder(vae)
    autoencoder, is_random = load_autoencoder_half(choice, "--encoder", "encoder", device, dtype)
    return TinyVaeEncoder(autoencoder, choice.name, is_random=is_random)
