"""The ``paper`` recipes' compressors against hand computations (PAPERS.md, recovered details)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from wsim.compression import (
    PAPER_COMPRESSORS,
    CompressContext,
    STSFLoraPaper,
    make_compressor,
    paper_payload_bits,
    paper_retention_curve,
)
from wsim.optimizer import RoundProblem
from wsim.optimizer.problem import Allocation
from wsim.optimizer.stsflora_paper import paper_ste

torch.set_num_threads(1)


def test_merged_token_is_the_attention_weighted_mean_of_the_dropped_tokens() -> None:
    # one sample, [CLS] + 4 patches, dim 2; α = [0.1, 0.4, 0.2, 0.3]; K = 2 keeps patches 1, 3
    x = torch.tensor([[[9.0, 9.0], [1.0, 0.0], [0.0, 2.0], [3.0, 3.0], [5.0, -1.0]]])
    alpha = torch.tensor([[0.1, 0.4, 0.2, 0.3]])
    out = STSFLoraPaper()(x, alpha, CompressContext(keep_tokens=2))
    assert out.server_input.shape == (1, 4, 2)  # [CLS] + K + 1 merged = K + 2
    assert torch.equal(out.server_input[0, 0], x[0, 0])  # [CLS]
    assert {tuple(t.tolist()) for t in out.server_input[0, 1:3]} == {(0.0, 2.0), (5.0, -1.0)}
    # dropped: patch 0 (α 0.1, token [1, 0]) and patch 2 (α 0.2, token [3, 3])
    merged = (0.1 * torch.tensor([1.0, 0.0]) + 0.2 * torch.tensor([3.0, 3.0])) / 0.3
    assert torch.allclose(out.server_input[0, 3], merged, atol=1e-6)
    # f(2) = 0.4 + 0.3 (one sample: ρ = f / B)
    assert out.retention == pytest.approx(0.7)
    assert out.payload_bits == 1 * (2 + 2) * 2 * 32


@pytest.mark.parametrize("k", [1, 5, 15, 16])
def test_payload_is_exactly_b_k_plus_2_d_q0(k: int) -> None:
    g = torch.Generator().manual_seed(k)
    batch, patches, dim = 4, 16, 8
    x = torch.randn(batch, patches + 1, dim, generator=g)
    alpha = torch.softmax(torch.randn(batch, patches, generator=g), -1) * 0.9
    out = make_compressor("stsflora", recipe="paper")(x, alpha, CompressContext(keep_tokens=k))
    tokens = k + 2 if k < patches else k + 1  # nothing to merge when every patch is kept
    assert out.payload_bits == batch * tokens * dim * 32 == paper_payload_bits(batch, k, dim, 16)
    assert out.payload_bits == 8 * sum(t.numel() * 4 for t in out.extras["wire"].values())
    assert out.grad_payload_bits == out.payload_bits  # what a training device would get back
    assert out.num_tokens_sent == tokens


def test_retention_is_the_batch_sum_of_sorted_attention() -> None:
    alpha = torch.tensor([[0.5, 0.1, 0.3], [0.2, 0.6, 0.1]])
    # ᾱ = sorted rows summed: [0.5 + 0.6, 0.3 + 0.2, 0.1 + 0.1] = [1.1, 0.5, 0.2]
    f = paper_retention_curve(alpha, [0, 1, 2, 3])
    assert np.allclose(f, [0.0, 1.1, 1.6, 1.8])
    assert np.all(np.diff(f, 2) <= 1e-12)  # concave in K
    comp = STSFLoraPaper(token_counts=(1, 2))
    assert np.allclose(comp.retention_curve(alpha), [0.55, 0.8])


def test_registry_and_validation() -> None:
    from wsim.compression import SplitComPaper

    assert PAPER_COMPRESSORS == {"stsflora": STSFLoraPaper, "splitcom": SplitComPaper}
    with pytest.raises(ValueError, match="recipe 'paper'"):
        make_compressor("sflam", recipe="paper")
    with pytest.raises(ValueError, match="cls_attn"):
        STSFLoraPaper()(torch.zeros(1, 3, 2), None, CompressContext(keep_tokens=1))
    assert STSFLoraPaper.score == "cls"


def test_ste_by_hand() -> None:
    # two devices; b = 1 MHz, p g /(N0 b) = 15 and 3 → r = 4 and 2 Mbit/s; S = 2 and 2 Mbit
    n0 = 1e-20
    pr = RoundProblem(
        gain_lin=np.array([15e-14 / 0.1, 3e-14 / 0.1]), cpu_hz=np.ones(2) * 1e9, kappa=0.0,
        max_power_w=np.full(2, 0.1), energy_budget_j=np.full(2, 10.0),
        token_counts=np.array([8.0, 16.0]), payload_bits=np.array([[1e6, 2e6], [1e6, 2e6]]),
        device_cycles=np.zeros((2, 2)), retention=np.array([[0.5, 0.9], [0.5, 0.9]]),
        fixed_latency_s=np.zeros(2), total_bandwidth_hz=2e6, noise_psd_w_per_hz=n0,
        deadline_s=10.0, energy_price_per_j=0.0, latency_price_per_s=0.0, min_retention=0.0,
    )  # fmt: skip
    alloc = Allocation(
        token_option=np.array([1, 1]), bandwidth_hz=np.array([1e6, 1e6]),
        power_w=np.array([0.1, 0.1]), latency_s=1.0, objective=0.0,
        feasible=np.ones(2, bool), reason=np.array(["", ""], dtype=object),
        energy_j=np.zeros(2), tx_energy_j=np.zeros(2), latency_device_s=np.zeros(2),
        ste=np.zeros(2),
    )  # fmt: skip
    # T^up = 2e6 / 4e6 = 0.5 s and 2e6 / 2e6 = 1 s: STE = (0.9 + 0.9) / 1.0
    assert paper_ste(pr, alloc) == pytest.approx(1.8)


def _sft_model(rank_full: bool = True):
    from wsim.training.split import build_split_vit
    from wsim.workload.profile import TEST_PRESETS

    cfg = TEST_PRESETS["vit_micro_test"]  # depth 2, d = 32, MLP 64, cut 1, weights "none"
    model = build_split_vit(cfg, torch.Generator().manual_seed(0), attention_half=True)
    return model, cfg


def test_sft_full_rank_block_equals_the_block_minus_its_mlp_residual() -> None:
    from wsim.compression import SFTPaper

    model, cfg = _sft_model()
    model.vit.eval()
    block = model.vit.blocks[cfg.cut_layer]
    images = torch.randn(3, 1, 16, 16, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        x = model.vit.norm_pre(model.vit._pos_embed(model.vit.patch_embed(images)))
        for b in model.vit.blocks[: cfg.cut_layer]:
            x = b(x)
        h = model.device_stage(images)  # the cut block's attention half
        assert torch.allclose(h, x + block.ls1(block.attn(block.norm1(x))), atol=1e-6)
        comp = SFTPaper.from_block(block, rank=32)  # full rank: min(64, 32)
        out = comp(h, None, CompressContext())
        # the unfactored block minus its MLP residual: block(x) - h = mlp(norm2(h))
        assert torch.allclose(out.server_input, block(x) - h, atol=1e-5)
        assert torch.allclose(out.server_input, block.mlp(block.norm2(h)), atol=1e-5)
    # the server stage starts after the cut block; the cut block's qkv LoRA is on the device
    assert model.server_stage.cut_layer == cfg.cut_layer + 1
    assert any(n.startswith(f"blocks.{cfg.cut_layer}.") for n in model.device_param_names)


@pytest.mark.parametrize("seed", [0, 1])
def test_sft_uploads_b_n_r_numbers_whatever_the_data(seed: int) -> None:
    from wsim.compression import SFTPaper

    model, cfg = _sft_model()
    block = model.vit.blocks[cfg.cut_layer]
    h = torch.randn(4, 17, 32, generator=torch.Generator().manual_seed(seed)) * (seed + 1) * 10
    comp = SFTPaper.from_block(block, rank=3)
    out = comp(h, None, CompressContext())
    assert out.payload_bits == 4 * 17 * 3 * 32 and out.extras["wire"]["z"].shape == (4, 17, 3)
    assert out.grad_payload_bits == 4 * 17 * 3 * 32  # the gradient in z's shape
    none_bits = 4 * 17 * 32 * 32
    assert none_bits / out.payload_bits == 32 / 3  # exactly D / r per token
    assert (
        SFTPaper.from_block(block, rank=3, quant_bits=16)(h, None, CompressContext()).payload_bits
        == 4 * 17 * 3 * 16
    )
    # gradients flow back through the factored FFN to the device activation
    h.requires_grad_()
    comp(h, None, CompressContext()).server_input.sum().backward()
    assert h.grad is not None and h.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="rank"):
        SFTPaper.from_block(block, rank=33)


def test_splitcom_skip_rule_by_hand() -> None:
    from wsim.compression import SplitComPaper, ValidationBangBang
    from wsim.compression.paper_temporal import projected_cosine

    assert torch.allclose(
        projected_cosine(torch.tensor([[1.0, 0.0], [1.0, 1.0]]), torch.tensor([[1.0, 1.0]] * 2)),
        torch.tensor([2**-0.5, 1.0]),
    )
    comp = SplitComPaper(tau=0.1, proj_dim=16, seed=3)
    g = torch.Generator().manual_seed(0)
    a = torch.randn(2, 3, 4, generator=g)
    ids = CompressContext(sample_ids=torch.tensor([7, 8]))
    first = comp(a.clone().requires_grad_(), None, ids)
    assert first.extras["num_uploaded"] == 2  # never seen: both sent
    # sample 7 barely changes (cos > 0.9: skipped, the server reuses its cache); 8 is replaced
    b = torch.stack([a[0] * 1.01, torch.randn(3, 4, generator=g)])
    out = comp(b.clone().requires_grad_(), None, ids)
    assert out.extras["upload_mask"].tolist() == [False, True]
    assert torch.allclose(out.server_input[0], a[0]) and torch.allclose(out.server_input[1], b[1])
    assert out.payload_bits == 1 * 3 * 4 * 32 + 2
    # the gradient cache: an unchanged gradient is skipped and the cached one is used
    grad = torch.randn(2, 3, 4, generator=g)
    used, bits = comp.compress_gradient(grad, torch.tensor([7, 8]))
    assert bits == 2 * 3 * 4 * 32 + 2 and torch.equal(used, grad)
    grad2 = torch.stack([grad[0] * 2.0, -grad[1]])  # same direction (cos 1) / opposite (cos -1)
    used, bits = comp.compress_gradient(grad2, torch.tensor([7, 8]))
    assert bits == 1 * 3 * 4 * 32 + 2
    assert torch.equal(used[0], grad[0]) and torch.equal(used[1], grad2[1])
    # bang-bang on validation loss: skip more only after an improvement
    ctrl = ValidationBangBang(tau_low=0.1, tau_high=0.2)
    assert [ctrl.update_validation(v) for v in (1.0, 0.8, 0.9, 0.7)] == [0.1, 0.2, 0.1, 0.2]
