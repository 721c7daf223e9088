"""Split ViT: forward, gradients and [CLS] attention equal the unsplit model's."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import timm
import torch
from torch.func import functional_call
from torch.nn import functional as F
from wsim_training_helpers import TINY, randomize_lora_b, tiny_model

from wsim.training.split import SplitViT, add_lora
from wsim.training.trainer import SplitTrainer, tensor_bits

BATCH = 3


def _batch(seed: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    images = torch.randn(BATCH, 1, TINY.img_size, TINY.img_size, generator=g)
    return images, torch.randint(0, 10, (BATCH,), generator=g)


def _reference_grads(model: SplitViT, device_id: int, trainer: SplitTrainer, images, labels):
    """Gradients of the unsplit timm model with the device's adapters swapped in."""
    params = dict(trainer.devices[device_id].params)
    params.update(trainer.servers[device_id].params)
    loss = F.cross_entropy(functional_call(model.vit, params, (images,)), labels)
    grads = torch.autograd.grad(loss, list(params.values()))
    return dict(zip(params, grads, strict=True)), loss.detach()


def test_split_forward_equals_unsplit_model():
    model = tiny_model()
    images, _ = _batch()
    with torch.no_grad():
        split = model.server_stage(model.device_stage(images))
        full = model.vit(images)
    assert split.shape == (BATCH, TINY.num_classes)
    torch.testing.assert_close(split, full, rtol=0, atol=1e-6)


def test_split_step_gradients_equal_unsplit_gradients_both_sides():
    model = tiny_model()
    trainer = SplitTrainer(model, num_devices=2, sfl_variant="v1")
    images, labels = _batch()
    expected, loss = _reference_grads(model, 1, trainer, images, labels)
    out = trainer.client_forward(1, images)
    srv = trainer.server_step(1, out.server_input, labels)
    trainer.client_backward(1, srv.grad)
    assert abs(srv.loss - loss.item()) < 1e-6
    got = {n: p.grad for n, p in trainer.devices[1].params.items()}
    got.update({n: p.grad for n, p in trainer.servers[1].params.items()})
    assert set(got) == set(expected)
    assert any("lora_A" in n for n in trainer.devices[1].params)
    assert any("lora_A" in n for n in trainer.servers[1].params)
    assert "head.weight" in trainer.servers[1].params
    for name, grad in expected.items():
        assert grad.abs().sum() > 0, name
        torch.testing.assert_close(got[name], grad, rtol=1e-4, atol=1e-6, msg=name)


def test_interleaved_devices_match_sequential_devices():
    images_a, labels_a = _batch(5)
    images_b, labels_b = _batch(6)
    results = []
    for interleave in (False, True):
        trainer = SplitTrainer(tiny_model(), num_devices=2, sfl_variant="v1")
        if interleave:
            out_a, out_b = trainer.client_forward(0, images_a), trainer.client_forward(1, images_b)
            srv_b = trainer.server_step(1, out_b.server_input, labels_b)
            srv_a = trainer.server_step(0, out_a.server_input, labels_a)
            trainer.client_backward(1, srv_b.grad)
            trainer.client_backward(0, srv_a.grad)
        else:
            for dev, (x, y) in enumerate([(images_a, labels_a), (images_b, labels_b)]):
                out = trainer.client_forward(dev, x)
                trainer.client_backward(dev, trainer.server_step(dev, out.server_input, y).grad)
        results.append([trainer.device_adapter_state(d) for d in (0, 1)])
    for seq, inter in zip(*results, strict=True):
        for name in seq:
            torch.testing.assert_close(inter[name], seq[name], rtol=0, atol=0)
    assert any(not torch.equal(results[0][0][n], results[0][1][n]) for n in results[0][0])


def test_backbone_is_shared_and_frozen():
    model = tiny_model()
    trainer = SplitTrainer(model, num_devices=3)
    num_vit_params = sum(p.numel() for p in model.vit.parameters())
    adapters = sum(p.numel() for p in trainer.devices[0].params.values())
    assert all("lora_" in n for n in trainer.devices[0].params)
    assert adapters < 0.1 * num_vit_params
    frozen = [p for n, p in model.vit.named_parameters() if "lora_" not in n and "head" not in n]
    assert frozen and not any(p.requires_grad for p in frozen)
    assert trainer.servers[0] is trainer.servers[2]  # SFL-V2: one server model


def test_uncompressed_payload_is_activation_size():
    model = tiny_model()
    trainer = SplitTrainer(model, num_devices=1)
    images, labels = _batch()
    out = trainer.client_forward(0, images)
    assert out.server_input is out.activation
    assert out.activation.shape == (BATCH, TINY.num_tokens, TINY.embed_dim)
    assert out.payload_bits == BATCH * TINY.num_tokens * TINY.embed_dim * 32
    assert out.num_tokens == TINY.num_tokens
    srv = trainer.server_step(0, out.server_input, labels)
    assert srv.grad_payload_bits == tensor_bits(srv.grad) == out.payload_bits


