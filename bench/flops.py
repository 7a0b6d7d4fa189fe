"""FLOP counts of the live model's calls, on the meta device (no weights): one home for
``bench.live_cost``, ``bench.rungs`` and ``bench.gpu_timing``.

Counted with ``torch.utils.flop_counter.FlopCounterMode`` on the SD2 shapes (``bench.models``) and
TAESD's (diffusers' ``AutoencoderTiny`` defaults), stock attention. One UNet frame-pass is a
3-frame snippet's call divided by 3 (cross-frame attention makes it depend a little on L).
"""

from __future__ import annotations

import torch

SNIP_LEN = 3


def count_flops(fn) -> float:
    """FLOPs of ``fn()`` (no gradients)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter, torch.no_grad():
        fn()
    return float(counter.get_total_flops())


def flops_per_call(size: int = 384, height: int | None = None) -> dict[str, float]:
    """GFLOP of one UNet frame-pass, one VAE encode (SD VAE and TAESD) and one decode (full and 2x
    pooled; SD VAE and TAESD) for a ``height`` x ``size`` px frame (``height`` None = square)."""
    from diffusers import AutoencoderKL, AutoencoderTiny, UNet2DConditionModel

    from bench.models import SD2_UNET, SD2_VAE
    from pipeline.attention import enable_cross_frame_attention
    from pipeline.tiny_decoder import FullVaeDecoder, TinyVaeDecoder

    height = height or size
    meta = torch.device("meta")
    with meta:
        unet = UNet2DConditionModel(**SD2_UNET)
        vae = AutoencoderKL(**SD2_VAE)
        taesd = AutoencoderTiny()
    enable_cross_frame_attention(unet)
    h, w = height // 8, size // 8
    x = torch.empty(SNIP_LEN, 8, h, w, device=meta)
    context = torch.empty(SNIP_LEN, 2, SD2_UNET["cross_attention_dim"], device=meta)
    full, tiny = FullVaeDecoder(vae), TinyVaeDecoder(taesd, "tiny")
    z = torch.empty(1, 4, h, w, device=meta)
    z_half = torch.empty(1, 4, -(-h // 2), -(-w // 2), device=meta)
    rgb = torch.empty(1, 3, height, size, device=meta)
    unet_call = lambda: unet(x, torch.tensor(999, device=meta), encoder_hidden_states=context,
                             cross_attention_kwargs={"num_frames": SNIP_LEN})
    giga = 1e9
    return {
        "unet_frame_pass": count_flops(unet_call) / SNIP_LEN / giga,
        "vae_encode": count_flops(lambda: vae.encode(rgb)) / giga,
        "vae_encode/tiny": count_flops(lambda: taesd.encode(rgb)) / giga,
        "decode_full/full": count_flops(lambda: full(z)) / giga,
        "decode_fit/full": count_flops(lambda: full(z_half)) / giga,
        "decode_full/tiny": count_flops(lambda: tiny(z)) / giga,
        "decode_fit/tiny": count_flops(lambda: tiny(z_half)) / giga,
    }


def tflop_per_frame(counts: dict, flops: dict, decoder: str, encoder: str = "full") -> float:
    """TFLOP of one output frame from its model-work counts (``StepCounts.as_dict()``, per frame)
    and the per-call GFLOP of ``flops_per_call``."""
    encode = flops["vae_encode"] if encoder == "full" else flops["vae_encode/tiny"]
    total = (counts["encodes"] * encode + counts["unet_frame_passes"] * flops["unet_frame_pass"]
             + counts["decodes_full"] * flops[f"decode_full/{decoder}"]
             + counts["decodes_fit"] * flops[f"decode_fit/{decoder}"])
    return total / 1000.0
