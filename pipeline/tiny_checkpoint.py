"""Write a tiny RollingDepth checkpoint with RANDOM weights, in the real folder layout.

The folder has exactly the layout of ``prs-eth/rollingdepth-v1-0`` (docs/method.md, section 1):
``model_index.json``, ``unet/``, ``vae/``, ``scheduler/``, ``text_encoder/``, ``tokenizer/``, so the
real loading code runs on it. Its weights are random: the depth it produces is MEANINGLESS and must
never be presented as depth quality. ``model_index.json`` carries ``"rdstream_tiny_random": true`` so
that every command can say so.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from pipeline.checkpoint import TINY_MARKER


# Sizes chosen so a 3-frame step at a 16x16 latent takes well under a second on 2 CPU cores,
# while keeping every structural feature of SD2 that our code relies on (cross-attention blocks
# with linear projections, 8 input channels, a VAE downsampling by 8).
TINY_UNET = dict(
    sample_size=16,
    in_channels=8,
    out_channels=4,
    block_out_channels=(32, 64),
    layers_per_block=1,
    down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
    cross_attention_dim=32,
    attention_head_dim=(2, 4),
    use_linear_projection=True,
    norm_num_groups=32,
)
TINY_VAE = dict(
    in_channels=3,
    out_channels=3,
    # Narrow at full resolution (where a VAE spends its time), four levels like SD2's (x8 downsampling).
    block_out_channels=(8, 16, 32, 32),
    down_block_types=("DownEncoderBlock2D",) * 4,
    up_block_types=("UpDecoderBlock2D",) * 4,
    layers_per_block=1,
    latent_channels=4,
    norm_num_groups=8,
    sample_size=128,
    scaling_factor=0.18215,
)
# The scheduler is the real one (docs/method.md, section 1), not a tiny variant.
ROLLINGDEPTH_SCHEDULER = dict(
    num_train_timesteps=1000,
    beta_start=0.00085,
    beta_end=0.012,
    beta_schedule="scaled_linear",
    clip_sample=False,
    set_alpha_to_one=False,
    steps_offset=1,
    prediction_type="v_prediction",
    timestep_spacing="trailing",
    rescale_betas_zero_snr=True,
)


def _bytes_to_unicode() -> dict[int, str]:
    """The byte-level BPE alphabet of CLIP/GPT-2: every byte mapped to a printable character."""
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    codes = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            codes.append(256 + extra)
            extra += 1
    return dict(zip(printable, map(chr, codes)))


def _write_tokenizer(folder: Path) -> int:
    """Write a CLIP tokenizer that loads offline and encodes the empty prompt; returns vocab size."""
    symbols = list(_bytes_to_unicode().values())
    tokens = symbols + [s + "</w>" for s in symbols] + ["<|startoftext|>", "<|endoftext|>"]
    vocab = {token: i for i, token in enumerate(tokens)}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n", encoding="utf-8")
    special = {
        "bos_token": "<|startoftext|>",
        "eos_token": "<|endoftext|>",
        "unk_token": "<|endoftext|>",
        "pad_token": "<|endoftext|>",
    }
    (folder / "special_tokens_map.json").write_text(json.dumps(special, indent=2))
    config = {"tokenizer_class": "CLIPTokenizer", "model_max_length": 77, **special}
    (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=2))
    return len(vocab)


def write_tiny_checkpoint(folder: str | Path, seed: int = 0) -> Path:
    """Write a complete tiny random checkpoint to ``folder`` (created if needed) and return its path.

    The result gives meaningless depth; it exists so tests and demos run the real loading code.
    """
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    UNet2DConditionModel(**TINY_UNET).save_pretrained(folder / "unet")
    AutoencoderKL(**TINY_VAE).save_pretrained(folder / "vae")
    DDIMScheduler(**ROLLINGDEPTH_SCHEDULER).save_pretrained(folder / "scheduler")
    vocab_size = _write_tokenizer(folder / "tokenizer")
    text_config = CLIPTextConfig(
        vocab_size=vocab_size,
        hidden_size=TINY_UNET["cross_attention_dim"],  # must equal the UNet's cross_attention_dim
        intermediate_size=37,
        num_attention_heads=4,
        num_hidden_layers=2,
        max_position_embeddings=77,
        projection_dim=32,
        bos_token_id=vocab_size - 2,
        eos_token_id=vocab_size - 1,
        pad_token_id=vocab_size - 1,
    )
    from transformers.utils import logging as transformers_logging

    # transformers draws a "Writing model shards" bar for this few-kilobyte file: noise in the demo.
    bars_were_on = transformers_logging.is_progress_bar_enabled()
    transformers_logging.disable_progress_bar()
    try:
        CLIPTextModel(text_config).save_pretrained(folder / "text_encoder")
    finally:
        if bars_were_on:
            transformers_logging.enable_progress_bar()
    import diffusers

    model_index = {
        "_class_name": "RollingDepthPipeline",
        "_diffusers_version": diffusers.__version__,
        "scheduler": ["diffusers", "DDIMScheduler"],
        "text_encoder": ["transformers", "CLIPTextModel"],
        "tokenizer": ["transformers", "CLIPTokenizer"],
        "unet": ["diffusers", "UNet2DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"],
        TINY_MARKER: True,
    }
    (folder / "model_index.json").write_text(json.dumps(model_index, indent=2))
    return folder