def _explicit_cls_attention(model: SplitViT, images: torch.Tensor) -> torch.Tensor:
    """Oracle: timm's non-fused path forms softmax(q kᵀ·scale); capture it at attn_drop."""
    attn = model.vit.blocks[model.config.cut_layer - 1].attn
    captured = []
    handle = attn.attn_drop.register_forward_hook(lambda m, a, out: captured.append(out))
    attn.fused_attn = False
    try:
        with torch.no_grad():
            model.device_stage(images)
    finally:
        attn.fused_attn = True
        handle.remove()
    full = captured[0]  # [batch, heads, tokens, tokens]
    return full[:, :, 0, 1:].mean(dim=1)


def test_cls_attention_equals_explicit_attention_matrix():
    model = tiny_model(TINY.replace(cut_layer=1, depth=3, lora_targets=("qkv", "proj")))
    trainer = SplitTrainer(model, num_devices=1)
    images, _ = _batch()
    out = trainer.client_forward(0, images)
    expected = _explicit_cls_attention(model, images)
    assert out.cls_attn.shape == (BATCH, TINY.num_patches)
    torch.testing.assert_close(out.cls_attn, expected, rtol=1e-5, atol=1e-7)
    assert not out.cls_attn.requires_grad


def test_cls_attention_with_qk_norm():
    vit = timm.create_model(
        "vit_tiny_patch16_224", img_size=16, patch_size=4, in_chans=1, num_classes=10,
        embed_dim=32, depth=2, num_heads=2, mlp_ratio=2.0, qk_norm=True,
    )  # fmt: skip
    add_lora(vit, TINY, torch.Generator().manual_seed(0))
    model = SplitViT(vit, TINY)
    randomize_lora_b(model, 3)
    with torch.no_grad():
        vit.blocks[0].attn.q_norm.weight.uniform_(0.5, 2.0)
    model.probe.arm()
    images, _ = _batch()
    with torch.no_grad():
        model.device_stage(images)
    torch.testing.assert_close(
        model.probe.cls_attn(), _explicit_cls_attention(model, images), rtol=1e-5, atol=1e-7
    )


def test_step_order_errors():
    trainer = SplitTrainer(tiny_model(), num_devices=1)
    images, labels = _batch()
    with pytest.raises(RuntimeError, match="no pending"):
        trainer.client_backward(0, torch.zeros(1))
    out = trainer.client_forward(0, images)
    with pytest.raises(RuntimeError, match="awaiting"):
        trainer.client_forward(0, images)
    with pytest.raises(RuntimeError, match="pending forwards"):
        trainer.aggregate({0: BATCH})
    with pytest.raises(ValueError, match="grad shape"):
        trainer.client_backward(0, torch.zeros(1))
    del out, labels


class _TopK:
    """Test compressor: keep [CLS] + the k patches of highest [CLS] attention."""

    def __init__(self, k: int) -> None:
        self.k = k
        self.seen_ctx = None

    def __call__(self, activation, cls_attn, ctx):
        self.seen_ctx = ctx
        idx = cls_attn.topk(self.k, dim=1).indices + 1  # [batch, k]
        idx = torch.cat([torch.zeros_like(idx[:, :1]), idx], dim=1)
        kept = activation.gather(1, idx.unsqueeze(-1).expand(-1, -1, activation.shape[-1]))
        return SimpleNamespace(
            server_input=kept, payload_bits=tensor_bits(kept) + 8 * idx.numel(),
            grad_payload_bits=tensor_bits(kept),
        )  # fmt: skip


def test_compressor_is_called_generically_and_fewer_tokens_reach_the_server():
    trainer = SplitTrainer(tiny_model(), num_devices=1)
    images, labels = _batch()
    compressor, ctx = _TopK(5), object()
    out = trainer.client_forward(0, images, compressor, ctx)
    assert compressor.seen_ctx is ctx
    assert out.num_tokens == 6 and out.server_input.shape == (BATCH, 6, TINY.embed_dim)
    assert out.payload_bits == BATCH * 6 * TINY.embed_dim * 32 + 8 * BATCH * 6
    srv = trainer.server_step(0, out.server_input, labels, grad_payload_bits=out.grad_payload_bits)
    assert srv.num_tokens == 6 and srv.grad.shape == out.server_input.shape
    trainer.client_backward(0, srv.grad)
    grads = [p.grad for p in trainer.devices[0].params.values()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)
