"""Every compressor trains: a tiny timm ViT split after blocks[0], with the split-step protocol."""

from __future__ import annotations

import pytest
import torch
from timm.models.vision_transformer import VisionTransformer
from torch import nn

from wsim.compression import COMPRESSORS, CompressContext, cls_attention, make_compressor

torch.set_num_threads(1)

STEPS = 30
PARAMS = {
    "none": {},
    "stsflora": {"token_counts": (4, 8)},
    "tsflora": {"merge_r": 2, "quant_bits": 4},
    "sflam": {"quant_bits": 4},
    "sft": {"rank": 4},
    "splitcom": {"tau": 0.05},
    "random_tokens": {},
}


def _tiny_vit() -> VisionTransformer:
    with torch.random.fork_rng():  # seeded init without disturbing the global stream
        torch.manual_seed(0)
        return VisionTransformer(
            img_size=16, patch_size=4, embed_dim=32, depth=2, num_heads=2, num_classes=4
        )


def _device_forward(model: VisionTransformer, images: torch.Tensor):
    """patch_embed → _pos_embed → blocks[0]; plus the [CLS] attention of blocks[0]."""
    x = model.norm_pre(model.patch_drop(model._pos_embed(model.patch_embed(images))))
    block = model.blocks[0]
    attn = block.attn
    h = block.norm1(x)
    batch, tokens, _ = h.shape
    qkv = attn.qkv(h).reshape(batch, tokens, 3, attn.num_heads, attn.head_dim)
    q, k, _ = qkv.permute(2, 0, 3, 1, 4).unbind(0)
    cls_attn = cls_attention(attn.q_norm(q), attn.k_norm(k), attn.scale).detach()
    return block(x), cls_attn


def _server_forward(model: VisionTransformer, x: torch.Tensor) -> torch.Tensor:
    return model.forward_head(model.norm(model.blocks[1](x)))


def test_cls_attention_matches_timm_unfused_attention() -> None:
    model = _tiny_vit().eval()
    images = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    _, cls_attn = _device_forward(model, images)
    captured = {}
    attn = model.blocks[0].attn
    attn.fused_attn = False
    hook = attn.attn_drop.register_forward_hook(lambda m, i, o: captured.setdefault("a", o))
    with torch.no_grad():
        model.forward_features(images)
    hook.remove()
    torch.testing.assert_close(cls_attn, captured["a"][:, :, 0, 1:].mean(dim=1))


@pytest.mark.parametrize("name", sorted(COMPRESSORS))
def test_each_method_trains(name: str) -> None:
    model = _tiny_vit()
    compressor = make_compressor(name, **PARAMS[name])
    data = torch.Generator().manual_seed(2)
    images = torch.randn(16, 3, 16, 16, generator=data)
    labels = torch.randint(0, 4, (16,), generator=data)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    choice = torch.Generator().manual_seed(3)
    losses, payloads = [], []
    for _ in range(STEPS):
        ctx = CompressContext(sample_ids=torch.arange(16), keep_tokens=8, generator=choice)
        activation, cls_attn = _device_forward(model, images)
        out = compressor.compress(activation, cls_attn, ctx)
        server_in = out.server_input.detach().requires_grad_()
        loss = nn.functional.cross_entropy(_server_forward(model, server_in), labels)
        opt.zero_grad()
        loss.backward()
        out.server_input.backward(server_in.grad)
        opt.step()
        losses.append(loss.item())
        payloads.append(out.payload_bits)
    assert sum(losses[-3:]) / 3 < 0.7 * losses[0], losses
    full = 16 * 17 * 32 * 32
    if name != "none":
        assert min(payloads) < full  # it did compress
