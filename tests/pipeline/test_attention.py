"""Cross-frame attention equals attention over the joined frames computed by hand (docs/method.md, section 2),
and long half-precision attention in fp32 where asked (the MPS branch, forced on the CPU)."""

import torch
from diffusers.models.attention_processor import Attention, AttnProcessor2_0

from pipeline.attention import CrossFrameAttnProcessor


def by_hand(attn: Attention, x: torch.Tensor, context: torch.Tensor | None, frames: int) -> torch.Tensor:
    """Join the frames of each snippet, run plain softmax attention per head, split back."""
    bl, n, c = x.shape
    joined = x.reshape(bl // frames, frames * n, c)
    ctx = joined if context is None else context[::frames]
    q, k, v = attn.to_q(joined), attn.to_k(ctx), attn.to_v(ctx)
    heads = attn.heads
    d = q.shape[-1] // heads

    def split(t):
        return t.reshape(t.shape[0], t.shape[1], heads, d).permute(0, 2, 1, 3)

    weights = torch.softmax(split(q) @ split(k).transpose(-1, -2) / d**0.5, dim=-1)
    out = (weights @ split(v)).permute(0, 2, 1, 3).reshape(joined.shape[0], -1, heads * d)
    return attn.to_out[0](out).reshape(bl, n, -1)


def make_attention(cross_dim=None):
    torch.manual_seed(0)
    return Attention(query_dim=16, cross_attention_dim=cross_dim, heads=2, dim_head=8).eval()


def test_self_attention_matches_joined_frames_by_hand():
    attn = make_attention()
    attn.set_processor(CrossFrameAttnProcessor())
    x = torch.randn(2 * 3, 5, 16)  # 2 snippets of 3 frames, 5 tokens each
    with torch.no_grad():
        ours = attn(x, num_frames=3)
        expected = by_hand(attn, x, None, 3)
    assert torch.allclose(ours, expected, atol=1e-5)


def test_cross_attention_uses_shared_text_context():
    attn = make_attention(cross_dim=12)
    attn.set_processor(CrossFrameAttnProcessor())
    x = torch.randn(3, 5, 16)
    context = torch.randn(1, 2, 12).expand(3, -1, -1)
    with torch.no_grad():
        ours = attn(x, encoder_hidden_states=context, num_frames=3)
        expected = by_hand(attn, x, context, 3)
    assert torch.allclose(ours, expected, atol=1e-5)


def test_one_frame_snippets_equal_the_stock_processor():
    attn = make_attention()
    x = torch.randn(4, 5, 16)
    with torch.no_grad():
        attn.set_processor(AttnProcessor2_0())
        stock = attn(x)
        attn.set_processor(CrossFrameAttnProcessor())
        ours = attn(x, num_frames=1)
    assert torch.allclose(ours, stock, atol=1e-6)


def test_frames_of_a_snippet_see_each_other_but_not_other_snippets():
    attn = make_attention()
    attn.set_processor(CrossFrameAttnProcessor())
    x = torch.randn(6, 5, 16)
    changed = x.clone()
    changed[2] += 1.0  # last frame of the first snippet
    with torch.no_grad():
        a, b = attn(x, num_frames=3), attn(changed, num_frames=3)
    assert not torch.allclose(a[0], b[0])  # same snippet: affected
    assert torch.allclose(a[3:], b[3:])  # other snippet: untouched


def test_unet_uses_cross_frame_processor_everywhere(tiny_model):
    processors = tiny_model.unet.attn_processors
    assert processors and all(isinstance(p, CrossFrameAttnProcessor) for p in processors.values())
    assert not any(isinstance(p, CrossFrameAttnProcessor) for p in tiny_model.vae.attn_processors.values())


def test_long_half_precision_attention_runs_in_fp32_where_asked(monkeypatch):
    from diffusers.models.attention_processor import Attention

    import pipeline.attention as attention

    seen = []
    real = attention.F.scaled_dot_product_attention

    def spy(q, k, v, **kwargs):
        seen.append(q.dtype)
        return real(q, k, v, **kwargs)

    monkeypatch.setattr(attention.F, "scaled_dot_product_attention", spy)
    torch.manual_seed(0)
    attn = Attention(query_dim=16, heads=2, dim_head=8).eval().half()
    x = torch.randn(6, 20, 16, dtype=torch.float16)  # 2 snippets x 3 frames x 20 tokens = 60 keys
    with torch.no_grad():
        attn.set_processor(attention.CrossFrameAttnProcessor(fp32_above=50))  # the MPS branch, forced
        upcast = attn(x, num_frames=3)
        attn.set_processor(attention.CrossFrameAttnProcessor())  # the CPU: model dtype
        plain = attn(x, num_frames=3)
        attn.float().set_processor(attention.CrossFrameAttnProcessor())
        reference = attn(x.float(), num_frames=3)
    assert seen == [torch.float32, torch.float16, torch.float32]
    assert upcast.dtype == plain.dtype == torch.float16
    assert (upcast.float() - reference).abs().max() <= (plain.float() - reference).abs().max() + 1e-3
    assert not attention.CrossFrameAttnProcessor().upcasts(x, torch.empty(1, 2, 5000, 8, dtype=torch.float16))
