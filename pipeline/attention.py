"""Cross-frame attention for the stock diffusers UNet (docs/method.md, section 2).

RollingDepth changes nothing in SD2's weights: in every attention layer the tokens of the L frames
of one snippet are joined into one sequence, so each frame attends to all frames of its snippet.
The UNet batch is laid out snippet-major: [b * L, ...] with the L frames of a snippet adjacent.
The number of frames per snippet arrives through ``cross_attention_kwargs={"num_frames": L}``.

Precision on MPS: fp16 scaled_dot_product_attention there loses softmax precision on long sequences
(PyTorch issue 190791), and a snippet joins many tokens (3 frames x 48 x 27 = 3888 at 384 px 16:9,
15552 at 768 px). Above ``MPS_FP32_ATTENTION_TOKENS`` key tokens, attention on MPS runs in fp32
(the projections stay fp16); CUDA and the CPU keep the model's dtype.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

#: Key tokens above which half-precision attention on MPS runs in fp32 (module docstring). Short
#: sequences (the deepest UNet level, cross-attention to the 2 text tokens) stay in half precision.
MPS_FP32_ATTENTION_TOKENS = 1024


class CrossFrameAttnProcessor:
    """Attention over the joined tokens of each snippet, with PyTorch's scaled_dot_product_attention.

    Input hidden states [b * L, h * w, c] (or [b * L, c, h, w]); output of the same shape.
    Self-attention: q, k, v over the L * h * w tokens of a snippet. Cross-attention: the text
    context is identical for every frame of a snippet, so keys/values of its first frame are used
    (attending to L identical copies gives the same result).

    fp32_above: key tokens above which half-precision attention is computed in fp32; None = the
        MPS rule (``MPS_FP32_ATTENTION_TOKENS`` on MPS, never elsewhere).
    """

    def __init__(self, fp32_above: int | None = None) -> None:
        self.fp32_above = fp32_above

    def upcasts(self, query: torch.Tensor, key: torch.Tensor) -> bool:
        """Whether this attention runs in fp32 (half-precision inputs over the token limit)."""
        if query.dtype not in (torch.float16, torch.bfloat16):
            return False
        limit = self.fp32_above
        if limit is None:
            if query.device.type != "mps":
                return False
            limit = MPS_FP32_ATTENTION_TOKENS
        return key.shape[-2] > limit

    def __call__(
        self,
        attn,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        temb: torch.Tensor | None = None,
        num_frames: int = 1,
        **kwargs,
    ) -> torch.Tensor:
        if attention_mask is not None:
            raise ValueError("cross-frame attention does not support attention masks")
        residual = hidden_states
        if attn.spatial_norm is not None:
            hidden_states = attn.spatial_norm(hidden_states, temb)
        input_ndim = hidden_states.ndim
        if input_ndim == 4:
            batch_frames, channel, height, width = hidden_states.shape
            hidden_states = hidden_states.view(batch_frames, channel, height * width).transpose(1, 2)
        batch_frames, tokens, _ = hidden_states.shape
        if batch_frames % num_frames:
            raise ValueError(f"batch of {batch_frames} frames is not a multiple of num_frames={num_frames}")
        snippets = batch_frames // num_frames
        if attn.group_norm is not None:
            hidden_states = attn.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)

        query = attn.to_q(hidden_states)
        if encoder_hidden_states is None:
            key = attn.to_k(hidden_states)
            value = attn.to_v(hidden_states)
            key = key.reshape(snippets, num_frames * tokens, -1)
            value = value.reshape(snippets, num_frames * tokens, -1)
        else:
            if attn.norm_cross:
                encoder_hidden_states = attn.norm_encoder_hidden_states(encoder_hidden_states)
            context = encoder_hidden_states[::num_frames]
            key = attn.to_k(context)
            value = attn.to_v(context)
        query = query.reshape(snippets, num_frames * tokens, -1)

        inner_dim = key.shape[-1]
        head_dim = inner_dim // attn.heads
        query = query.view(snippets, -1, attn.heads, head_dim).transpose(1, 2)
        key = key.view(snippets, -1, attn.heads, head_dim).transpose(1, 2)
        value = value.view(snippets, -1, attn.heads, head_dim).transpose(1, 2)
        if attn.norm_q is not None:
            query = attn.norm_q(query)
        if attn.norm_k is not None:
            key = attn.norm_k(key)

        dtype = query.dtype
        if self.upcasts(query, key):
            query, key, value = query.float(), key.float(), value.float()
        hidden_states = F.scaled_dot_product_attention(query, key, value, dropout_p=0.0, is_causal=False)
        hidden_states = hidden_states.transpose(1, 2).reshape(snippets, -1, attn.heads * head_dim)
        hidden_states = hidden_states.to(dtype)
        hidden_states = attn.to_out[0](hidden_states)
        hidden_states = attn.to_out[1](hidden_states)
        hidden_states = hidden_states.reshape(batch_frames, tokens, -1)

        if input_ndim == 4:
            hidden_states = hidden_states.transpose(-1, -2).reshape(batch_frames, channel, height, width)
        if attn.residual_connection:
            hidden_states = hidden_states + residual
        return hidden_states / attn.rescale_output_factor


def enable_cross_frame_attention(unet: torch.nn.Module) -> None:
    """Install CrossFrameAttnProcessor in every attention layer of the UNet (not the VAE)."""
    unet.set_attn_processor(CrossFrameAttnProcessor())
